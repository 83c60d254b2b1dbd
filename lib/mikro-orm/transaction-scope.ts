import type { CacheTransaction } from '../protocol/cache-transaction.js';
import type { XaCache } from '../protocol/xa-cache.js';
import { regions } from './cache-keys.js';
import type { NamedRow } from './write-through.js';

/** PostgreSQL isolation levels as MikroORM names them. */
export type IsolationLevel = 'read uncommitted' | 'read committed' | 'repeatable read' | 'serializable';

/**
 * What one database transaction (or one savepoint inside it) is known to write before its COMMIT, gathered from
 * the unit of work, the driver and the SQL the connection sees: the item keys it changed and the regions it
 * touched. Naming them early lets prepare lock them while the log statement runs; what the database itself did
 * (triggers, cascades, Kysely, functions) is added at prepare from the database-side capture. A savepoint's scope
 * is merged into its parent when released, and also when rolled back (its keys are then only evicted, which is
 * never wrong).
 */
export class TransactionScope {
  readonly keys = new Set<string>();
  readonly regions = new Set<string>();
  /** Rows of cached entities the ORM's writes named by primary key, by row key: write-through reads them early. */
  readonly namedRows = new Map<string, NamedRow>();

  constructor(
    readonly isolation: IsolationLevel,
    readonly parent: TransactionScope | undefined,
  ) {}

  /** True when no write was recorded. */
  get isEmpty(): boolean {
    return this.keys.size === 0 && this.regions.size === 0;
  }

  /** Records item keys (rows, collections) this transaction changed. */
  invalidate(keys: Iterable<string>): void {
    for (const key of keys) this.keys.add(key);
  }

  /** Records rows a write names by primary key, for write-through (they are locked through `invalidate` or the capture). */
  nameRows(rows: Iterable<[string, NamedRow]>): void {
    for (const [key, row] of rows) this.namedRows.set(key, row);
  }

  /** Records a write statement on tables: results read from them are invalidated (rows: by the capture). */
  recordWrite(tables: readonly string[]): void {
    for (const table of tables) this.regions.add(regions.query(table));
  }

  /** Records regions directly (the subscriber, for pivot tables). */
  touchRegions(names: Iterable<string>): void {
    for (const name of names) this.regions.add(name);
  }

  /** Folds a finished savepoint into this scope. */
  absorb(child: TransactionScope): void {
    for (const key of child.keys) this.keys.add(key);
    for (const region of child.regions) this.regions.add(region);
    for (const [key, row] of child.namedRows) this.namedRows.set(key, row);
  }

  /** The cache transaction for the top-level COMMIT (which may still learn writes from the database's capture). */
  toCacheTransaction(xa: XaCache): CacheTransaction {
    const tx = xa.begin();
    tx.invalidate(this.keys);
    tx.touchRegions(this.regions);
    return tx;
  }
}
