import { createHash } from 'node:crypto';
import type { CacheStore } from '../store/cache-store.js';
import type { CacheStats } from './cache-stats.js';
import type { TransitionTtls } from './cas-batch.js';
import type { ResolvedProtocolOptions } from './protocol-options.js';
import type { TransactionLog } from './transaction-log.js';
import type { EntryCodec } from './entry-sealer.js';
import type { CaptureDeriver, WriteCapture } from './write-capture.js';
import type { SchemeRegistry } from './conjunction-schemes.js';
import type { RecentStates } from './recent-states.js';
import type { LocalTransactions } from './local-transactions.js';

/** What the pieces of one {@link XaCache} share. Internal. */
export interface ProtocolContext {
  readonly store: CacheStore;
  readonly options: ResolvedProtocolOptions;
  readonly stats: CacheStats;
  readonly log: TransactionLog;
  readonly doneQueue: DoneQueue;
  /** Bytes to entries and back, sealed when secrets are configured. */
  readonly codec: EntryCodec;
  /** TTLs for transitions, with per-key value TTLs. */
  ttls(valueTtl?: ReadonlyMap<string, number>): TransitionTtls;
  /** The database-side write capture and how its changes map to keys, once the layer above installed a deriver. */
  capture(): CaptureHook | undefined;
  /** Conjunction schemes of tables, as last read by this process. */
  readonly schemes: SchemeRegistry;
  /** What keys held when this process last read or wrote them: prepare's first guess (see {@link RecentStates}). */
  readonly recent: RecentStates;
  /** This process's transactions holding locks, for readers to wait on (see {@link LocalTransactions}). */
  readonly local: LocalTransactions;
}

/** The write capture as prepare uses it. */
export interface CaptureHook {
  readonly capture: WriteCapture;
  readonly derive: CaptureDeriver;
  /** The table whose in-flight region this is, if it is one (prepare reads that table's schemes once it holds it). */
  readonly inFlightTable: (region: string) => string | undefined;
}

/** Store key of a region's generation. Item keys may not start with this prefix. */
export function regionKey(region: string): string {
  return `r:${region}`;
}

/** How many suffixes are tried to find a second server for a region's copy. */
const COPY_TRIES = 64;

/**
 * Store keys of a region's generation copies: `r:<region>` and, when the store has more than one server,
 * `r:<region>#<n>` for the first `n` whose key lives on another server. A reader needs every copy (reachable and
 * current) to trust a result; a writer needs to lock and renew at least one. So one unreachable server never stops
 * writes to a table on account of its region keys, and no reader anywhere can trust a result that a committed
 * writer invalidated: every reader reads the copy the writer renewed. See docs/protocol.md, "Region copies".
 */
export function regionCopies(region: string, store: Pick<CacheStore, 'serverFor'>): string[] {
  const first = regionKey(region);
  const home = store.serverFor(first);
  for (let n = 1; n <= COPY_TRIES; n++) {
    const key = `${first}#${n}`;
    if (store.serverFor(key) !== home) return [first, key];
  }
  return [first];
}

/**
 * Regions that validate items (an entity's rows, collections kept in a table), named by the layer above with these
 * prefixes, as opposed to regions that validate query results. Only writes whose rows cannot be named renew them
 * (a TRUNCATE, a statement too large to list, an operator's `invalidate --table`), while every read of a row or a
 * collection checks one: so they are **spread**, one copy on every server, a reader checking only the copy on its
 * item's server (same server, same round trip: one server per hit) and a writer needing every copy. Query-result
 * regions, renewed by every write to their table, keep the pair of {@link regionCopies}. docs/protocol.md,
 * "Region copies", has the argument for both.
 */
export const SPREAD_REGION_PREFIXES: readonly string[] = ['rows:', 'coll:'];

/** Whether a region is spread over every server (see {@link SPREAD_REGION_PREFIXES}). */
export function isSpreadRegion(region: string): boolean {
  return SPREAD_REGION_PREFIXES.some((prefix) => region.startsWith(prefix));
}

