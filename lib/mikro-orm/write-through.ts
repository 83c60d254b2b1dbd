import type { EntityMetadata } from '@mikro-orm/core';
import type { CacheTransaction, SuppliedValue } from '../protocol/cache-transaction.js';
import type { CapturedChange } from '../protocol/write-capture.js';
import { keys, pkString, regions } from './cache-keys.js';
import { ROW_KEYS_PER_STATEMENT } from './captured-keys.js';
import { entityCacheOf } from './entity-marker.js';
import { keyedByText } from './text-keys.js';
import { encodeValue } from './value-codec.js';

type Row = Record<string, unknown>;

/**
 * Reads rows of an entity by primary key inside the committing transaction, through the very driver path a fill
 * takes (same options, same type parsers, same result mapping), so what it returns is byte for byte what a fill
 * would store.
 */
export type RowImageLoader = (meta: EntityMetadata, schema: string, ids: readonly unknown[]) => Promise<Row[]>;

/** A cached entity whose rows can be written through. */
interface Target {
  readonly meta: EntityMetadata;
  readonly pkProp: string;
  readonly pkColumn: string;
  readonly ttlSeconds: number | undefined;
}

/** Rows of one table the transaction left in place, by primary key text. */
interface TableRows {
  readonly target: Target;
  readonly schema: string;
  readonly table: string;
  readonly ids: Map<string, unknown>;
}

/**
 * Write-through of committed row images (docs/protocol.md, "Write-through"). After prepare, the database's
 * capture says exactly which rows of cached entities this transaction inserted or updated (the new images of every
 * statement, whoever ran it: the unit of work, raw SQL, a trigger). Those rows are read again, inside the
 * transaction and after all of its writes, through the fill path, and handed to the cache transaction, so promote
 * writes them where the lock was never shared instead of evicting them: the next read is a hit.
 *
 * Why the rows are read again rather than decoded from the capture's JSON images: the images are `to_jsonb` of
 * the row, which loses what the driver sees (numeric scale, int8 beyond 2^53, json key order, the text of
 * timestamps and bytea, what `@Formula` and custom types compute in the SELECT); a read through the fill path is
 * exact by construction. It costs one SELECT per table written, in the same transaction, just before COMMIT.
 *
 * Why only captured rows: a row in a new image was written by this transaction, which holds its row lock until
 * COMMIT, so no other transaction can change it between this read and the commit (a row named by the ORM but
 * not actually written, or written in a savepoint that rolled back, holds no lock, and is evicted instead).
 *
 * Not written through (evicted as before): deleted rows; rows of a statement that changed more than
 * `ROW_KEYS_PER_STATEMENT` rows (the table's row region is renewed instead); entities with single-table
 * inheritance, or whose primary key does not print as readers key it; tables this process does not cache.
 */
export class RowWriteThrough {
  readonly #targets = new Map<string, Target>();

  constructor(all: Iterable<EntityMetadata>) {
    for (const meta of all) {
      const settings = entityCacheOf(meta);
      if (!settings || meta.embeddable || meta.virtual || (meta.root && meta.root !== meta) || meta.discriminatorColumn) continue;
      if (meta.primaryKeys.length !== 1) continue;
      const pkProp = meta.primaryKeys[0] as string;
      const pk = meta.properties[pkProp];
      if (pk?.fieldNames?.length !== 1 || !keyedByText(pk)) continue;
      this.#targets.set(meta.tableName, { meta, pkProp, pkColumn: pk.fieldNames[0] as string, ttlSeconds: settings.ttlSeconds });
    }
  }

  /**
   * Reads the rows the transaction's captured changes left in place and supplies them to `tx`, which must be
   * prepared and not yet committed. Returns how many values promote will write. Throws what the read throws: the
   * caller must then not commit (a failed statement aborted the database transaction).
   */
  async supply(tx: CacheTransaction, load: RowImageLoader, options: { readonly rowTtlSeconds: number; readonly cacheable: (table: string) => boolean }): Promise<number> {
    const tables = this.#rowsOf(tx.captured, options.cacheable);
    if (tables.length === 0) return 0;
    const named = new Set(tx.touched.keys);
    return tx.supplyValues(
      tables.map((t) => regions.rows(t.table)),
      async () => {
        const values: SuppliedValue[] = [];
        for (const { target, schema, table, ids } of tables) {
          const rows = await load(target.meta, schema, [...ids.values()]);
          for (const row of rows) {
            const key = keys.row(table, pkString(row[target.pkProp]));
            if (!named.has(key)) continue;
            values.push({ key, payload: encodeValue(row), ttlSeconds: target.ttlSeconds ?? options.rowTtlSeconds, regions: [regions.rows(table)] });
          }
        }
        return values;
      },
    );
  }

  /** Rows in the new images of captured inserts and updates, per table, in the order first written. */
  #rowsOf(changes: readonly CapturedChange[], cacheable: (table: string) => boolean): TableRows[] {
    const byTable = new Map<string, TableRows>();
    for (const change of changes) {
      if (change.op !== 'INSERT' && change.op !== 'UPDATE') continue;
      const target = this.#targets.get(change.table);
      const images = change.newRows ?? [];
      if (!target || images.length === 0 || images.length > ROW_KEYS_PER_STATEMENT) continue;
      const table = `${change.schema}.${change.table}`;
      if (!cacheable(table)) continue;
      let rows = byTable.get(table);
      if (!rows) byTable.set(table, (rows = { target, schema: change.schema, table, ids: new Map() }));
      for (const image of images) {
        const pk = image[target.pkColumn];
        if (pk !== undefined && pk !== null) rows.ids.set(pkString(pk), pk);
      }
    }
    return [...byTable.values()].filter((t) => t.ids.size > 0);
  }
}
