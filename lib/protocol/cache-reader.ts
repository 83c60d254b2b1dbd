import { v4 as uuidv4 } from 'uuid';
import type { CasToken, StoreOp, StoreResult } from '../store/cache-store.js';
import { lockHolders, type LockEntry, type ValueEntry } from './entry.js';
import { promoteTransition } from './key-transitions.js';
import { combineGenerations, generationGroup, regionReadKeys, type ProtocolContext } from './protocol-context.js';
import type { OperationEnd } from './cache-observer.js';
import { RegionStats, regionLabel } from './cache-stats.js';

/** Why a read was not served from the cache. */
export type MissReason = 'absent' | 'locked' | 'leased' | 'stale' | 'foreign' | 'unavailable' | 'region-locked' | 'unguarded';

/**
 * Permission to fill a key after reading the database, valid only while nothing touched the key (or its regions)
 * since it was granted. Pass it to {@link CacheReader.fill} or {@link CacheReader.abandon}.
 */
export interface FillTicket {
  readonly key: string;
  /** @internal */
  readonly cas: CasToken;
  /** @internal region generations current when the lease was taken */
  readonly generations: ReadonlyMap<string, string>;
  /** @internal the stats label of the read that took the lease, when it gave one */
  readonly label?: string;
}

/**
 * What a reader makes of a cached payload (see {@link ReadOptions.accept}): the decoded value, or why it cannot
 * be used: `undecodable` (the bytes do not decode), `misbound` (it decodes to data its key does not name).
 */
export type PayloadVerdict = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly reason: 'undecodable' | 'misbound' };

/** The outcome of reading one key. */
export type CacheRead =
  | {
      readonly status: 'hit';
      readonly payload: Buffer;
      /** The item's CAS token when it was read: {@link CacheReader.unchanged} compares it. */
      readonly cas?: CasToken;
      /** The payload as decoded by {@link ReadOptions.accept}, when one was given. */
      readonly value?: unknown;
    }
  | {
      readonly status: 'miss';
      readonly reason: MissReason;
      readonly ticket: FillTicket | undefined;
      /** For a value read under other regions than asked for: the regions it was stored with. */
      readonly storedRegions?: readonly string[];
      /** @internal for `locked`: the lock's holders */
      readonly holders?: readonly string[];
    };

/** Read options. */
export interface ReadOptions {
  /** Regions (tables) the values were read from; a value is served only while their generations are unchanged. */
  readonly regions?: readonly string[];
  /** Take fill leases on misses (default true). Reads that must not fill (inside a writing transaction) say false. */
  readonly lease?: boolean;
  /** The label these reads are counted under in `stats.region()`; default: derived from `regions`. */
  readonly label?: string;
  /**
   * Decodes and checks a current value's payload before it counts as a hit. A payload refused here is a miss
   * (counted in `undecodablePayloads` or `keyMismatches`) on which the reader takes a lease like on foreign bytes,
   * so the caller's fill replaces it; without this, a value whose payload the caller cannot use would be a hit on
   * every read and never be replaced.
   */
  readonly accept?: (payload: Buffer, key: string) => PayloadVerdict;
  /**
   * Leave the statistics alone, refusals included (a re-validation or a look-ahead, not a read of its own: the read
   * that uses it counts, see {@link CacheReader.countHits}).
   */
  readonly uncounted?: boolean;
  /**
   * A key read in the same round trip whose bytes must satisfy `holds` for anything to be served or leased (a
   * conjunction scheme set, see `conjunction-schemes.ts`). When it does not hold, or its server did not answer,
   * every key is a miss with reason `unguarded` and no lease: the caller reads again under other regions.
   */
  readonly guard?: { readonly key: string; holds(bytes: Buffer | undefined): boolean };
}

const NO_REGIONS: readonly string[] = [];

/** What one group of region copies (a paired region, or one server's copy of a spread region) said. */
interface GroupState {
  readonly generation: string;
  readonly problem: MissReason | undefined;
  /** A copy was absent or not ours, and a fresh generation is being written: no stored value can carry it. */
  readonly fresh: boolean;
}

