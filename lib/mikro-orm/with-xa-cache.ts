import type { Options } from '@mikro-orm/postgresql';
import { XaCacheAdapter, type XaCacheOptions } from './xa-cache-adapter.js';
import { XaPostgreSqlDriver } from './xa-driver.js';
import { XaEntityManager } from './xa-entity-manager.js';
import { XaSubscriber } from './xa-subscriber.js';

/**
 * Adds the transactional second-level cache to a MikroORM PostgreSQL configuration, in one call:
 *
 * ```ts
 * const orm = await MikroORM.init(withXaCache({ entities, clientUrl }, { servers: ['127.0.0.1:11211'] }));
 * ```
 *
 * It sets the XA driver (reads and writes through the cache), its entity manager, the result-cache adapter and
 * the flush subscriber. Options are checked at once; memcached and the log table are reached when the ORM connects.
 */
export function withXaCache<O extends Options>(config: O, cache: XaCacheOptions): O {
  if (config.driver && !(config.driver === XaPostgreSqlDriver || config.driver.prototype instanceof XaPostgreSqlDriver)) {
    throw new TypeError(`mikro-orm-xa-cache: withXaCache sets the driver itself; remove driver: ${config.driver.name} from the config (or extend XaPostgreSqlDriver)`);
  }
  // Validate now, not at the first query.
  void new XaCacheAdapter(cache).close();
  return {
    ...config,
    driver: config.driver ?? XaPostgreSqlDriver,
    entityManager: XaEntityManager,
    resultCache: { ...config.resultCache, adapter: XaCacheAdapter, options: { ...config.resultCache?.options, ...cache } },
    subscribers: [...(config.subscribers ?? []), new XaSubscriber()],
    schemaGenerator: { ...config.schemaGenerator, skipTables: [...(config.schemaGenerator?.skipTables ?? []), ...libraryTables(cache.logTable ?? 'xa_cache_log')] },
  } as O;
}

/**
 * The library's own tables, for MikroORM's `schemaGenerator.skipTables`: `schema:update` and `migration:create`
 * would otherwise drop them as unknown. MikroORM matches the bare name when it reads the catalog and
 * `schema.table` when it diffs, so a qualified name is given both ways.
 */
export function libraryTables(logTable: string): string[] {
  const names = [logTable, `${logTable}_changes`];
  return logTable.includes('.') ? [...names, ...names.map((n) => n.slice(n.indexOf('.') + 1))] : names;
}
