import { createHash } from 'node:crypto';
import type { CacheStore } from '../store/cache-store.js';
import type { CacheStats } from './cache-stats.js';
import type { TransitionTtls } from './cas-batch.js';
import type { ResolvedProtocolOptions } from './protocol-options.js';
import type { TransactionLog } from './transaction-log.js';
import type { EntryCodec } from './entry-sealer.js';
import type { CaptureDeriver, WriteCapture } from './write-capture.js';
import type { SchemeRegistry } from './conjunction-schemes.js';

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
 * Store keys of regions not reached: all copies of each region none of whose copies `reached`. A region counts as
 * reached when one copy was (see {@link regionCopies}).
 */
export function unreachedRegions(copies: Iterable<readonly string[]>, reached: (key: string) => boolean): string[] {
  const out: string[] = [];
  for (const keys of copies) if (!keys.some(reached)) out.push(...keys);
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