/** The region side of one key's read. */
interface KeyRegionState {
  readonly generations: ReadonlyMap<string, string>;
  readonly problem: MissReason | undefined;
  readonly fresh: boolean;
}

const NO_REGION_STATE: KeyRegionState = { generations: new Map(), problem: undefined, fresh: false };
/** Counts of reads that name no region: kept nowhere. */
const UNCOUNTED = new RegionStats();

/**
 * The read side: hits, misses, and fills guarded by leases (Facebook-lease / IdentityCache fill-lock style).
 *
 * LOADS: `readMany` (one round trip per server for the keys and their regions; a second one takes leases for the
 * misses), then the caller reads the database, then `fill` with the ticket (one CAS), or `abandon` it. A writer's
 * lock, a promote or an eviction between lease and fill voids the lease, so a value read before a commit can never
 * be stored after it.
 */
export class CacheReader {
  constructor(private readonly ctx: ProtocolContext) {}

  /**
   * Whether each of `keys`, a hit in `seen`, still holds the very value it held then (same CAS token, its regions'
   * generations unchanged): one more multi-get, taking no lease. A read that served some keys from the cache and
   * then read others from the database calls it after the database read: a writer that committed in between must
   * have locked its keys before its COMMIT, so an unchanged answer means no committed write separates the two parts
   * and the combined result is one the database could have returned.
   */
  async unchanged(seen: ReadonlyMap<string, CacheRead>, keys: readonly string[], options: ReadOptions = {}): Promise<boolean> {
    if (keys.length === 0) return true;
    const again = await this.readMany(keys, { ...options, lease: false, uncounted: true });
    return keys.every((key) => {
      const before = seen.get(key);
      const now = again.get(key);
      return before?.status === 'hit' && now?.status === 'hit' && before.cas !== undefined && now.cas !== undefined && sameCas(before.cas, now.cas);
    });
  }

  /** Counts hits served from an uncounted look-ahead read (`uncounted`) as the reads they stand for. */
  countHits(count: number, regions: readonly string[]): void {
    const { stats } = this.ctx;
    stats.hits += count;
    const label = regionLabel(regions, undefined);
    if (label) stats.region(label).hits += count;
  }

  /** Reads many keys that share the same regions. */
  readMany(keys: readonly string[], options: ReadOptions = {}): Promise<Map<string, CacheRead>> {
    return this.#readMany(keys, options, false);
  }

  /** {@link readMany}; `again` when it reads keys whose leases were given back because a region's start was raced. */
  async #readMany(keys: readonly string[], options: ReadOptions, again: boolean): Promise<Map<string, CacheRead>> {
    const { store, stats } = this.ctx;
    const regions = options.regions ?? NO_REGIONS;
    // The region copies each key is validated against: every copy of a paired region (a result is trusted only if
    // all of them are reachable and current), the copy on the key's own server of a spread one.
    const groups = new Map<string, string[]>();
    const groupsOf = new Map<string, string[]>();
    for (const key of regions.length > 0 ? keys : NO_REGIONS) {
      const mine: string[] = [];
      for (const region of regions) {
        const group = generationGroup(region, key, store);
        if (!groups.has(group)) groups.set(group, regionReadKeys(region, key, store));
        mine.push(group);
      }
      groupsOf.set(key, mine);
    }
    const regionKeys = [...groups.values()].flat();
    const quiet = options.uncounted === true;
    const label = regionLabel(regions, options.label);
    const perRegion = label ? stats.region(label) : UNCOUNTED;
    const end = stats.observed && !again ? stats.start('read', { keys: keys.length, region: label }) : undefined;
    const guardKeys = options.guard ? [options.guard.key] : [];
    const fetched = await store.getMulti(regionKeys.length > 0 || options.guard ? [...keys, ...regionKeys, ...guardKeys] : keys);

