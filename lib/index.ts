/**
 * mikro-orm-xa-cache: a transactional second-level cache for MikroORM on PostgreSQL, backed by memcached.
 *
 * Most applications need only {@link withXaCache} and the `xaCache` entity option (or `@Cacheable()`).
 *
 * @packageDocumentation
 */
export * from './mikro-orm/index.js';
export * from './protocol/index.js';
export * from './operations/index.js';
export { RegionStats, MAX_REGION_LABELS } from './protocol/cache-stats.js';
export { MemcachedStore, KetamaRing } from './store/index.js';
export type { CacheStore, CasToken, StoredItem, StoreOp, StoreResult, StoreCounters, MultiGetResult, ServerProbe } from './store/cache-store.js';
export type { MemcachedStoreOptions } from './store/memcached-store-options.js';
export { StoreError, StoreUnavailableError, StoreTimeoutError, ValueTooLargeError, StoreProtocolError, StoreInputError, StoreConfigError, type StoreErrorKind } from './store/store-errors.js';
