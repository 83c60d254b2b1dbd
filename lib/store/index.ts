/**
 * The store layer: typed, pipelined access to memcached for the protocol layer. It maps keys to servers by
 * consistent hashing, batches each call's operations into one round trip per server, bounds every operation by a
 * deadline and reports misses, conflicts and failures as results. It imports nothing from the protocol or
 * MikroORM layers.
 *
 * @packageDocumentation
 */
export type {
  CacheStore,
  CasToken,
  MultiGetResult,
  ServerProbe,
  StoreCounters,
  StoredItem,
  StoreOp,
  StoreResult,
  StoreResultOf,
} from './cache-store.js';
export {
  StoreConfigError,
  StoreError,
  StoreInputError,
  StoreProtocolError,
  StoreTimeoutError,
  StoreUnavailableError,
  ValueTooLargeError,
  type StoreErrorKind,
} from './store-errors.js';
export { MemcachedStore } from './memcached-store.js';
export { DEFAULT_MAX_VALUE_BYTES, type MemcachedStoreOptions } from './memcached-store-options.js';
export { KetamaRing } from './ketama-ring.js';
export { MAX_KEY_BYTES } from './key-builder.js';
