import type { EntityName } from '@mikro-orm/core';
import { EntityManager } from '@mikro-orm/postgresql';
import { qualifiedTable } from './cache-keys.js';
import { QueryScope, currentCall, withCall } from './call-context.js';
import type { XaCacheAdapter } from './xa-cache-adapter.js';

type CacheConfig = boolean | number | [string, number] | undefined;
type CacheKeyHolder = { key: string; data: unknown; skip?: boolean } | undefined;

/**
 * The entity manager of an ORM configured with the cache. It does three things MikroORM's own does not:
 *
 * - runs `find`, `findOne` and `count` (and so `findAndCount`, `findAll`) inside a query scope, so the tables a cached result was read from are
 *   known when it is stored (the connection and the driver record them);
 * - never reads or stores query results inside a transaction: they could show the transaction's own uncommitted
 *   rows to others (G1), or rows newer than its snapshot (G5);
 * - marks unit-of-work flushes, whose collection changes the subscriber names exactly.
 */
export class XaEntityManager extends EntityManager {
  override flush(): Promise<void> {
    return withCall({ uowFlush: true }, () => super.flush());
  }

  /** @internal */
  override async tryCache<T extends object, R>(entityName: EntityName<T>, config: CacheConfig, key: unknown, refresh?: boolean, merge?: boolean): Promise<{ key: string; data?: R | null } | undefined> {
    if (config === undefined && !this.config.get('resultCache').global) return undefined;
    if (config !== false && this.isInTransaction()) return { key: '', data: undefined, skip: true } as { key: string; data?: R | null };
    // The queried entity's table is known before the query runs: the adapter checks it on this very read.
    const meta = this.getMetadata().find(entityName);
    const query = currentCall().query;
    if (meta && query) query.tables.add(qualifiedTable(meta, this.schema, (this.config.getResultCacheAdapter() as XaCacheAdapter).defaultSchema));
    return super.tryCache<T, R>(entityName, config, key, refresh, merge);
  }

  /** @internal */
  override async storeCache(config: CacheConfig, key: { key: string }, data: unknown): Promise<void> {
    if ((key as CacheKeyHolder)?.skip || this.isInTransaction()) return;
    await super.storeCache(config, key, data as never);
  }
}

// find/findOne/count run inside a query scope. They are patched on the prototype rather than overridden in the
// class body because restating their generic signatures would have to track every MikroORM release.
for (const name of ['find', 'findOne', 'count'] as const) {
  const base = EntityManager.prototype[name] as (...args: unknown[]) => Promise<unknown>;
  Object.defineProperty(XaEntityManager.prototype, name, {
    configurable: true,
    writable: true,
    value: function scoped(this: EntityManager, ...args: unknown[]): Promise<unknown> {
      return withCall({ query: new QueryScope() }, () => base.apply(this, args));
    },
  });
}
