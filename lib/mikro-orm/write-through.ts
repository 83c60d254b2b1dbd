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

/** A row of a cached entity that a write of the ORM named by primary key (see `TransactionScope.nameRows`). */
export interface NamedRow {
  readonly meta: EntityMetadata;
  /** The schema the write ran against (`schema.table` of the row key). */
  readonly schema: string;
  readonly id: unknown;
}

/** What {@link RowWriteThrough.readEarly} read before prepare. */
export interface EarlyImages {
  /** Row keys read (a key without a row: the row is gone). */
  readonly read: ReadonlySet<string>;
  readonly rows: ReadonlyMap<string, Row>;
}

const NOTHING_EARLY: EarlyImages = { read: new Set(), rows: new Map() };

/** A cached entity whose rows can be written through. */
interface Target {
  readonly meta: EntityMetadata;
  readonly pkProp: string;
  readonly pkColumn: string;
  readonly ttlSeconds: number | undefined;
}

/** Rows of one table, by row key. */
interface TableRows {
  readonly target: Target;
  readonly schema: string;
  readonly table: string;
  readonly ids: Map<string, unknown>;
}

/**
 * Write-through of committed row images (docs/protocol.md, "Write-through"). After prepare, the database's
 * capture says exactly which rows of cached entities this transaction inserted or updated (the new images of every
 * statement, whoever ran it: the unit of work, raw SQL, a trigger). Those rows, read inside the transaction after
 * all of its writes through the fill path, are handed to the cache transaction, so promote writes them where the
 * lock was never shared instead of evicting them: the next read is a hit.
 *
 * Two reads, to keep the locks short. Before prepare ({@link readEarly}), the rows the ORM's own writes named by
 * primary key (a flush's updates and inserts) are read, and their tables' row-region generations with them: the
 * transaction has written everything by then, and nothing is locked in memcached yet, so readers keep hitting
 * meanwhile. After prepare ({@link supply}), only captured rows nobody named (raw SQL, triggers) are read, while
 * the keys are locked.
 *
 * Why the rows are read again rather than decoded from the capture's JSON images: the images are `to_jsonb` of
 * the row, which loses what the driver sees (numeric scale, int8 beyond 2^53, json key order, the text of
 * timestamps and bytea, what `@Formula` and custom types compute in the SELECT); a read through the fill path is
 * exact by construction.
 *
 * Why only captured rows: a row in a new image was written by this transaction, which holds its row lock until
 * COMMIT, so no other transaction can change it between the read and the commit (a row named by the ORM but not
 * actually written, or written in a savepoint that rolled back, holds no lock, and is evicted instead).
 *
 * Not written through (evicted as before): deleted rows; rows of a statement that changed more than
 * `ROW_KEYS_PER_STATEMENT` rows (the table's row region is renewed instead); entities with single-table
 * inheritance, or whose primary key does not print as readers key it; tables this process does not cache.
 */
export class RowWriteThrough {
  /** Entities by table name: several entities may map one table name in different schemas. */
  readonly #targets = new Map<string, Target[]>();

  constructor(all: Iterable<EntityMetadata>) {
    for (const meta of all) {
      const settings = entityCacheOf(meta);
      if (!settings || meta.embeddable || meta.virtual || (meta.root && meta.root !== meta) || meta.discriminatorColumn) continue;
      if (meta.primaryKeys.length !== 1) continue;
      const pkProp = meta.primaryKeys[0] as string;
      const pk = meta.properties[pkProp];
      if (pk?.fieldNames?.length !== 1 || !keyedByText(pk)) continue;
      const list = this.#targets.get(meta.tableName) ?? [];
      list.push({ meta, pkProp, pkColumn: pk.fieldNames[0] as string, ttlSeconds: settings.ttlSeconds });
      this.#targets.set(meta.tableName, list);
    }
  }

