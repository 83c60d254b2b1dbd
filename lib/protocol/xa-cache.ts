import { v4 as uuidv4 } from 'uuid';
import type { CacheStore } from '../store/cache-store.js';
import { applyTransitions } from './cas-batch.js';
import { promoteTransition } from './key-transitions.js';
import { CacheReader } from './cache-reader.js';
import { CacheStats } from './cache-stats.js';
import { CacheTransaction } from './cache-transaction.js';
import type { TransitionTtls } from './cas-batch.js';
import { listInDoubt, type InDoubtTransaction } from './in-doubt.js';
import { DoneQueue, type ProtocolContext } from './protocol-context.js';
import { resolveProtocolOptions, type ProtocolOptions, type ResolvedProtocolOptions } from './protocol-options.js';
import { sweep, type SweepOptions, type SweepReport } from './recovery-sweeper.js';
import type { SqlRunner } from './sql-runner.js';
import { TransactionLog } from './transaction-log.js';
import { EntrySealer } from './entry-sealer.js';
import { lockHolders } from './entry.js';

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
  readonly #ctx: ProtocolContext;
  readonly #doneQueue = new DoneQueue();

  constructor(
    readonly store: CacheStore,
    options: ProtocolOptions = {},
  ) {
    this.options = resolveProtocolOptions(options);
    this.log = new TransactionLog(this.options.logTable, this.options.logNamespace);
    const base: TransitionTtls = { lock: this.options.lockTtlSeconds, forever: 0, value: () => this.options.valueTtlSeconds };
    this.#ctx = {
      store,
      options: this.options,
      stats: this.stats,
      log: this.log,
      doneQueue: this.#doneQueue,
      codec: new EntrySealer(this.options.secrets, {
        encrypt: this.options.encryptValues,
        onRefused: (reason, key) => {
          this.stats.forgedEntries++;
          this.options.logger?.('warn', `refused a cache entry that failed authentication (${reason})`, { key });
        },
      }),
      ttls: (valueTtl) =>
        valueTtl && valueTtl.size > 0 ? { ...base, value: (key) => valueTtl.get(key) ?? this.options.valueTtlSeconds } : base,
    };
    this.reader = new CacheReader(this.#ctx);
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
    const outsider = uuidv4();
    await applyTransitions(this.store, keys, (_key, current) => promoteTransition(current, outsider, 'item', undefined), this.#ctx.ttls(), {
      codec: this.#ctx.codec,
      maxRounds: this.options.maxCasRounds,
    });
  }

  /** Creates the log table if it does not exist. */
  async ensureLogTable(db: SqlRunner): Promise<void> {
    await this.log.ensureTable(db);
  }

  /** Resolves in-doubt transactions of the log (see {@link sweep}). */
  sweep(db: SqlRunner, options?: SweepOptions): Promise<SweepReport> {
    return sweep(this.#ctx, db, options);
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
      if (held.length > 0) holders.set(key, held);
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
