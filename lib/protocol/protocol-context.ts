import type { CacheStore } from '../store/cache-store.js';
import type { CacheStats } from './cache-stats.js';
import type { TransitionTtls } from './cas-batch.js';
import type { ResolvedProtocolOptions } from './protocol-options.js';
import type { TransactionLog } from './transaction-log.js';
import type { EntryCodec } from './entry-sealer.js';
import type { CaptureDeriver, WriteCapture } from './write-capture.js';

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
  capture(): { readonly capture: WriteCapture; readonly derive: CaptureDeriver } | undefined;
}

/** Store key of a region's generation. Item keys may not start with this prefix. */
export function regionKey(region: string): string {
  return `r:${region}`;
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