  /**
   * The one entity whose rows table `table` of `schema` holds: one with that fixed schema, or one without a fixed
   * schema (read with `schema` given). None when no entity, or more than one, could be it: the key is then evicted,
   * since reading through another entity (another schema's table, other columns) would store rows under keys
   * that name other data (G14).
   */
  #targetOf(schema: string, table: string): Target | undefined {
    const candidates = (this.#targets.get(table) ?? []).filter((t) => {
      const fixed = t.meta.schema && t.meta.schema !== '*' ? t.meta.schema : undefined;
      return fixed === undefined || fixed === schema;
    });
    return candidates.length === 1 ? candidates[0] : undefined;
  }

  /**
   * Before prepare, after the transaction's last write: reads the rows its ORM writes named, and asks `tx` to read
   * the generations of their tables' row regions with its locks. Throws what the read throws (the transaction is
   * then aborted).
   */
  async readEarly(named: ReadonlyMap<string, NamedRow>, tx: CacheTransaction, load: RowImageLoader, cacheable: (table: string) => boolean): Promise<EarlyImages> {
    const tables = new Map<string, TableRows>();
    for (const [key, row] of named) {
      const target = this.#targetOf(row.schema, row.meta.tableName);
      const table = `${row.schema}.${row.meta.tableName}`;
      if (!target || target.meta !== row.meta || !cacheable(table)) continue;
      let rows = tables.get(table);
      if (!rows) tables.set(table, (rows = { target, schema: row.schema, table, ids: new Map() }));
      rows.ids.set(key, row.id);
    }
    if (tables.size === 0) return NOTHING_EARLY;
    tx.readGenerationsWithPrepare([...tables.keys()].map((t) => regions.rows(t)));
    const rows = await this.#read([...tables.values()], load);
    const read = new Set<string>();
    for (const t of tables.values()) for (const key of t.ids.keys()) read.add(key);
    return { read, rows };
  }

  /**
   * After prepare, before COMMIT: supplies `tx` the images of the rows the capture shows it inserted or updated,
   * from `early` where they were read then, else read now. Returns how many values promote will write. Throws what
   * the read throws: the caller must then not commit (a failed statement aborted the database transaction).
   */
  async supply(tx: CacheTransaction, early: EarlyImages, load: RowImageLoader, options: { readonly rowTtlSeconds: number; readonly cacheable: (table: string) => boolean }): Promise<number> {
    const tables = this.#rowsOf(tx.captured, options.cacheable);
    if (tables.length === 0) return 0;
    const named = new Set(tx.touched.keys);
    const rows = new Map<string, Row>();
    const late: TableRows[] = [];
    for (const t of tables) {
      const unread = new Map<string, unknown>();
      for (const [key, id] of t.ids) {
        const row = early.rows.get(key);
        if (row) rows.set(key, row);
        else if (!early.read.has(key)) unread.set(key, id);
      }
      if (unread.size > 0) late.push({ ...t, ids: unread });
    }
    // Read with prepare's locks where `readEarly` asked for them; the rest now, with the rows only the capture named.
    const [generations, lateRows] = await Promise.all([tx.generationsOf(tables.map((t) => regions.rows(t.table))), late.length > 0 ? this.#read(late, load) : undefined]);
    for (const [key, row] of lateRows ?? []) rows.set(key, row);
    const values: SuppliedValue[] = [];
    for (const t of tables) {
      for (const key of t.ids.keys()) {
        const row = rows.get(key);
        if (row && named.has(key)) values.push({ key, payload: encodeValue(row), ttlSeconds: t.target.ttlSeconds ?? options.rowTtlSeconds, regions: [regions.rows(t.table)] });
      }
    }
    return tx.supplyValues(values, generations);
  }

  /** One SELECT per table; the rows by row key (a row whose key was not asked for is left out). */
  async #read(tables: readonly TableRows[], load: RowImageLoader): Promise<Map<string, Row>> {
    const found = new Map<string, Row>();
    for (const { target, schema, table, ids } of tables) {
      for (const row of await load(target.meta, schema, [...ids.values()])) {
        const key = keys.row(table, pkString(row[target.pkProp]));
        if (ids.has(key)) found.set(key, row);
      }
    }
    return found;
  }

  /** Rows in the new images of captured inserts and updates, per table, by row key. */
  #rowsOf(changes: readonly CapturedChange[], cacheable: (table: string) => boolean): TableRows[] {
    const byTable = new Map<string, TableRows>();
    for (const change of changes) {
      if (change.op !== 'INSERT' && change.op !== 'UPDATE') continue;
      const target = this.#targetOf(change.schema, change.table);
      const images = change.newRows ?? [];
      if (!target || images.length === 0 || images.length > ROW_KEYS_PER_STATEMENT) continue;
      const table = `${change.schema}.${change.table}`;
      if (!cacheable(table)) continue;
      let rows = byTable.get(table);
      if (!rows) byTable.set(table, (rows = { target, schema: change.schema, table, ids: new Map() }));
      for (const image of images) {
        const pk = image[target.pkColumn];
        if (pk !== undefined && pk !== null) rows.ids.set(keys.row(table, pkString(pk)), pk);
      }
    }
    return [...byTable.values()].filter((t) => t.ids.size > 0);
  }
}
