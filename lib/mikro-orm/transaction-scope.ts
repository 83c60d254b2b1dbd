import type { CacheTransaction } from '../protocol/cache-transaction.js';
import type { XaCache } from '../protocol/xa-cache.js';
import { regions } from './cache-keys.js';
import type { CallContext } from './call-context.js';

/** PostgreSQL isolation levels as MikroORM names them. */
export type IsolationLevel = 'read uncommitted' | 'read committed' | 'repeatable read' | 'serializable';

/**
 * What one database transaction (or one savepoint inside it) wrote, gathered from every write path until the
 * top-level COMMIT, when it becomes a {@link CacheTransaction}: the item keys it changed, the regions it touched,
 * and the tables it wrote (reads of those tables inside the transaction bypass the cache, so it sees its own
 * writes). A savepoint's scope is merged into its parent when released, and also when rolled back (its keys are
 * then only evicted, which is never wrong).
 */
export class TransactionScope {
  readonly keys = new Set<string>();
  readonly regions = new Set<string>();
  readonly writtenTables = new Set<string>();
  /** Set when a statement whose tables could not be determined ran: every cached read bypasses the cache. */
  unknownWrites = false;

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

  /** Records a write statement on tables, with what the caller already named precisely. */
  recordWrite(tables: readonly string[], call: CallContext): void {
    for (const table of tables) {
      this.writtenTables.add(table);
      this.regions.add(regions.query(table));
      if (!call.preciseRows) this.regions.add(regions.rows(table));
      if (!call.preciseCollections && !call.uowFlush) this.regions.add(regions.collections(table));
    }
  }

  /** Records regions directly (the subscriber, for pivot tables). */
  touchRegions(names: Iterable<string>): void {
    for (const name of names) this.regions.add(name);
  }

  /**
   * Whether reads of a table inside this transaction must bypass the cache: above READ COMMITTED the cache may hold
   * values newer than the snapshot (G5); after the transaction wrote the table it must see its own rows (G4).
   */
  mustBypass(table: string): boolean {
    if (this.isolation === 'repeatable read' || this.isolation === 'serializable') return true;
    for (let scope: TransactionScope | undefined = this; scope; scope = scope.parent) {
      if (scope.unknownWrites || scope.writtenTables.has(table)) return true;
    }
    return false;
  }

  /** Folds a finished savepoint into this scope. */
  absorb(child: TransactionScope): void {
    for (const key of child.keys) this.keys.add(key);
    for (const region of child.regions) this.regions.add(region);
    for (const table of child.writtenTables) this.writtenTables.add(table);
    this.unknownWrites ||= child.unknownWrites;
  }

  /** The cache transaction for the top-level COMMIT, or undefined when nothing was written. */
  toCacheTransaction(xa: XaCache): CacheTransaction | undefined {
    if (this.isEmpty) return undefined;
    const tx = xa.begin();
    tx.invalidate(this.keys);
    tx.touchRegions(this.regions);
    return tx;
  }
}
