import { v4 as uuidv4 } from 'uuid';
import type { StoreOp, StoreResult } from '../store/cache-store.js';
import type { StoreError } from '../store/store-errors.js';
import type { KnownState, ReadAfterWrites, TransitionOutcome } from './cas-batch.js';
import { applyTransitions } from './cas-batch.js';
import { lockHolders, type DecodedEntry, type Entry } from './entry.js';
import { prepareTransition, promoteTransition, releaseTransition, type KeyRole, type Transition } from './key-transitions.js';
import { CachePrepareError, ProtocolStateError } from './protocol-errors.js';
import { generationGroup, regionWriteKeys, unreachedRegions, type CaptureHook, type ProtocolContext } from './protocol-context.js';
import type { SqlRunner } from './sql-runner.js';
import type { CapturedChange, CapturedKeys } from './write-capture.js';
import { schemeKey, type SchemeView } from './conjunction-schemes.js';
import { currentGenerations, generationReadKeys, generationsFrom } from './region-generations.js';

/** Where a {@link CacheTransaction} is in its life. */
export type CacheTransactionState = 'open' | 'prepared' | 'promoted' | 'released';

/** What promote or release did. */
export interface CompletionReport {
  readonly txId: string;
  /** Keys written with their new value. */
  readonly written: number;
  /** Keys evicted (or, for regions, given a new generation). */
  readonly evicted: number;
  /** Keys that could not be reached; lock expiry and the sweeper take care of them. */
  readonly unresolved: number;
}

/** A value learnt after prepare: the committed image of an item key the transaction locked (see {@link CacheTransaction.supplyValues}). */
export interface SuppliedValue {
  readonly key: string;
  readonly payload: Buffer;
  /** The value's TTL; default `valueTtlSeconds`. */
  readonly ttlSeconds?: number;
  /** The regions readers validate the value against (a row: its table's row region), recorded with their generations. */
  readonly regions: readonly string[];
}

const CARRIED_DONE_IDS = 500;

/** The captured changes of a transaction and the tables whose scheme sets prepare read. */
interface SchemeCheck {
  readonly captured: readonly CapturedChange[];
  readonly derive: CaptureHook['derive'];
  readonly tables: readonly string[];
  /** The sets as read along promote's writes, when they were. */
  views?: ReadonlyMap<string, SchemeView>;
}

/**
 * The cache side of one database transaction. Call protocol, in this order:
 *
 * 1. while the transaction runs: {@link invalidate} / {@link put} the item keys it changes and
 *    {@link touchRegions} the tables it writes;
 * 2. just before the database COMMIT, inside the transaction: {@link prepare} — locks every key (one round trip
 *    to write; one more to read first the keys this process has not seen lately) while inserting the transaction's
 *    log row through the same database connection;
 * 3. after COMMIT returned: {@link promote}; after ROLLBACK: {@link release}. If COMMIT's outcome is unknown,
 *    call neither: the locks expire, and if the transaction did commit the sweeper finds its log row.
 *
 * Races it prevents: a reader that loaded the old row before the commit cannot fill it afterwards (the lock voids
 * its lease); a crash between COMMIT and promote leaves keys locked, never stale; two writers on one key leave it
 * evicted rather than holding the older value.
 */
export class CacheTransaction {
  /** The transaction id written into locks and the log. */
  readonly id: string = uuidv4();
  #state: CacheTransactionState = 'open';
  readonly #items = new Map<string, Entry | undefined>();
  readonly #valueTtls = new Map<string, number>();
  readonly #regions = new Set<string>();
  #locked = new Map<string, KnownState>();
  readonly #copyKeys = new Map<string, string[]>();
  #carriedDone: string[] = [];
  #degraded = false;
  /** How long prepare took, when observed: part of the commit overhead reported with promote. */
  #prepareMs = 0;
  #xid: string | undefined;
  #captured: readonly CapturedChange[] = [];
  /** What prepare derived conjunction regions from, for promote's second look at the scheme sets. */
  #schemeCheck: SchemeCheck | undefined;
  /** Regions whose generations prepare reads along its locks, and what it read (see `readGenerationsWithPrepare`). */
  readonly #generationsWanted = new Set<string>();
  #generationsRead: Map<string, string> | undefined;

