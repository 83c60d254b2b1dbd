import { v4 as uuidv4 } from 'uuid';
import type { CacheStore } from '../store/cache-store.js';
import { applyTransitions } from './cas-batch.js';
import { promoteTransition } from './key-transitions.js';
import { CacheReader } from './cache-reader.js';
import { CacheStats } from './cache-stats.js';
import { currentGenerations } from './region-generations.js';
import { CacheTransaction } from './cache-transaction.js';
import type { TransitionTtls } from './cas-batch.js';
import { listInDoubt, type InDoubtTransaction } from './in-doubt.js';
import { DoneQueue, regionWriteKeys, unreachedRegions, type ProtocolContext } from './protocol-context.js';
import { resolveProtocolOptions, type ProtocolOptions, type ResolvedProtocolOptions } from './protocol-options.js';
import { sweep, type SweepOptions, type SweepReport } from './recovery-sweeper.js';
import type { SqlRunner } from './sql-runner.js';
import { TransactionLog } from './transaction-log.js';
import { EntrySealer } from './entry-sealer.js';
import { WriteCapture, type CaptureDeriver } from './write-capture.js';
import { lockHolders } from './entry.js';
import { SchemeRegistry } from './conjunction-schemes.js';
import { RecentStates } from './recent-states.js';
import { LocalTransactions } from './local-transactions.js';

/**
 * The transactional cache: one per process (or per ORM), over one {@link CacheStore} and one PostgreSQL log table.
 *
 * - Reads: {@link XaCache.reader} (`read`/`readMany`, `fill`, `fetch`).
 * - Writes: {@link XaCache.begin} gives a {@link CacheTransaction} per database transaction.
 * - Recovery: {@link XaCache.sweep} and {@link XaCache.listInDoubt}.
 */
export class XaCache {
  readonly options: ResolvedProtocolOptions;
  readonly stats = new CacheStats();
  readonly log: TransactionLog;
  readonly reader: CacheReader;
  /** The database-side write capture (its change table and triggers are named after the log table). */
  readonly capture: WriteCapture;
  readonly #ctx: ProtocolContext;
  #deriver: CaptureDeriver | undefined;
  #inFlightTable: (region: string) => string | undefined = () => undefined;
  /** Conjunction schemes per table (see `conjunction-schemes.ts`). */
  readonly schemes: SchemeRegistry;
  readonly #doneQueue = new DoneQueue();
  readonly #codec: EntrySealer;