    // The current generation of each group of copies (combined), or why none can be trusted.
    const groupStates = new Map<string, GroupState>();
    const regionOps: StoreOp[] = [];
    for (const [group, copyKeys] of groups) {
      const ids: string[] = [];
      let problem: MissReason | undefined;
      let fresh = false;
      for (const key of copyKeys) {
        if (fetched.failed.has(key)) {
          problem ??= 'unavailable';
          break;
        }
        const item = fetched.items.get(key);
        const entry = item ? this.ctx.codec.decode(key, item.value, quiet) : undefined;
        if (entry?.kind === 'generation') {
          ids.push(entry.id);
          continue;
        }
        if (entry?.kind === 'lock' && lockHolders(entry).length > 0) {
          problem = 'region-locked';
          break;
        }
        // Absent, or not ours: start a fresh generation, which no stored result can carry.
        if (entry?.kind === 'foreign' && !quiet) stats.foreignEntries++;
        const id = uuidv4();
        ids.push(id);
        fresh = true;
        const value = this.ctx.codec.encode(key, { kind: 'generation', id });
        regionOps.push(item ? { op: 'cas', key, value, ttl: 0, cas: item.cas } : { op: 'add', key, value, ttl: 0 });
      }
      groupStates.set(group, { generation: problem === undefined ? combineGenerations(ids) : '', problem, fresh });
    }
    /**
     * The generations a key's value must carry, why none can be trusted, and whether one was just started: one state
     * per combination of groups (a paired region's is shared by every key; a spread one's by the keys of a server),
     * so a read of many keys builds a handful, not one per key.
     */
    const states = new Map<string, KeyRegionState>();
    const regionStateOf = (key: string): KeyRegionState => {
      if (regions.length === 0) return guardProblem === undefined ? NO_REGION_STATE : { ...NO_REGION_STATE, problem: guardProblem };
      const mine = groupsOf.get(key) as string[];
      const id = mine.join('\u0000');
      let state = states.get(id);
      if (!state) states.set(id, (state = stateOfGroups(mine)));
      return state;
    };
    const stateOfGroups = (mine: readonly string[]): KeyRegionState => {
      const generations = new Map<string, string>();
      let problem: MissReason | undefined;
      let fresh = false;
      mine.forEach((group, i) => {
        const state = groupStates.get(group) as GroupState;
        if (state.problem === 'region-locked') problem = state.problem;
        else problem ??= state.problem;
        fresh ||= state.fresh;
        generations.set(regions[i] as string, state.generation);
      });
      // A guard that does not hold overrides everything: the caller reads again under other regions.
      return { generations, problem: guardProblem ?? problem, fresh };
    };
    const guardProblem: MissReason | undefined =
      options.guard && (fetched.failed.has(options.guard.key) || !options.guard.holds(fetched.items.get(options.guard.key)?.value)) ? 'unguarded' : undefined;