  /** @internal built by `XaCache.begin()` */
  constructor(private readonly ctx: ProtocolContext) {}

  /** Where the transaction is in its life. */
  get state(): CacheTransactionState {
    return this.#state;
  }

  /** PostgreSQL's id of the database transaction, known after prepare. */
  get xid(): string | undefined {
    return this.#xid;
  }

  /** What the database captured in this transaction, taken at prepare (empty before, or without the capture). */
  get captured(): readonly CapturedChange[] {
    return this.#captured;
  }

  /** True when the `degrade` policy let it commit although some keys could not be locked. */
  get degraded(): boolean {
    return this.#degraded;
  }

  /** True when nothing was touched: prepare, promote and release are then free. */
  get isEmpty(): boolean {
    return this.#items.size === 0 && this.#regions.size === 0;
  }

  /** Item keys changed by this transaction whose new value is not known: they will be evicted. */
  invalidate(keys: Iterable<string>): void {
    this.#assertOpen('invalidate');
    for (const key of keys) {
      if (key.startsWith('r:')) throw new TypeError(`item keys may not start with "r:" (reserved for regions): ${key}`);
      this.#items.set(key, undefined);
    }
  }

  /** An item key whose exact committed value is known: promote writes it, unless another writer raced. */
  put(key: string, payload: Buffer, ttlSeconds?: number): void {
    this.#assertOpen('put');
    this.invalidate([key]);
    this.#items.set(key, { kind: 'value', generations: new Map(), payload });
    if (ttlSeconds !== undefined) this.#valueTtls.set(key, ttlSeconds);
  }

  /** Regions (tables) this transaction writes: every query result read from them is invalidated. */
  touchRegions(regions: Iterable<string>): void {
    this.#assertOpen('touchRegions');
    for (const region of regions) this.#regions.add(region);
  }

  /**
   * Write-through: regions whose current generations the values supplied after prepare will carry, read in the
   * same socket write as prepare's locks rather than in one of their own before it (still before the COMMIT, which
   * is what `supplyValues` needs). Call before `prepare`; `generationsOf` answers after it.
   */
  readGenerationsWithPrepare(regions: Iterable<string>): void {
    this.#assertOpen('readGenerationsWithPrepare');
    for (const region of regions) this.#generationsWanted.add(region);
  }