  constructor(
    readonly store: CacheStore,
    options: ProtocolOptions = {},
  ) {
    this.options = resolveProtocolOptions(options);
    this.log = new TransactionLog(this.options.logTable, this.options.logNamespace);
    this.capture = new WriteCapture(this.options.logTable);
    this.#codec = new EntrySealer(this.options.secrets, {
      encrypt: this.options.encryptValues,
      onRefused: (reason, key) => {
        if (reason === 'misbound') {
          // No secret: a copy or an accident, not proof of an attacker; counted, not logged per read.
          this.stats.keyMismatches++;
          return;
        }
        this.stats.forgedEntries++;
        this.options.logger?.('warn', `refused a cache entry that failed authentication (${reason})`, { key });
      },
    });
    const base: TransitionTtls = { lock: this.options.lockTtlSeconds, forever: 0, value: () => this.options.valueTtlSeconds };
    const ctx: Omit<ProtocolContext, 'schemes'> = {
      recent: new RecentStates(),
      local: new LocalTransactions(),
      store,
      options: this.options,
      stats: this.stats,
      log: this.log,
      doneQueue: this.#doneQueue,
      codec: this.#codec,
      capture: () => (this.#deriver && !this.options.unsafeTestSwitches.skipCapture ? { capture: this.capture, derive: this.#deriver, inFlightTable: this.#inFlightTable } : undefined),
      ttls: (valueTtl) =>
        valueTtl && valueTtl.size > 0 ? { ...base, value: (key) => valueTtl.get(key) ?? this.options.valueTtlSeconds } : base,
    };
    this.schemes = new SchemeRegistry(ctx);
    this.#ctx = { ...ctx, schemes: this.schemes };
    this.reader = new CacheReader(this.#ctx);
  }

  /**
   * Makes every prepare take the changes the database captured in its transaction and lock the keys `derive`
   * names for them (see {@link WriteCapture}). The MikroORM layer installs it; without it, prepare locks only
   * the keys the caller named.
   */
  useCapture(derive: CaptureDeriver, inFlightTable?: (region: string) => string | undefined): void {
    this.#deriver = derive;
    if (inFlightTable) this.#inFlightTable = inFlightTable;
  }

  /**
   * Binds every entry to a data scope (the database's identity, see `readDataIdentity`): values written from now
   * on name the scope with their key, and values of another scope read as foreign. The store's key prefix is the
   * caller's to narrow to the same scope, so that databases do not even share keys.
   */
  scopeTo(scope: string): void {
    this.#codec.setScope(scope);
    this.schemes.forget();
    this.#ctx.recent.clear();
  }

  /**
   * The current generation of each region, as a reader would record it (see `currentGenerations`): for values a
   * transaction supplies to promote (`CacheTransaction.supplyValues`), read before its COMMIT.
   */
  regionGenerations(regions: readonly string[]): Promise<Map<string, string>> {
    return currentGenerations(this.#ctx, regions);
  }

  /** Starts the cache side of a database transaction. */
  begin(): CacheTransaction {
    return new CacheTransaction(this.#ctx);
  }

  /**
   * Evicts keys now, outside any transaction (an explicit `clearCache`): values and leases are deleted, locks of
   * running transactions are marked concurrent so their holders will not write values over the eviction.
   */
  async evict(keys: readonly string[]): Promise<void> {
    await this.invalidateNow(keys, []);
  }

  /**
   * Invalidates item keys and regions now, outside any transaction, for a change that is already committed (an
   * outside writer's, or an explicit invalidation): values and leases are deleted (a reader that loaded the old
   * value cannot fill it afterwards), regions lose their generation, and locks of running transactions are marked
   * concurrent so their holders write no value over it. Resolves to the keys that could not be reached.
   */
  async invalidateNow(keys: readonly string[], regions: readonly string[]): Promise<string[]> {
    const outsider = uuidv4();
    const copies = regions.map((region) => [region, regionWriteKeys(region, this.store)] as const);
    const all = [...keys, ...copies.flatMap(([, copyKeys]) => copyKeys)];
    const outcomes = await applyTransitions(this.store, all, (key, current) => promoteTransition(current, outsider, key.startsWith('r:') ? 'region' : 'item', undefined), this.#ctx.ttls(), {
      codec: this.#ctx.codec,
      maxRounds: this.options.maxCasRounds,
    });
    const reached = (key: string): boolean => outcomes.get(key)?.status === 'done';
    // A paired region is reached when one of its copies is, a spread one when all are (docs/protocol.md).
    return [...keys.filter((key) => !reached(key)), ...unreachedRegions(copies, reached)];
  }

  /**
   * Applies the changes the database captured for transactions that did not run this library's prepare (another
   * program, psql, a statement sent outside the library's transactions): evicts what they name, then deletes
   * them. Changes whose keys could not all be reached stay for the next call. Any number of processes may call it
   * at once. Resolves to the number of changes applied.
   */
  async applyOutsideChanges(db: SqlRunner, options: { limit?: number; claimMs?: number } = {}): Promise<number> {
    const derive = this.#deriver;
    // `skipCapture` stands for "no database-side capture at all": outside changes are not applied either;
    // `skipOutsideChanges` for "nobody follows the feed".
    if (!derive || this.options.unsafeTestSwitches.skipCapture || this.options.unsafeTestSwitches.skipOutsideChanges) return 0;
    let applied = 0;
    for (;;) {
      const limit = options.limit ?? 500;
      const { ids, changes } = await this.capture.claimOutside(db, limit, options.claimMs ?? 30_000);
      if (ids.length === 0) break;
      const { keys, regions } = await this.#deriveWithSchemes(derive, changes);
      let unreached: string[];
      try {
        unreached = await this.invalidateNow([...keys], [...regions]);
      } catch (error) {
        await this.capture.finishOutside(db, ids, true);
        throw error;
      }
      if (unreached.length > 0) {
        await this.capture.finishOutside(db, ids, true);
        this.options.logger?.('warn', 'outside changes left for the next run: some keys could not be reached', { count: unreached.length });
        return applied;
      }
      await this.capture.finishOutside(db, ids);
      this.stats.outsideChanges += ids.length;
      applied += ids.length;
      if (ids.length < limit) break;
    }
    return applied;
  }

  /**
   * Derives the keys of committed changes with the scheme sets of their tables read now: the changes committed
   * before this read, so a scheme added after it is established only for reads after the commit.
   */
  async #deriveWithSchemes(derive: CaptureDeriver, changes: Parameters<CaptureDeriver>[0]): Promise<ReturnType<CaptureDeriver>> {
    const first = derive(changes);
    if (!first.schemeTables || first.schemeTables.size === 0) return first;
    const views = await this.schemes.read(first.schemeTables.keys());
    return derive(changes, (table) => views.get(table));
  }

  /**
   * Renews every region of these tables (`rows`, `coll`, `t`: all their rows, collections and query results), as
   * if each had been truncated: for when changes may have been missed and nobody can say which. Resolves to the
   * regions that could not be reached (the caller retries).
   */
  async renewTables(tables: ReadonlyArray<{ schema: string; table: string }>): Promise<string[]> {
    const derive = this.#deriver;
    if (!derive || tables.length === 0) return [];
    const { regions } = derive(tables.map(({ schema, table }) => ({ schema, table, op: 'TRUNCATE' as const })));
    return this.invalidateNow([], [...regions]);
  }

  /** Creates the log table if it does not exist. */
  async ensureLogTable(db: SqlRunner): Promise<void> {
    await this.log.ensureTable(db);
  }

  /** Resolves in-doubt transactions of the log (see {@link sweep}). */
  async sweep(db: SqlRunner, options?: SweepOptions): Promise<SweepReport> {
    if (!this.stats.observed) return sweep(this.#ctx, db, options);
    const end = this.stats.start('sweep', {});
    try {
      const report = await sweep(this.#ctx, db, options);
      end({ resolved: report.resolved, unresolved: report.unresolved, keys: report.keys, batches: report.batches, outcome: report.unresolved === 0 ? 'ok' : 'unresolved' });
      return report;
    } catch (error) {
      end({ outcome: 'failed' }, error);
      throw error;
    }
  }

  /** Lists in-doubt transactions with their keys' states. */
  listInDoubt(db: SqlRunner, limit?: number): Promise<InDoubtTransaction[]> {
    return listInDoubt(this.#ctx, db, limit);
  }

  /**
   * The holders of the locks among `keys` (logical keys), read now in one round trip per server; keys that are
   * not locks, or locks without holders, are left out. For the operator tool's scan of locks left by transactions
   * that never committed.
   */
  async lockHolders(keys: readonly string[]): Promise<Map<string, string[]>> {
    const fetched = await this.store.getMulti([...keys]);
    const holders = new Map<string, string[]>();
    for (const [key, item] of fetched.items) {
      const entry = this.#ctx.codec.decode(key, item.value);
      if (entry.kind !== 'lock') continue;
      const held = lockHolders(entry);
      if (held.length > 0) holders.set(key, [...held]);
    }
    return holders;
  }

  /** How many promoted transactions wait for their log rows to be deleted. */
  get pendingLogDeletes(): number {
    return this.#doneQueue.size;
  }

  /**
   * Deletes the log rows of promoted transactions now, in one statement, instead of waiting for the next
   * transaction to carry them. Call it when traffic stops (shutdown) so the sweeper has nothing to redo.
   */
  async flushLogDeletes(db: SqlRunner): Promise<number> {
    const ids = this.#doneQueue.take(Number.MAX_SAFE_INTEGER);
    try {
      await this.log.deleteRows(db, ids);
    } catch (error) {
      this.#doneQueue.push(...ids);
      throw error;
    }
    return ids.length;
  }
}
