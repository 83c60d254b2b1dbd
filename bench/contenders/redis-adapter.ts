import { RedisCacheAdapter } from 'mikro-orm-cache-adapter-redis';
import { openResultCacheContender, type Contender } from './contender.js';

/** The community adapter `mikro-orm-cache-adapter-redis` (ioredis, v8-serialised values) on a throwaway redis-server. */
export const redisAdapter: Contender = {
  key: 'redis',
  label: 'redis adapter',
  description: '`mikro-orm-cache-adapter-redis` 4.0.0 (ioredis 5, v8 serialisation) on its own redis-server; installs and works with MikroORM 7 unchanged (its CacheAdapter methods match); no invalidation',
  memcachedServers: 1,
  unavailable: ({ redisPort }) => (redisPort === undefined ? 'redis-server is not installed' : undefined),
  open: (ctx) =>
    openResultCacheContender(ctx, { adapter: RedisCacheAdapter, options: { host: '127.0.0.1', port: ctx.redisPort, keyPrefix: ctx.namespace, lazyConnect: false } }, 'cache'),
};