  /**
   * The current generations of `regions` (keyed as `XaCache.regionGenerations` keys them), from prepare's read
   * where it read them along, else read now. Call after `prepare`, before the COMMIT.
   */
  async generationsOf(regions: readonly string[]): Promise<Map<string, string>> {
    const read = this.#generationsRead;
    const unread = read ? regions.filter((region) => !this.#generationsWanted.has(region)) : regions;
    if (read && unread.length === 0) return read;
    const now = await currentGenerations(this.ctx, unread);
    return read ? new Map([...read, ...now]) : now;
  }

  /** The item keys and regions touched so far. */
  get touched(): { keys: string[]; regions: string[] } {
    return { keys: [...this.#items.keys()], regions: [...this.#regions] };
  }

  /**
   * Phase one, inside the database transaction and just before its COMMIT. Throws {@link CachePrepareError}
   * (after releasing what it locked) when the `strict` policy forbids the commit; the caller must then roll back.
   *
   * With the database-side capture in use, the log statement also takes what PostgreSQL captured in this
   * transaction (triggers, cascades, Kysely, functions…): keys it names that the caller did not are locked in a
   * second round and added to the log row, still before COMMIT. A transaction that named nothing sends one
   * statement to learn whether the database wrote anything.
   */
  async prepare(db: SqlRunner): Promise<void> {
    const { stats, options } = this.ctx;
    if (!stats.observed) return this.#prepare(db);
    const started = performance.now();
    const end = stats.start('prepare', { policy: options.failurePolicy });
    try {
      await this.#prepare(db);
      end({ keys: this.#items.size, regions: this.#regions.size, outcome: this.#degraded ? 'degraded' : 'ok' });
    } catch (error) {
      end({ keys: this.#items.size, regions: this.#regions.size, outcome: 'failed' }, error);
      throw error;
    } finally {
      this.#prepareMs = performance.now() - started;
    }
  }

  async #prepare(db: SqlRunner): Promise<void> {
    this.#assertOpen('prepare');
    this.#state = 'prepared';
    this.ctx.local.started(this.id);
    const hook = this.ctx.capture();
    if (this.isEmpty) {
      if (!hook) return;
      const captured = await hook.capture.take(db);
      this.#captured = captured;
      if (captured.length === 0 || !this.#addDerived(hook.derive(captured))) return;
      this.ctx.stats.capturedKeys += this.#items.size + this.#regions.size;
      return this.#prepareNamed(db, hook, captured);
    }
    return this.#prepareNamed(db, hook);
  }

  /**
   * Locks what was named while the log statement runs (which takes what the database captured, unless `taken`
   * already holds it), then locks what the captured changes add. Conjunction regions need the scheme sets of the
   * tables written, read only once the table's in-flight region is locked (docs/protocol.md, "Conjunction
   * regions"): for tables named early that read runs right after the first round, still alongside the log
   * statement; tables only the capture named are locked first, then read.
   */
  async #prepareNamed(db: SqlRunner, hook: CaptureHook | undefined, taken?: CapturedChange[]): Promise<void> {
    const { log, options, doneQueue, stats } = this.ctx;
    const { keys, regions } = this.touched;
    this.#carriedDone = doneQueue.take(CARRIED_DONE_IDS);
    const early: Array<[string, string]> = [];
    if (hook) for (const region of regions) {
      const table = hook.inFlightTable(region);
      if (table !== undefined) early.push([table, region]);
    }
    const along = this.#schemesAlongLocks(early);
    const readAfter = bothReads(along.readAfter, this.#generationsAlongLocks());
    const [recorded, locked] = await Promise.allSettled([
      options.unsafeTestSwitches.skipLog ? Promise.resolve({ xid: '0', captured: [] }) : log.record(db, this.id, keys, regions, this.#carriedDone, taken ? undefined : hook?.capture),
      this.#apply((_key, role, current, attempt) => prepareTransition(current, this.id, role, attempt), this.#recentStates(), undefined, readAfter).then(async (outcomes) => {
        const rest = early.filter(([table]) => !along.views.has(table));
        const views = rest.length > 0 ? await this.#readSchemes(rest, outcomes) : new Map<string, SchemeView>();
        for (const [table, view] of along.views) views.set(table, view);
        return { outcomes, views };
      }),
    ]);
    stats.prepares++;
    const outcomes = locked.status === 'fulfilled' ? locked.value.outcomes : undefined;
    if (outcomes) this.#remember(outcomes);
    if (recorded.status === 'rejected') {
      await this.release();
      throw recorded.reason;
    }
    this.#xid = recorded.value.xid;
    if (locked.status === 'rejected') {
      await this.release();
      throw locked.reason;
    }
    const captured = taken ?? recorded.value.captured;
    if (hook) this.#captured = captured;
    if (hook && outcomes && captured.length > 0) {
      const views = locked.value.views;
      // Round one names rows and in-flight regions; once those are locked, the scheme sets are read and round two
      // names the conjunction regions of every scheme seen. A third never finds a table it has not read.
      for (let round = 0; round < 3; round++) {
        const derived = hook.derive(captured, (table) => views.get(table));
        await this.#lockDerived(db, derived, outcomes);
        const unread = [...(derived.schemeTables ?? new Map<string, string>())].filter(([table]) => !views.has(table));
        if (unread.length === 0) break;
        for (const [table, view] of await this.#readSchemes(unread, outcomes)) views.set(table, view);
      }
      if (views.size > 0) this.#schemeCheck = { captured, derive: hook.derive, tables: [...views.keys()] };
    }
    const failures = outcomes ? this.#failuresOf(outcomes) : new Map<string, StoreError | 'contended'>();
    if (failures.size > 0) {
      if (options.failurePolicy === 'strict') {
        await this.release();
        throw new CachePrepareError(this.id, failures);
      }
      this.#degraded = true;
      stats.degradedCommits++;
      options.logger?.('warn', 'committing with cache keys that could not be locked (failure policy "degrade")', {
        txId: this.id,
        keys: [...failures.keys()].slice(0, 20),
      });
    }
  }

  /** Locks what a derivation adds to the transaction (and adds it to the log row), still before COMMIT. */
  async #lockDerived(db: SqlRunner, derived: CapturedKeys, outcomes: Map<string, TransitionOutcome>): Promise<void> {
    const { log, stats } = this.ctx;
    const before = new Set(this.#storeKeys());
    if (!this.#addDerived(derived)) return;
    const added = this.#storeKeys().filter((key) => !before.has(key));
    const extraItems = added.filter((key) => !key.startsWith('r:'));
    const extraRegions = [...this.#regions].filter((region) => !before.has(this.#copies(region)[0] as string));
    stats.capturedKeys += added.length;
    const [appended, extra] = await Promise.allSettled([
      log.addKeys(db, this.id, extraItems, extraRegions),
      this.#apply((_key, role, current) => prepareTransition(current, this.id, role), this.ctx.recent.statesOf(added), added),
    ]);
    if (extra.status === 'fulfilled') {
      for (const [key, outcome] of extra.value) {
        outcomes.set(key, outcome);
        if (outcome.status === 'done') this.#locked.set(key, outcome.state);
      }
    }
    if (appended.status === 'rejected' || extra.status === 'rejected') {
      await this.release();
      throw appended.status === 'rejected' ? appended.reason : (extra as PromiseRejectedResult).reason;
    }
  }

  /**
   * The scheme sets of tables, read after their in-flight regions' locks landed. A table none of whose in-flight
   * copies this transaction holds reads as `unreachable` (the deriver then renews its table-wide generation): a
   * read that is not ordered after the join would not protect a scheme registered meanwhile.
   */
  async #readSchemes(tables: ReadonlyArray<readonly [string, string]>, outcomes: ReadonlyMap<string, TransitionOutcome>): Promise<Map<string, SchemeView>> {
    const held = tables.filter(([, region]) => this.#copies(region).some((key) => outcomes.get(key)?.status === 'done'));
    const views = held.length > 0 ? await this.ctx.schemes.read(held.map(([table]) => table)) : new Map<string, SchemeView>();
    for (const [table] of tables) if (!views.has(table)) views.set(table, { state: 'unreachable' });
    return views;
  }

  /**
   * The scheme sets of tables read in the lock round itself, each right after its in-flight region's copy on the
   * same server (memcached answers a connection's requests in order, so the read sees the lock in place: the order
   * `#readSchemes` gets from a round trip of its own). `views` is filled once that round answered, for the tables
   * whose copy was locked in it; the others are read after the locks as before.
   */
  #schemesAlongLocks(tables: ReadonlyArray<readonly [string, string]>): { readAfter: ReadAfterWrites | undefined; views: Map<string, SchemeView> } {
    const views = new Map<string, SchemeView>();
    const { store, schemes } = this.ctx;
    const colocated = tables.filter(([table, region]) => this.#copies(region).some((key) => store.serverFor(key) === store.serverFor(schemeKey(table))));
    if (colocated.length === 0) return { readAfter: undefined, views };
    const onRead = (read: ReadonlyMap<string, StoreResult>, landed: ReadonlySet<string>): void => {
      for (const [table, region] of colocated) {
        const key = schemeKey(table);
        const server = store.serverFor(key);
        const result = read.get(key);
        if (!result || result.status === 'error' || !this.#copies(region).some((copy) => landed.has(copy) && store.serverFor(copy) === server)) continue;
        views.set(table, schemes.viewOf(table, result));
      }
    };
    return { readAfter: { keys: colocated.map(([table]) => schemeKey(table)), onRead }, views };
  }

  /** The read of the generations write-through asked for (`readGenerationsWithPrepare`), to send with the locks. */
  #generationsAlongLocks(): ReadAfterWrites | undefined {
    if (this.#generationsWanted.size === 0) return undefined;
    const groups = generationReadKeys(this.ctx, this.#generationsWanted);
    return {
      keys: [...groups.values()].flat(),
      onRead: (read) => {
        this.#generationsRead = generationsFrom(this.ctx, groups, (key) => {
          const result = read.get(key);
          return result?.status === 'hit' ? result.item.value : undefined;
        });
      },
    };
  }

  /** Adds what the capture named; true when anything was added. */
  #addDerived(derived: CapturedKeys): boolean {
    const size = this.#items.size + this.#regions.size;
    for (const key of derived.keys) if (!this.#items.has(key)) this.#items.set(key, undefined);
    for (const region of derived.regions) this.#regions.add(region);
    return this.#items.size + this.#regions.size > size;
  }

  /**
   * Write-through: between prepare and the database COMMIT, gives the exact committed values of item keys this
   * transaction locked, so promote writes them instead of evicting (only where the lock was never shared: another
   * writer's value may be newer). Each value is recorded with `generations` of its regions, which the caller read
   * (`generationsOf`, or `XaCache.regionGenerations`) before the COMMIT: any region-wide write that commits afterwards makes it
   * stale, as it does a fill. A value is dropped (its key is evicted as before) when one of its regions is written
   * by this transaction itself or has no generation there (it was locked by another writer, absent or
   * unreachable). Returns how many values promote will write.
   */
  supplyValues(values: readonly SuppliedValue[], generations: ReadonlyMap<string, string>): number {
    if (this.#state !== 'prepared') throw new ProtocolStateError(this.id, this.#state, 'supplyValues');
    let accepted = 0;
    for (const value of values) {
      if (!this.#items.has(value.key)) throw new TypeError(`supplyValues: ${value.key} is not a key of transaction ${this.id}`);
      const tagged = new Map<string, string>();
      for (const region of value.regions) {
        const id = this.#regions.has(region) ? undefined : generations.get(generationGroup(region, value.key, this.ctx.store));
        if (id !== undefined) tagged.set(region, id);
      }
      if (tagged.size !== value.regions.length) continue;
      this.#items.set(value.key, { kind: 'value', generations: tagged, payload: value.payload });
      if (value.ttlSeconds !== undefined) this.#valueTtls.set(value.key, value.ttlSeconds);
      accepted++;
    }
    return accepted;
  }

  /** Phase two after COMMIT: writes known values, evicts the rest, and queues the log row for lazy deletion. */
  async promote(): Promise<CompletionReport> {
    if (!this.ctx.stats.observed) return this.#promote();
    const end = this.ctx.stats.start('promote', { keys: this.#items.size, regions: this.#regions.size });
    try {
      const report = await this.#promote();
      // What the cache added to this commit: its prepare (before COMMIT) and this promote (after).
      end({ written: report.written, evicted: report.evicted, unresolved: report.unresolved, outcome: report.unresolved === 0 ? 'ok' : 'unresolved', prepare_ms: this.#prepareMs });
      return report;
    } catch (error) {
      end({ outcome: 'failed', prepare_ms: this.#prepareMs }, error);
      throw error;
    }
  }

  async #promote(): Promise<CompletionReport> {
    try {
      return await this.#promoteKeys();
    } finally {
      this.ctx.local.ended(this.id);
    }
  }

  async #promoteKeys(): Promise<CompletionReport> {
    if (this.#state !== 'prepared') throw new ProtocolStateError(this.id, this.#state, 'promote');
    this.#state = 'promoted';
    const { doneQueue, stats } = this.ctx;
    // Our committed statement deleted these rows: they are gone for good.
    this.#carriedDone = [];
    if (this.isEmpty) return { txId: this.id, written: 0, evicted: 0, unresolved: 0 };
    this.ctx.local.promoting(this.id, this.#items);
    const sharedLockWrites = this.ctx.options.unsafeTestSwitches.writeThroughSharedLock === true;
    const decide = (key: string, role: KeyRole, current: DecodedEntry | undefined): Transition => {
      const value = this.#items.get(key);
      // `writeThroughSharedLock` (a test switch, the bug the checkers must catch): the last holder writes its
      // value even if another writer joined the lock, whose commit may be the newer one.
      if (sharedLockWrites && role === 'item' && value && current?.kind === 'lock' && lockHolders(current).join() === this.id) return { action: 'write', entry: value, ttl: 'value' };
      return promoteTransition(current, this.id, role, value);
    };
    if (this.ctx.options.unsafeTestSwitches.promoteWithoutCas) return this.#promoteBlindly();
    const jitter = this.ctx.options.unsafeTestSwitches.promoteJitterMs;
    if (jitter) await new Promise((resolve) => setTimeout(resolve, Math.random() * jitter));
    const hook = this.ctx.options.midPromoteHook;
    let outcomes: Map<string, TransitionOutcome>;
    if (hook) {
      const keys = this.#storeKeys();
      const half = Math.ceil(keys.length / 2);
      outcomes = await this.#apply(decide, this.#locked, keys.slice(0, half));
      await hook(this.id);
      for (const [key, outcome] of await this.#apply(decide, this.#locked, keys.slice(half))) outcomes.set(key, outcome);
    } else outcomes = await this.#apply(decide, this.#locked, undefined, this.#schemesAlongPromote());
    stats.promotes++;
    if (this.#schemeCheck) await this.#renewMissedConjunctions(this.#schemeCheck);
    const report = this.#report(outcomes);
    stats.evictions += report.evicted;
    stats.unresolvedKeys += report.unresolved;
    if (report.unresolved === 0 && !this.#degraded) doneQueue.push(this.id);
    else this.ctx.options.logger?.('warn', 'promote left keys unresolved; the recovery sweeper will finish them', { txId: this.id, unresolved: report.unresolved });
    return report;
  }

  /** Promote's read of the scheme sets (see `#renewMissedConjunctions`), sent with its writes: both only need to follow the COMMIT. */
  #schemesAlongPromote(): ReadAfterWrites | undefined {
    const check = this.#schemeCheck;
    if (!check) return undefined;
    return {
      keys: check.tables.map(schemeKey),
      onRead: (read) => {
        check.views = new Map(check.tables.map((table) => [table, this.ctx.schemes.viewOf(table, read.get(schemeKey(table)))]));
      },
    };
  }

  /**
   * After COMMIT, reads the scheme sets again and renews the conjunction regions of schemes prepare did not see. The
   * scheme protocol needs none of this while this transaction's in-flight locks hold (docs/protocol.md,
   * "Conjunction regions"); when memcached dropped one, an establisher may have trusted a scheme this transaction
   * missed, and this bounds the staleness to this promote, as promote's eviction does for a dropped item lock.
   */
  async #renewMissedConjunctions(check: SchemeCheck): Promise<void> {
    const views = check.views ?? (await this.ctx.schemes.read(check.tables));
    const derived = check.derive(check.captured, (table) => views.get(table));
    const missed = [...derived.regions].filter((region) => !this.#regions.has(region));
    if (missed.length === 0) return;
    const outsider = uuidv4();
    const copies = missed.map((region) => [region, regionWriteKeys(region, this.ctx.store)] as const);
    const keys = copies.flatMap(([, regionKeys]) => regionKeys);
    const outcomes = await applyTransitions(this.ctx.store, keys, (_key, current) => promoteTransition(current, outsider, 'region', undefined), this.ctx.ttls(), {
      codec: this.ctx.codec,
      maxRounds: this.ctx.options.maxCasRounds,
    });
    this.ctx.stats.evictions += missed.length;
    const unreached = unreachedRegions(copies, (key) => outcomes.get(key)?.status === 'done');
    if (unreached.length > 0) this.ctx.options.logger?.('warn', 'conjunction regions of a scheme added during the transaction could not be renewed', { txId: this.id, keys: unreached.slice(0, 20) });
  }

  /** Test-only (`promoteWithoutCas`): writes known values and deletes the rest, whatever the keys hold. */
  async #promoteBlindly(): Promise<CompletionReport> {
    const ops = this.#storeKeys().map((key): StoreOp => {
      const entry = this.#items.get(key);
      return entry ? { op: 'set', key, value: this.ctx.codec.encode(key, entry), ttl: this.ctx.ttls(this.#valueTtls).value(key) } : { op: 'delete', key };
    });
    await this.ctx.store.execute(ops);
    return { txId: this.id, written: ops.filter((o) => o.op === 'set').length, evicted: ops.filter((o) => o.op === 'delete').length, unresolved: 0 };
  }

  /** Phase two after ROLLBACK (or a failed prepare): removes this transaction's locks. */
  async release(): Promise<CompletionReport> {
    if (!this.ctx.stats.observed || this.#state !== 'prepared') return this.#release();
    const end = this.ctx.stats.start('release', { keys: this.#items.size, regions: this.#regions.size });
    try {
      const report = await this.#release();
      end({ unresolved: report.unresolved, outcome: report.unresolved === 0 ? 'ok' : 'unresolved' });
      return report;
    } catch (error) {
      end({ outcome: 'failed' }, error);
      throw error;
    }
  }

  async #release(): Promise<CompletionReport> {
    try {
      return await this.#releaseKeys();
    } finally {
      this.ctx.local.ended(this.id);
    }
  }

  async #releaseKeys(): Promise<CompletionReport> {
    if (this.#state === 'released') return { txId: this.id, written: 0, evicted: 0, unresolved: 0 };
    if (this.#state === 'prepared' && this.ctx.options.unsafeTestSwitches.rollbackAsCommit) return this.promote();
    if (this.#state === 'promoted') throw new ProtocolStateError(this.id, this.#state, 'release');
    const wasPrepared = this.#state === 'prepared';
    this.#state = 'released';
    // Our rolled-back statement did not delete these rows after all.
    this.ctx.doneQueue.push(...this.#carriedDone);
    this.#carriedDone = [];
    if (!wasPrepared || this.isEmpty) return { txId: this.id, written: 0, evicted: 0, unresolved: 0 };
    const outcomes = await this.#apply((_key, role, current) => releaseTransition(current, this.id, role), this.#locked);
    this.ctx.stats.releases++;
    return this.#report(outcomes);
  }

  #storeKeys(): string[] {
    return [...this.#items.keys(), ...[...this.#regions].flatMap((region) => this.#copies(region))];
  }

  /** The store keys of a region's copies a writer locks (see `regionWriteKeys`), computed once per transaction. */
  #copies(region: string): string[] {
    let copies = this.#copyKeys.get(region);
    if (!copies) {
      copies = regionWriteKeys(region, this.ctx.store);
      this.#copyKeys.set(region, copies);
    }
    return copies;
  }

  #regionCopies(): Array<readonly [string, string[]]> {
    return [...this.#regions].map((region) => [region, this.#copies(region)] as const);
  }

  /**
   * Keys that could not be locked, where it matters: every item key, and the copies of a region none of whose
   * copies was locked. A region copy that failed while another copy of the region is locked is no failure: every
   * reader reads the locked copy too (see docs/protocol.md, "Region copies").
   */
  #failuresOf(outcomes: Map<string, TransitionOutcome>): Map<string, StoreError | 'contended'> {
    const all = failuresOf(outcomes);
    const regionFailures = new Set(unreachedRegions(this.#regionCopies(), (key) => outcomes.get(key)?.status === 'done'));
    for (const key of all.keys()) if (key.startsWith('r:') && !regionFailures.has(key)) all.delete(key);
    return all;
  }

  async #apply(
    decide: (key: string, role: KeyRole, current: DecodedEntry | undefined, attempt: number) => Transition,
    known?: ReadonlyMap<string, KnownState>,
    keys: string[] = this.#storeKeys(),
    readAfter?: ReadAfterWrites,
  ): Promise<Map<string, TransitionOutcome>> {
    const outcomes = await applyTransitions(this.ctx.store, keys, (key, current, attempt) => decide(key, key.startsWith('r:') ? 'region' : 'item', current, attempt), this.ctx.ttls(this.#valueTtls), {
      known,
      readAfter,
      codec: this.ctx.codec,
      maxRounds: this.ctx.options.maxCasRounds,
      onForeign: () => this.ctx.stats.foreignEntries++,
    });
    const { recent } = this.ctx;
    for (const [key, outcome] of outcomes) {
      if (outcome.status === 'done') recent.remember(key, outcome.state.entry, outcome.state.cas);
      else recent.forget(key);
    }
    return outcomes;
  }

  /**
   * What this process last saw the keys hold (see `RecentStates`): prepare writes its locks on those at once,
   * conditional on the remembered tokens, and reads only the others (and any whose token no longer matches).
   */
  #recentStates(): ReadonlyMap<string, KnownState> | undefined {
    return this.ctx.recent.statesOf(this.#storeKeys());
  }

  #remember(outcomes: Map<string, TransitionOutcome>): void {
    this.#locked = new Map();
    for (const [key, outcome] of outcomes) if (outcome.status === 'done') this.#locked.set(key, outcome.state);
  }

  #report(outcomes: Map<string, TransitionOutcome>): CompletionReport {
    let written = 0;
    let evicted = 0;
    let unresolved = 0;
    // A region is resolved when one of its copies is: an unreached copy either holds no lock of ours (prepare did
    // not reach it either) or holds one that expires, and readers trust no result while any copy differs.
    const unreached = new Set(unreachedRegions(this.#regionCopies(), (key) => outcomes.get(key)?.status === 'done'));
    for (const [key, outcome] of outcomes) {
      if (outcome.status !== 'done' && key.startsWith('r:') && !unreached.has(key)) continue;
      if (outcome.status !== 'done') {
        unresolved++;
        if (outcome.status === 'failed') this.ctx.stats.error(outcome.error.kind);
      } else if (outcome.state.entry?.kind === 'value') written++;
      else if (outcome.state.entry === undefined || outcome.state.entry.kind === 'generation') evicted++;
    }
    return { txId: this.id, written, evicted, unresolved };
  }

  #assertOpen(call: string): void {
    if (this.#state !== 'open') throw new ProtocolStateError(this.id, this.#state, call);
  }
}

function failuresOf(outcomes: Map<string, TransitionOutcome>): Map<string, StoreError | 'contended'> {
  const failures = new Map<string, StoreError | 'contended'>();
  for (const [key, outcome] of outcomes) {
    if (outcome.status === 'failed') failures.set(key, outcome.error);
    else if (outcome.status === 'contended') failures.set(key, 'contended');
  }
  return failures;
}

/** Two reads to send after the same writes, as one. */
function bothReads(a: ReadAfterWrites | undefined, b: ReadAfterWrites | undefined): ReadAfterWrites | undefined {
  if (!a || !b) return a ?? b;
  return {
    keys: [...a.keys, ...b.keys],
    onRead: (read, landed) => {
      a.onRead(read, landed);
      b.onRead(read, landed);
    },
  };
}