/** How many suffixes are tried per server to place a spread region's copy on it. */
const SPREAD_TRIES_PER_SERVER = 64;
const spreadMemo = new WeakMap<object, Map<string, Map<string, string>>>();

/**
 * Store key of a spread region's copy on `server`: `r:<region>@<n>` for the first `n` that lives there. Remembered
 * per store, and checked against `serverFor` on each use (cheap: the store remembers its answers), so a store
 * re-scoped or given other servers is never handed a stale name.
 */
export function spreadCopyOn(region: string, server: string, store: Pick<CacheStore, 'serverFor' | 'servers'>): string {
  let memo = spreadMemo.get(store);
  if (!memo) spreadMemo.set(store, (memo = new Map()));
  let byServer = memo.get(region);
  if (!byServer) memo.set(region, (byServer = new Map()));
  const known = byServer.get(server);
  if (known !== undefined && store.serverFor(known) === server) return known;
  const base = regionKey(region);
  const tries = SPREAD_TRIES_PER_SERVER * Math.max(1, store.servers.length);
  for (let n = 0; n < tries; n++) {
    const key = `${base}@${n}`;
    if (store.serverFor(key) === server) {
      byServer.set(server, key);
      return key;
    }
  }
  throw new Error(`mikro-orm-xa-cache: no key of region ${region} maps to memcached server ${server} in ${tries} tries`);
}

/**
 * The store keys a writer must lock for a region: both copies of a paired region ({@link regionCopies}), every
 * server's copy of a spread one.
 */
export function regionWriteKeys(region: string, store: Pick<CacheStore, 'serverFor' | 'servers'>): string[] {
  return isSpreadRegion(region) ? store.servers.map((server) => spreadCopyOn(region, server, store)) : regionCopies(region, store);
}

/**
 * Which generation of a region an item's value records: the region's (combined) generation for a paired region,
 * its server's copy's for a spread one. Names the entries of `currentGenerations` and groups a reader's copies.
 */
export function generationGroup(region: string, item: string, store: Pick<CacheStore, 'serverFor'>): string {
  return isSpreadRegion(region) ? `${region}\n${store.serverFor(item)}` : region;
}

/** The store keys a reader of `item` checks for a region: every copy of a paired region, its server's copy of a spread one. */
export function regionReadKeys(region: string, item: string, store: Pick<CacheStore, 'serverFor' | 'servers'>): string[] {
  return isSpreadRegion(region) ? [spreadCopyOn(region, store.serverFor(item), store)] : regionCopies(region, store);
}

/**
 * A region's generation as readers record it: the one copy's id, or, with two copies, a UUID-shaped digest of
 * both, which changes whenever either does (a new generation is a random UUID, so a digest repeats only by
 * collision of SHA-256).
 */
export function combineGenerations(ids: readonly string[]): string {
  if (ids.length === 1) return ids[0] as string;
  const hex = createHash('sha256').update(ids.join('|')).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/**
 * Store keys of regions a writer did not reach, given each region's write keys ({@link regionWriteKeys}): all copies
 * of a paired region none of whose copies was `reached`; the unreached copies of a spread region (a reader checks
 * only one copy of it, so every copy must be reached).
 */
export function unreachedRegions(regions: Iterable<readonly [region: string, keys: readonly string[]]>, reached: (key: string) => boolean): string[] {
  const out: string[] = [];
  for (const [region, keys] of regions) {
    if (isSpreadRegion(region)) out.push(...keys.filter((key) => !reached(key)));
    else if (!keys.some(reached)) out.push(...keys);
  }
  return out;
}

/**
 * Transaction ids whose log rows can be deleted because every key was promoted. The next transaction's log insert
 * deletes them in the same statement; a rollback of that transaction puts them back.
 */
export class DoneQueue {
  #ids: string[] = [];

  push(...ids: string[]): void {
    this.#ids.push(...ids);
  }

  /** Takes up to `max` ids to carry in a statement. */
  take(max: number): string[] {
    return this.#ids.splice(0, max);
  }

  get size(): number {
    return this.#ids.length;
  }
}
