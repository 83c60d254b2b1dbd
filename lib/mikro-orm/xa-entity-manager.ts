import type { EntityName } from '@mikro-orm/core';
import { EntityManager } from '@mikro-orm/postgresql';
import { qualifiedTable } from './cache-keys.js';
import { entityCacheOf } from './entity-marker.js';
import { QueryScope, currentCall, withCall } from './call-context.js';
import type { XaCacheAdapter } from './xa-cache-adapter.js';
import { leanFindOne } from './lean-find-one.js';

type CacheConfig = boolean | number | [string, number] | undefined;
type CacheKeyHolder = { key: string; data: unknown; skip?: boolean } | undefined;

/**
 * The entity manager of an ORM configured with the cache. It does three things MikroORM's own does not:
 *
 * - runs `find`, `findOne` and `count` (and so `findAndCount`, `findAll`) inside a query scope, so the tables a cached result was read from are
 *   known when it is stored (the connection and the driver record them);
 * - never reads or stores query results inside a transaction: they could show the transaction's own uncommitted
 *   rows to others (G1), or rows newer than its snapshot (G5);
 * - sends every query whose result may be stored in the result cache (`find`, `findOne`, `count` and QueryBuilders
 *   with `cache`, or all of them with `resultCache.global`) to the primary: a read replica may not have replayed
 *   the commit that invalidated the key yet, and a result read from it would be stored stale (the row and
 *   collection fills of the driver read the primary for the same reason).
 */
export class XaEntityManager extends EntityManager {
  /** @internal */
  override async tryCache<T extends object, R>(entityName: EntityName<T>, config: CacheConfig, key: unknown, refresh?: boolean, merge?: boolean): Promise<{ key: string; data?: R | null } | undefined> {
    if (config === undefined && !this.config.get('resultCache').global) return undefined;
    if (config !== false && this.isInTransaction()) return { key: '', data: undefined, skip: true } as { key: string; data?: R | null };
    // The queried entity's table is known before the query runs: the adapter checks it on this very read.
    const meta = this.getMetadata().find(entityName);
    const query = currentCall().query;
    if (meta && query) {
      // The schema MikroORM reads the table in: the entity's, the call's, else the configured `schema`.
      const schema = this.getDriver().getSchemaName(meta, { schema: this.schema });
      query.schema = schema;
      query.tables.add(qualifiedTable(meta, schema, (this.config.getResultCacheAdapter() as XaCacheAdapter).defaultSchema));
    }
    return super.tryCache<T, R>(entityName, config, key, refresh, merge);
  }

  /** `em.clearCache(name)` evicts the result stored under this name in this entity manager's schema. */
  override async clearCache(cacheKey: string): Promise<void> {
    const scope = new QueryScope();
    scope.schema = this.schema ?? this.config.getSchema();
    await withCall({ query: scope }, () => super.clearCache(cacheKey));
  }

  /** @internal */
  override async storeCache(config: CacheConfig, key: { key: string }, data: unknown): Promise<void> {
    if ((key as CacheKeyHolder)?.skip || this.isInTransaction()) return;
    await super.storeCache(config, key, data as never);
  }
}

/** Whether a query with this `cache` option uses the result cache: its own option, else `resultCache.global`. */
function usesResultCache(em: EntityManager, config: unknown): boolean {
  return Boolean(config ?? em.config.get('resultCache').global);
}

// find/findOne/count run inside a query scope, and on the primary when their result may be cached. They are patched
// on the prototype rather than overridden in the class body because restating their generic signatures would have
// to track every MikroORM release.
for (const name of ['find', 'findOne', 'count'] as const) {
  const base = EntityManager.prototype[name] as (...args: unknown[]) => Promise<unknown>;
  Object.defineProperty(XaEntityManager.prototype, name, {
    configurable: true,
    writable: true,
    value: function scoped(this: EntityManager, ...args: unknown[]): Promise<unknown> {
      // (entityName, where, options): populates of the result are loaded with the same options, so from the primary too.
      const options = args[2] as { cache?: unknown; connectionType?: string; populate?: unknown; fields?: unknown } | undefined;
      if (name === 'findOne') {
        const adapter = this.config.getResultCacheAdapter() as XaCacheAdapter;
        const lean = leanFindOne(this, args[0] as never, args[1], options, adapter.entityManagerFilters);
        if (lean) return lean;
      }
      // Without a result cache in play there is nothing to scope: the common path stays free of AsyncLocalStorage.
      if (!usesResultCache(this, options?.cache)) return base.apply(this, args);
      // A result that would carry a secret field is read from the database and never stored.
      if (namesSecretField(this, options)) return base.apply(this, [args[0], args[1], { ...options, cache: false }]);
      if (options?.connectionType !== 'write') args[2] = { ...options, connectionType: 'write' };
      return withCall({ query: new QueryScope() }, () => base.apply(this, args));
    },
  });
}

// A filter added to an entity manager (and so to its forks) is not visible from outside it: once any is added,
// `findOne` always takes MikroORM's path, which applies filters (see `leanFindOne`).
{
  const base = EntityManager.prototype.addFilter as (...args: unknown[]) => unknown;
  Object.defineProperty(XaEntityManager.prototype, 'addFilter', {
    configurable: true,
    writable: true,
    value: function addFilter(this: EntityManager, ...args: unknown[]): unknown {
      (this.config.getResultCacheAdapter() as XaCacheAdapter).entityManagerFilters = true;
      return base.apply(this, args);
    },
  });
}

type CachingQueryBuilder = { connectionType?: string; cache(config?: CacheConfig): unknown };

// A QueryBuilder reads through the connection of its `connectionType` (a replica when `preferReadReplicas`):
// while its result may be cached (`.cache(...)`, or `resultCache.global`), that is the primary.
{
  const base = EntityManager.prototype.createQueryBuilder as (...args: unknown[]) => unknown;
  Object.defineProperty(XaEntityManager.prototype, 'createQueryBuilder', {
    configurable: true,
    writable: true,
    value: function createQueryBuilder(this: EntityManager, ...args: unknown[]): unknown {
      const qb = base.apply(this, args) as CachingQueryBuilder;
      const requested = qb.connectionType;
      const choose = (config: CacheConfig): void => {
        qb.connectionType = usesResultCache(this, config) ? 'write' : requested;
      };
      const cache = qb.cache;
      qb.cache = function (this: CachingQueryBuilder, config: CacheConfig = true) {
        const result = cache.call(this, config);
        choose(config);
        return result;
      };
      choose(undefined);
      return qb;
    },
  });
}

const secretNames = new WeakMap<object, ReadonlySet<string>>();

/** Whether `populate` or `fields` of a query names a secret field of any cached entity (by its last path segment). */
function namesSecretField(em: EntityManager, options: { populate?: unknown; fields?: unknown } | undefined): boolean {
  const metadata = em.getMetadata();
  let names = secretNames.get(metadata);
  if (!names) {
    const found = new Set<string>();
    for (const meta of metadata.getAll().values()) for (const field of entityCacheOf(meta)?.secretFields ?? []) found.add(field);
    secretNames.set(metadata, (names = found));
  }
  if (names.size === 0 || !options) return false;
  const paths = [...asList(options.populate), ...asList(options.fields)];
  return paths.some((path) => path === '*' || path.endsWith('.*') || names.has(path.split(':')[0]?.split('.').pop() ?? ''));
}

function asList(value: unknown): string[] {
  if (value === undefined || value === null || value === false) return [];
  return (Array.isArray(value) ? value : [value]).filter((v): v is string => typeof v === 'string');
}
