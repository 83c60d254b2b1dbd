import { MikroORM } from '@mikro-orm/postgresql';
import { withXaCache } from '../../lib/mikro-orm/with-xa-cache.js';
import { installWriteCapture } from '../../lib/mikro-orm/write-capture-setup.js';
import type { XaCacheAdapter } from '../../lib/mikro-orm/xa-cache-adapter.js';
import { entities } from '../../spec/support/bookstore.js';
import { baseOptions, countCalls, RESULT_CACHE_MS, type Contender, type ContenderContext, type OpenContender } from './contender.js';

/** The adapter of an open xa-cache ORM (for the sweeper and the stats). */
export function xaAdapterOf(orm: MikroORM): XaCacheAdapter {
  return orm.config.getResultCacheAdapter() as unknown as XaCacheAdapter;
}

/**
 * mikro-orm-xa-cache: row and collection cache by primary key (no `cache` option needed), result cache for
 * queries, two-phase invalidation on every commit, the database-side write capture installed. `cache` counts store
 * calls; `roundTrips` and `requests` are the store's own counters (batches written to a server socket, and
 * memcached requests in them); `sqlLog` counts the log statements it sends on the transaction's own connection (not
 * through `onQuery`). `capture: false` leaves the capture triggers out (the write-capture benchmark's baseline).
 */
export async function openXaCache(ctx: ContenderContext, options: { capture: boolean } = { capture: true }): Promise<OpenContender> {
  const counter: Record<string, number> = { sql: 0, cache: 0 };
  const orm = await MikroORM.init(withXaCache({ ...baseOptions(ctx, counter as { sql: number }), entities }, { servers: ctx.memcached, namespace: ctx.namespace, logTable: 'xa_cache_log' }));
  // As an application does after its migrations: the database-side write capture on every entity table.
  if (options.capture) await installWriteCapture(orm);
  const adapter = xaAdapterOf(orm);
  // getMulti goes through execute: counting execute and get counts every call once.
  countCalls(adapter.xa.store, ['get', 'execute'], counter, 'cache');
  const store = adapter.xa.store.counters;
  return {
    orm,
    fills: true,
    pkOptions: {},
    queryCache: RESULT_CACHE_MS,
    collectionCache: undefined,
    counters: () => ({ ...counter, roundTrips: store.roundTrips, requests: store.requests, sqlLog: adapter.xa.stats.prepares }),
    close: () => orm.close(true),
  };
}

export const xaCache: Contender = {
  key: 'xa',
  label: 'xa-cache',
  description: 'mikro-orm-xa-cache (this library) on the same memcached, write capture installed: coherent row, collection and query cache',
  memcachedServers: 1,
  unavailable: () => undefined,
  open: (ctx) => openXaCache(ctx),
};

/** The same on two memcached servers: only the primary-key hit, to compare with one server inside each round. */
export const xaCacheTwoServers: Contender = {
  key: 'xa2',
  label: 'xa-cache, 2 memcached',
  description: 'xa-cache as above on two memcached servers (keys spread by its ketama ring); primary-key hit only',
  memcachedServers: 2,
  workloads: ['pk'],
  unavailable: () => undefined,
  open: (ctx) => openXaCache(ctx),
};
