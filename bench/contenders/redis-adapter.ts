import { MikroORM } from '@mikro-orm/postgresql';
import { RedisCacheAdapter } from 'mikro-orm-cache-adapter-redis';
import { entities } from '../../spec/support/bookstore.js';
import { baseOptions, countCalls, type Contender } from './contender.js';

/** The community adapter `mikro-orm-cache-adapter-redis` (ioredis, v8-serialised values) on a throwaway redis-server. */
export const redisAdapter: Contender = {
  key: 'redis',
  label: 'redis adapter',
  description: '`mikro-orm-cache-adapter-redis` 4.0.0 (ioredis 5, v8 serialisation) on its own redis-server; installs and works with MikroORM 7 unchanged (its CacheAdapter methods match); no invalidation',
  unavailable: ({ redisPort }) => (redisPort === undefined ? 'redis-server is not installed' : undefined),
  async open(ctx) {
    const counter: Record<string, number> = { sql: 0, cache: 0 };
    const orm = await MikroORM.init({
      ...baseOptions(ctx, counter as { sql: number }),
      entities,
      resultCache: {
        adapter: RedisCacheAdapter,
        expiration: 60_000,
        options: { host: '127.0.0.1', port: ctx.redisPort, keyPrefix: ctx.namespace, lazyConnect: false },
      },
    });
    countCalls(orm.config.getResultCacheAdapter(), ['get', 'set'], counter, 'cache');
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
