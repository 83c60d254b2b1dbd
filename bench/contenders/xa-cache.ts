import { MikroORM } from '@mikro-orm/postgresql';
import { withXaCache } from '../../lib/mikro-orm/with-xa-cache.js';
import { installWriteCapture } from '../../lib/mikro-orm/write-capture-setup.js';
import type { XaCacheAdapter } from '../../lib/mikro-orm/xa-cache-adapter.js';
import { entities } from '../../spec/support/bookstore.js';
import { baseOptions, countCalls, type Contender } from './contender.js';

/** The adapter of an open xa-cache ORM (for the sweeper and the stats). */
export function xaAdapterOf(orm: MikroORM): XaCacheAdapter {
  return orm.config.getResultCacheAdapter() as unknown as XaCacheAdapter;
}

/**
 * mikro-orm-xa-cache: row and collection cache by primary key (no `cache` option needed), result cache for
 * queries, two-phase invalidation on every commit. `cache` counts store calls, each one pipelined round trip per
 * memcached server it touches; `sqlLog` counts the log INSERTs it sends on the transaction's own connection
 * (not through `onQuery`).
 */
export const xaCache: Contender = {
  key: 'xa',
  label: 'xa-cache',
  description: 'mikro-orm-xa-cache (this library) on the same memcached: coherent row, collection and query cache',
  unavailable: () => undefined,
  async open(ctx) {
    const counter: Record<string, number> = { sql: 0, cache: 0 };
    const orm = await MikroORM.init(
      withXaCache({ ...baseOptions(ctx, counter as { sql: number }), entities }, { servers: ctx.memcached, namespace: ctx.namespace, logTable: 'xa_cache_log' }),
    );
    // As an application does after its migrations: the database-side write capture on every entity table.
    await installWriteCapture(orm);
    const adapter = xaAdapterOf(orm);
    // getMulti goes through execute: counting execute and get counts every call once.
    countCalls(adapter.xa.store, ['get', 'execute'], counter, 'cache');
    return {
      orm,
      pkOptions: {},
      queryCache: 60_000,
      collectionCache: undefined,
      counters: () => ({ ...counter, sqlLog: adapter.xa.stats.prepares }),
      close: () => orm.close(true),
    };
  },
};

