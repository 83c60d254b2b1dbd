import type { StoreError } from './store-errors.js';

/**
 * An opaque compare-and-swap token, as returned by memcached with every item and every successful write.
 *
 * It remembers which connection (server and connection epoch) produced it: memcached restarts its CAS counter
 * when it restarts, so a token from before a reconnect could match an unrelated item afterwards. A store refuses
 * (answers `exists`) a conditional write whose token comes from an earlier connection.
 */
export interface CasToken {
  /** The server (`host:port`) that issued the token. */
  readonly server: string;
  /** Which connection to that server issued it; a reconnect starts a new epoch. */
  readonly epoch: number;
  /** The 64-bit CAS value memcached returned. */
  readonly value: bigint;
}

/** An item read from the store. */
export interface StoredItem {
  readonly value: Buffer;
  readonly flags: number;
  readonly cas: CasToken;
}

/**
 * One operation for {@link CacheStore.execute}. Keys are logical keys: the store adds its namespace and hashes
 * keys that memcached would refuse. TTLs are in seconds, 0 meaning "no expiry", at most 30 days.
 */
export type StoreOp =
  | { readonly op: 'get'; readonly key: string }
  | { readonly op: 'set'; readonly key: string; readonly value: Buffer; readonly ttl: number; readonly flags?: number }
  | { readonly op: 'add'; readonly key: string; readonly value: Buffer; readonly ttl: number; readonly flags?: number }
  | {
      readonly op: 'replace';
      readonly key: string;
      readonly value: Buffer;
      readonly ttl: number;
      readonly flags?: number;
    }
  /** Set only if the item still carries `cas`. */
  | {
      readonly op: 'cas';
      readonly key: string;
      readonly value: Buffer;
      readonly ttl: number;
      readonly cas: CasToken;
      readonly flags?: number;
    }
  /**
   * Appends bytes to an existing item atomically, without a token (memcached's APPEND): concurrent appenders never
   * conflict. The item keeps its TTL; `not_found` when the key is absent.
   */
  | { readonly op: 'append'; readonly key: string; readonly value: Buffer }
  /** Delete; with `cas`, only if the item still carries it. */
  | { readonly op: 'delete'; readonly key: string; readonly cas?: CasToken }
  /** Increment; with `initial`, create the counter at `initial` when absent, otherwise answer `not_found`. */
  | { readonly op: 'incr'; readonly key: string; readonly delta: bigint; readonly initial?: bigint; readonly ttl: number }
  | { readonly op: 'touch'; readonly key: string; readonly ttl: number };

/**
 * The outcome of one {@link StoreOp}. A miss or a CAS conflict is a result, never an exception: only failures of
 * the server or the connection are reported as `error`.
 *
 * - `hit`: a `get` found the item.
 * - `stored`: a write took effect; `cas` is the new token.
 * - `deleted`, `touched`: as named.
 * - `counter`: an `incr` took effect; `value` is the new value.
 * - `not_found`: the key is absent (get, replace, cas, delete, touch, incr without `initial`).
 * - `exists`: `add` met an existing key, or `cas`/conditional `delete` met a different token.
 * - `error`: the operation failed; `error.outcomeUnknown` says whether a write may nevertheless have been applied.
 */
export type StoreResult =
  | { readonly status: 'hit'; readonly item: StoredItem }
  | { readonly status: 'stored'; readonly cas: CasToken }
  | { readonly status: 'deleted' }
  | { readonly status: 'touched' }
  | { readonly status: 'counter'; readonly value: bigint; readonly cas: CasToken }
  | { readonly status: 'not_found' }
  | { readonly status: 'exists' }
  | { readonly status: 'error'; readonly error: StoreError };

/** The result type for a given operation kind. */
export type StoreResultOf<O extends StoreOp> = O extends { op: 'get' }
  ? Extract<StoreResult, { status: 'hit' | 'not_found' | 'error' }>
  : O extends { op: 'set' | 'cas' | 'add' | 'replace' | 'append' }
    ? Extract<StoreResult, { status: 'stored' | 'not_found' | 'exists' | 'error' }>
    : O extends { op: 'delete' }
      ? Extract<StoreResult, { status: 'deleted' | 'not_found' | 'exists' | 'error' }>
      : O extends { op: 'incr' }
        ? Extract<StoreResult, { status: 'counter' | 'not_found' | 'error' }>
        : Extract<StoreResult, { status: 'touched' | 'not_found' | 'error' }>;

/** Counters a store keeps about its own traffic; tests use them to count round trips. */
export interface StoreCounters {
  /**
   * Batches written to a server socket, counted when written: one per server per {@link CacheStore.execute} call
   * (calls made in the same microtask may share one write, and then count once).
   */
  roundTrips: number;
  /** Individual memcached requests sent (one per operation; operations answered without sending are not counted). */
  requests: number;
  /** Operations that ended in `error`, by error name. */
  errors: Record<string, number>;
  /** Keys that were hashed because they were too long or held forbidden bytes. */
  hashedKeys: number;
  /**
   * Deadlines that fired late because this process's event loop was stalled (a busy loop, a long synchronous
   * task), and were extended rather than counted against the server. A rising count means the process is too
   * busy, not that memcached is slow.
   */
  stalls?: number;
}

/**
 * Memcached access for the protocol layer: typed, pipelined, with no knowledge of ORMs.
 *
 * Every call of {@link CacheStore.execute} sends its operations to each server they map to in one write and
 * waits for the answers: one round trip per server involved, whatever the number of operations. Keys map to
 * servers by consistent hashing; a key whose server is down is answered with an `unavailable` error and is never
 * moved to another server (a moved key could serve a value that missed an invalidation).
 */
export interface CacheStore {
  /** Runs the operations, pipelined per server; results come in the order of `ops`. Never rejects. */
  execute<const Ops extends readonly StoreOp[]>(ops: Ops): Promise<{ -readonly [I in keyof Ops]: StoreResultOf<Ops[I]> }>;
  /** Reads one key. */
  get(key: string): Promise<StoreResultOf<{ op: 'get'; key: string }>>;
  /** Reads many keys in one pipelined round trip per server; misses are absent from the map, failures listed. */
  getMulti(keys: readonly string[]): Promise<MultiGetResult>;
  /** The server a logical key maps to (`host:port`). */
  serverFor(key: string): string;
  /** Every server keys map to (`host:port`), in configuration order. */
  readonly servers: readonly string[];
  /** The largest value, in bytes, the store will send; larger ones are refused with `ValueTooLargeError`. */
  readonly maxValueBytes: number;
  /** Traffic counters. */
  readonly counters: StoreCounters;
  /**
   * Asks every server for a (missing) probe key, connecting if needed: the connection attempt is bounded by the
   * connect timeout and the answer by the operation deadline. One answer per server, in the order of the server
   * list. Never rejects. Optional: stores that cannot tell servers apart do not implement it.
   */
  probe?(): Promise<readonly ServerProbe[]>;
  /**
   * Closes every connection. Operations issued before the call settle first (each within its deadline);
   * operations issued afterwards fail with `unavailable`.
   */
  close(): Promise<void>;
}

/** Whether one server answered {@link CacheStore.probe}. */
export interface ServerProbe {
  /** `host:port`. */
  readonly server: string;
  readonly reachable: boolean;
  /** How long the probe took, connecting included. */
  readonly ms: number;
  /** Why it is not reachable. */
  readonly error?: StoreError;
}

/** What {@link CacheStore.getMulti} found. */
export interface MultiGetResult {
  readonly items: Map<string, StoredItem>;
  /** Keys that could not be read, with the reason. */
  readonly failed: Map<string, StoreError>;
}