    const reads = new Map<string, CacheRead>();
    const storedRegions = new Map<string, string[]>();
    const leaseOps: StoreOp[] = [];
    const leaseKeys: Array<{ key: string; reason: MissReason; generations: ReadonlyMap<string, string> }> = [];
    const wantLease = options.lease ?? true;
    /** A payload served: counted (unless quiet) and recorded with the decoded value `accept` made of it. */
    const hit = (key: string, payload: Buffer, verdict: PayloadVerdict | undefined, cas: CasToken): void => {
      if (!quiet) {
        stats.hits++;
        perRegion.hits++;
      }
      reads.set(key, verdict?.ok ? { status: 'hit', payload, value: verdict.value, cas } : { status: 'hit', payload, cas });
    };
    for (const key of keys) {
      if (reads.has(key)) continue;
      const failure = fetched.failed.get(key);
      if (failure) {
        if (!quiet) stats.error(failure.kind);
        reads.set(key, miss('unavailable'));
        continue;
      }
      const item = fetched.items.get(key);
      const entry = item ? this.ctx.codec.decode(key, item.value, quiet) : undefined;
      const { generations, problem: regionProblem, fresh } = regionStateOf(key);
      let reason: MissReason;
      let holders: readonly string[] | undefined;
      if (entry === undefined) reason = 'absent';
      else if (entry.kind === 'value') {
        this.ctx.recent.remember(key, entry, item!.cas);
        if (regionProblem === undefined && !fresh && sameGenerations(entry.generations, generations)) {
          const verdict = options.accept?.(entry.payload, key);
          if (verdict === undefined || verdict.ok) {
            hit(key, entry.payload, verdict, item!.cas);
            continue;
          }
          if (!quiet && verdict.reason === 'undecodable') stats.undecodablePayloads++;
          else if (!quiet) stats.keyMismatches++;
          reason = 'foreign';
        } else {
          if (!quiet) stats.staleResults++;
          reason = 'stale';
          if (!sameRegions(entry.generations, regions)) storedRegions.set(key, [...entry.generations.keys()]);
        }
      } else if (entry.kind === 'lock') {
        holders = lockHolders(entry);
        // A lock of one committed transaction of this process, promoting now: what promote is about to write is
        // committed and, by promote's own rule, what the key will hold; a reader here can take it at once.
        const promoting = holders.length === 1 ? this.#promotingValue(key, entry, holders[0] as string) : undefined;
        if (promoting && regionProblem === undefined && !fresh && sameGenerations(promoting.generations, generations)) {
          const verdict = options.accept?.(promoting.payload, key);
          if (verdict === undefined || verdict.ok) {
            hit(key, promoting.payload, verdict, item!.cas);
            continue;
          }
        }
        if (holders.length > 0) {
          if (!quiet) {
            stats.lockBypasses++;
            perRegion.lockBypasses++;
          }
          reason = 'locked';
        } else reason = 'absent'; // every holder left: as good as absent, and replaced by a lease below
      } else if (entry.kind === 'lease') reason = 'leased';
      else {
        if (!quiet) stats.foreignEntries++;
        reason = 'foreign';
      }
      if (!quiet) {
        stats.misses++;
        perRegion.misses++;
      }
      if (regionProblem !== undefined && reason !== 'locked' && reason !== 'leased') reason = regionProblem;
      reads.set(key, reason === 'locked' ? { status: 'miss', reason, ticket: undefined, holders } : { status: 'miss', reason, ticket: undefined, storedRegions: storedRegions.get(key) });
      if (!wantLease || regionProblem !== undefined || reason === 'locked' || reason === 'leased') continue;
      const value = this.ctx.codec.encode(key, { kind: 'lease', token: uuidv4() });
      const ttl = this.ctx.options.leaseTtlSeconds;
      leaseOps.push(item ? { op: 'cas', key, value, ttl, cas: item.cas } : { op: 'add', key, value, ttl });
      leaseKeys.push({ key, reason, generations });
    }
    if (leaseOps.length === 0) {
      if (end) endRead(end, reads);
      return reads;
    }

