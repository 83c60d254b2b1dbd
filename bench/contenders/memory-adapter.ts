import { MemoryCacheAdapter } from '@mikro-orm/core';
import { MikroORM } from '@mikro-orm/postgresql';
import { entities } from '../../spec/support/bookstore.js';
import { baseOptions, countCalls, type Contender } from './contender.js';

/** MikroORM's own MemoryCacheAdapter as the result cache: per process, never invalidated; the in-process ceiling. */
export const memoryAdapter: Contender = {
  key: 'memory',
  label: 'MemoryCacheAdapter',
  description: "MikroORM's built-in result cache (a Map per process; not shared, not invalidated on writes)",
  unavailable: () => undefined,
  async open(ctx) {
    const counter: Record<string, number> = { sql: 0, cache: 0 };
    const orm = await MikroORM.init({
      ...baseOptions(ctx, counter as { sql: number }),
      entities,
      resultCache: { adapter: MemoryCacheAdapter, expiration: 60_000 },
    });
    // In-process: nothing crosses the network, but count the lookups for comparison.
    countCalls(orm.config.getResultCacheAdapter(), ['get', 'set'], counter, 'lookups');
    return {
      orm,
      pkOptions: { cache: 60_000 },
      queryCache: 60_000,
      collectionCache: 60_000,
      counters: () => ({ ...counter }),
      close: () => orm.close(true),
    };
  },
};
