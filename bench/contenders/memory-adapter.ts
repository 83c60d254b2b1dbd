import { MemoryCacheAdapter } from '@mikro-orm/core';
import { openResultCacheContender, type Contender } from './contender.js';

/** MikroORM's own MemoryCacheAdapter as the result cache: per process, never invalidated; the in-process ceiling. */
export const memoryAdapter: Contender = {
  key: 'memory',
  label: 'MemoryCacheAdapter',
  description: "MikroORM's built-in result cache (a Map per process; not shared, not invalidated on writes)",
  memcachedServers: 1,
  unavailable: () => undefined,
  // In-process: nothing crosses the network, but the lookups are counted for comparison.
  open: (ctx) => openResultCacheContender(ctx, { adapter: MemoryCacheAdapter }, 'lookups'),
};