    const results = (await store.execute([...regionOps, ...leaseOps])) as StoreResult[];
    const regionsReady = results.slice(0, regionOps.length).every((r) => r.status === 'stored');
    const leases = results.slice(regionOps.length);
    const givenBack: Array<{ key: string; reason: MissReason }> = [];
    const abandons: Promise<void>[] = [];
    leases.forEach((result, i) => {
      const { key, reason, generations } = leaseKeys[i] as { key: string; reason: MissReason; generations: ReadonlyMap<string, string> };
      // Another reader's lease got there first: wait for its value rather than load as well.
      if (result.status === 'exists') return void reads.set(key, miss('leased'));
      if (result.status !== 'stored') return;
      this.ctx.recent.forget(key);
      const ticket: FillTicket = options.label === undefined ? { key, cas: result.cas, generations } : { key, cas: result.cas, generations, label: options.label };
      if (regionsReady) return void reads.set(key, { status: 'miss', reason, ticket, storedRegions: storedRegions.get(key) });
      // The generation we started was not written: a lease under it could fill a value no region vouches for.
      abandons.push(this.abandon(ticket));
      givenBack.push({ key, reason });
    });
    if (givenBack.length > 0 && !again) {
      // Most often another reader started the region in the same instant (a table's first reads arrive together):
      // read those keys once more, under the generation that won, instead of leaving every one of them unfilled.
      // The leases are given back first, so the second read does not meet them.
      await Promise.all(abandons);
      const second = await this.#readMany(
        givenBack.map((g) => g.key),
        { ...options, uncounted: true },
        true,
      );
      for (const { key, reason } of givenBack) {
        const read = second.get(key);
        if (!read) continue;
        if (read.status === 'hit' && !quiet) this.#servedAfterWaiting(reason, options);
        reads.set(key, read);
      }
    }
    if (end) endRead(end, reads);
    return reads;
  }

  /**
   * The common case of a read, alone: one key validated by one region, served only when it is a clean hit (a
   * current value whose payload `accept`s), with one multi-get and none of {@link readMany}'s bookkeeping for many
   * keys. Anything else — a miss, a lock, a stale or foreign value, an unreachable server, an observed read —
   * resolves to `undefined` having counted nothing: the caller then reads it through {@link readManyWaiting}, which
   * reads the key again and does everything a miss needs (a second round trip, on misses only).
   */
  async readHit(key: string, region: string, accept: (payload: Buffer, key: string) => PayloadVerdict): Promise<{ readonly value: unknown; readonly cas: CasToken } | undefined> {
    const { store, stats, codec } = this.ctx;
    if (stats.observed) return undefined;
    const copies = regionReadKeys(region, key, store);
    const ops: StoreOp[] = [{ op: 'get', key }];
    for (const copy of copies) ops.push({ op: 'get', key: copy });
    const results = await store.execute(ops);
    const first = results[0] as StoreResult;
    if (first.status !== 'hit') return undefined;
    const item = first.item;
    const ids: string[] = [];
    for (let i = 0; i < copies.length; i++) {
      const held = results[i + 1] as StoreResult;
      const entry = held.status === 'hit' ? codec.decode(copies[i] as string, held.item.value, true) : undefined;
      if (entry?.kind !== 'generation') return undefined;
      ids.push(entry.id);
    }
    const entry = codec.decode(key, item.value, true);
    if (entry.kind !== 'value' || entry.generations.size !== 1 || entry.generations.get(region) !== combineGenerations(ids)) return undefined;
    const verdict = accept(entry.payload, key);
    if (!verdict.ok) return undefined;
    this.ctx.recent.remember(key, entry, item.cas);
    stats.hits++;
    stats.region(region).hits++;
    return { value: verdict.value, cas: item.cas };
  }

  /**
   * {@link readMany}, then waits for keys other transactions are busy with, instead of sending every reader to the
   * database: keys another reader is filling (`leased`) up to `leaseWaitMs`, keys a writer holds (`locked`) up to
   * `lockWaitMs` — its promote usually lands within milliseconds and, with write-through, leaves the committed value
   * (2, 4, 8… ms between reads; keys locked only by this process's transactions are read again once, when their
   * promote or release ends: `LocalTransactions`). A key still leased or locked at its deadline comes back as a miss
   * without a ticket: the caller reads the database and does not fill. (Reading again later is only a later read: nothing a wait can
   * return was not current at that moment.)
   */
  async readManyWaiting(keys: readonly string[], options: ReadOptions = {}): Promise<Map<string, CacheRead>> {
    const reads = await this.readMany(keys, options);
    // The first read counted each key; reads again while waiting do not, and a wait that ends in a hit turns that
    // key's miss (and lock bypass) into the hit it is (see #servedAfterWaiting).
    const first = new Map<string, MissReason>();
    const again = { ...options, uncounted: true };
    const started = Date.now();
    const leaseDeadline = started + this.ctx.options.leaseWaitMs;
    const lockDeadline = started + this.ctx.options.lockWaitMs;
    for (let pause = 2; ; pause = Math.min(pause * 2, 25)) {
      const resume = Date.now() + pause;
      const waiting = keys.filter((key) => {
        const read = reads.get(key);
        if (read?.status !== 'miss') return false;
        return (read.reason === 'leased' && resume <= leaseDeadline) || (read.reason === 'locked' && resume <= lockDeadline);
      });
      if (waiting.length === 0) {
        if (!options.uncounted) for (const [key, reason] of first) if (reads.get(key)?.status === 'hit') this.#servedAfterWaiting(reason, options);
        return reads;
      }
      for (const key of waiting) if (!first.has(key)) first.set(key, (reads.get(key) as { reason: MissReason }).reason);
      if (waiting.some((key) => (reads.get(key) as { reason?: string }).reason === 'leased')) this.ctx.stats.leaseWaits++;
      if (waiting.some((key) => (reads.get(key) as { reason?: string }).reason === 'locked')) this.ctx.stats.lockWaits++;
      await this.#pause(pause, lockDeadline, waiting.map((key) => [key, reads.get(key) as CacheRead] as const));
      for (const [key, read] of await this.readMany(waiting, again)) reads.set(key, read);
    }
  }

  /**
   * Waits `ms` before reading again; when every key waited on is locked by transactions of this process only, waits
   * instead for the end of their promote (or release), which is when the committed value is there to read (for a
   * lone holder, for the start of its promote, when its value can be read here already: see `readMany`), up to
   * `deadline` (a transaction whose promote never runs here, its COMMIT's outcome unknown, leaves its lock to
   * expire: the wait then ends as a poll would).
   */
  async #pause(ms: number, deadline: number, waiting: ReadonlyArray<readonly [string, CacheRead]>): Promise<void> {
    const ends: Promise<unknown>[] = [];
    for (const [key, read] of waiting) {
      const end = read.status === 'miss' && read.holders ? this.ctx.local.endOf(read.holders, key) : undefined;
      if (!end) break;
      ends.push(end);
    }
    const local = ends.length === waiting.length;
    let timer: NodeJS.Timeout | undefined;
    const sleep = new Promise((resolve) => (timer = setTimeout(resolve, local ? Math.max(ms, deadline - Date.now()) : ms)));
    await (local ? Promise.race([sleep, Promise.all(ends)]) : sleep);
    clearTimeout(timer);
  }

  /**
   * The value the lone holder of `lock` is writing for `key` in its promote, if it is a committed transaction of
   * this process and promote's own rule (`promoteTransition`: a lock never shared, a value known) writes it.
   */
  #promotingValue(key: string, lock: LockEntry, holder: string): ValueEntry | undefined {
    const value = this.ctx.local.valueOf(holder, key);
    if (value?.kind !== 'value') return undefined;
    const transition = promoteTransition(lock, holder, 'item', value);
    return transition.action === 'write' && transition.entry.kind === 'value' ? transition.entry : undefined;
  }

  /** A key first read as a miss (`leased` or `locked`) and served after waiting: counted as the hit it is. */
  #servedAfterWaiting(reason: MissReason, options: ReadOptions): void {
    const { stats } = this.ctx;
    const label = regionLabel(options.regions ?? NO_REGIONS, options.label);
    const perRegion = label ? stats.region(label) : undefined;
    stats.misses--;
    stats.hits++;
    if (perRegion) {
      perRegion.misses--;
      perRegion.hits++;
    }
    if (reason === 'locked') {
      stats.lockBypasses--;
      if (perRegion) perRegion.lockBypasses--;
    }
  }

  /** {@link readManyWaiting} of one key. */
  async readWaiting(key: string, options: ReadOptions = {}): Promise<CacheRead> {
    return (await this.readManyWaiting([key], options)).get(key) as CacheRead;
  }

  /** Reads one key. */
  async read(key: string, options: ReadOptions = {}): Promise<CacheRead> {
    return (await this.readMany([key], options)).get(key) as CacheRead;
  }

  /**
   * Stores a value read from the database under a ticket. Returns false, storing nothing, when the lease was voided
   * (the key was locked, promoted or evicted since): that value may predate a commit.
   */
  async fill(ticket: FillTicket, payload: Buffer, ttlSeconds?: number): Promise<boolean> {
    const { stats } = this.ctx;
    if (!stats.observed) return this.#fill(ticket, payload, ttlSeconds);
    const end = stats.start('fill', { keys: 1, region: regionLabel(ticket.generations, ticket.label), bytes: payload.length });
    try {
      const stored = await this.#fill(ticket, payload, ttlSeconds);
      end({ outcome: stored ? 'stored' : 'refused' });
      return stored;
    } catch (error) {
      end({ outcome: 'error' }, error);
      throw error;
    }
  }

  async #fill(ticket: FillTicket, payload: Buffer, ttlSeconds?: number): Promise<boolean> {
    const { store, stats, options } = this.ctx;
    const value = this.ctx.codec.encode(ticket.key, { kind: 'value', generations: ticket.generations, payload });
    const ttl = ttlSeconds ?? options.valueTtlSeconds;
    const [result] = options.unsafeTestSwitches.fillWithoutLease
      ? await store.execute([{ op: 'set', key: ticket.key, value, ttl }] as const)
      : await store.execute([{ op: 'cas', key: ticket.key, value, ttl, cas: ticket.cas }] as const);
    const label = regionLabel(ticket.generations, ticket.label);
    const perRegion = label ? stats.region(label) : UNCOUNTED;
    if (result.status === 'stored') {
      this.ctx.recent.remember(ticket.key, { kind: 'value', generations: ticket.generations, payload }, result.cas);
      stats.puts++;
      perRegion.puts++;
      return true;
    }
    if (result.status === 'error') {
      stats.error(result.error.kind);
      if (result.error.kind === 'too_large') await this.abandon(ticket);
    } else {
      stats.staleFillsRefused++;
      perRegion.staleFillsRefused++;
    }
    return false;
  }

  /** Gives a lease back without filling, so other readers need not wait for it to expire. */
  async abandon(ticket: FillTicket): Promise<void> {
    await this.ctx.store.execute([{ op: 'delete', key: ticket.key, cas: ticket.cas }] as const);
  }

  /**
   * Read-through: a hit returns the cached payload; a miss loads from the database and fills under a lease.
   * A miss on a key another reader is filling waits up to `leaseWaitMs` for its value, then loads without filling.
   * `load` returning undefined means "do not cache".
   */
  async fetch(key: string, load: () => Promise<Buffer | undefined>, options: ReadOptions & { ttlSeconds?: number } = {}): Promise<Buffer | undefined> {
    const deadline = Date.now() + this.ctx.options.leaseWaitMs;
    for (let pause = 2; ; pause = Math.min(pause * 2, 25)) {
      const read = await this.read(key, options);
      if (read.status === 'hit') return read.payload;
      if (read.ticket) {
        let loaded: Buffer | undefined;
        try {
          loaded = await load();
        } catch (error) {
          await this.abandon(read.ticket);
          throw error;
        }
        if (loaded === undefined) await this.abandon(read.ticket);
        else await this.fill(read.ticket, loaded, options.ttlSeconds);
        return loaded;
      }
      if (read.reason !== 'leased' || Date.now() + pause > deadline) return load();
      this.ctx.stats.leaseWaits++;
      if (options.regions?.length || options.label) this.ctx.stats.region(regionLabel(options.regions, options.label)).leaseWaits++;
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
}

function miss(reason: MissReason): CacheRead {
  return { status: 'miss', reason, ticket: undefined };
}

function sameRegions(stored: ReadonlyMap<string, string>, asked: readonly string[]): boolean {
  return stored.size === asked.length && asked.every((region) => stored.has(region));
}

function sameGenerations(stored: ReadonlyMap<string, string>, current: ReadonlyMap<string, string>): boolean {
  if (stored.size !== current.size) return false;
  for (const [region, id] of current) if (stored.get(region) !== id) return false;
  return true;
}

/** Ends an observed read with its hits and misses. */
function endRead(end: OperationEnd, reads: ReadonlyMap<string, CacheRead>): void {
  let hits = 0;
  for (const read of reads.values()) if (read.status === 'hit') hits++;
  const misses = reads.size - hits;
  end({ hits, misses, outcome: misses === 0 ? 'hit' : hits === 0 ? 'miss' : 'partial' });
}

function sameCas(a: CasToken, b: CasToken): boolean {
  return a.server === b.server && a.epoch === b.epoch && a.value === b.value;
}
