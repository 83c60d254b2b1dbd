import type { EntityMetadata } from '@mikro-orm/core';

/**
 * How an entity takes part in the second-level cache. Set it with `xaCache: {...}` in `defineEntity` /
 * `new EntitySchema`, or with the {@link Cacheable} decorator on a class.
 */
export interface EntityCacheSettings {
  /** Seconds a cached row (and its collections) may live before memcached drops it. Default: the adapter's `rowTtlSeconds`. */
  ttlSeconds?: number;
  /**
   * `read-write` (default): rows are cached and kept correct through the two-phase protocol.
   * `read-only`: rows are cached and any write to the entity is refused with an error, as Hibernate's READ_ONLY
   * strategy does: for reference data that never changes at run time.
   */
  strategy?: 'read-write' | 'read-only';
  /** Cache the member ids of this entity's to-many collections (1:m and m:n). Default true. */
  collections?: boolean;
  /**
   * Properties that never enter the cache (password hashes, tokens). Each must be `lazy`, so MikroORM leaves it out
   * of the rows it loads by default: cached rows are then the rows without it, and a query that asks for it (with
   * `populate` or `fields`) reads the database and is not stored in the result cache.
   */
  secretFields?: readonly string[];
  /**
   * Unique lookups to serve from the cache like lookups by primary key (Hibernate's natural ids): each entry is a
   * list of property names backed by a unique constraint on exactly those columns, e.g. `[['email'], ['tenant',
   * 'slug']]`. `em.findOne(E, { email })` then resolves the value to a primary key through a cached index entry and
   * reads the row through the row cache. Checked at `MikroORM.init` (metadata) and `startXaCache` (the catalog).
   */
  uniqueKeys?: readonly (readonly string[])[];
}

declare module '@mikro-orm/core' {
  interface EntityMetadata<Entity, Class> {
    /** mikro-orm-xa-cache: cache this entity's rows by primary key (see `EntityCacheSettings`). */
    xaCache?: EntityCacheSettings | boolean;
  }
}

const DECORATED = Symbol.for('mikro-orm-xa-cache:entity');

/**
 * Class decorator marking an entity for the second-level cache (the decorator form of `xaCache` in
 * `defineEntity`). Works with legacy (`experimentalDecorators`) and standard decorators.
 */
export function Cacheable(settings: EntityCacheSettings = {}): (target: abstract new (...args: never[]) => unknown, context?: unknown) => void {
  return (target) => {
    Object.defineProperty(target, DECORATED, { value: { ...settings }, enumerable: false });
  };
}

/** The resolved cache settings of an entity, or undefined when it is not cached. */
export interface ResolvedEntityCache {
  readonly ttlSeconds: number | undefined;
  readonly strategy: 'read-write' | 'read-only';
  readonly collections: boolean;
  readonly secretFields: readonly string[];
  readonly uniqueKeys: readonly (readonly string[])[];
}

const resolved = new WeakMap<EntityMetadata, ResolvedEntityCache | null>();

/** Reads an entity's marker from its metadata or its class (the decorator); remembered per metadata, as it is asked on every read. */
export function entityCacheOf(meta: EntityMetadata): ResolvedEntityCache | undefined {
  let found = resolved.get(meta);
  if (found === undefined) {
    found = resolve(meta) ?? null;
    resolved.set(meta, found);
  }
  return found ?? undefined;
}

function resolve(meta: EntityMetadata): ResolvedEntityCache | undefined {
  const fromClass = (meta.class as unknown as Record<symbol, EntityCacheSettings | undefined> | undefined)?.[DECORATED];
  const raw = meta.xaCache ?? fromClass ?? meta.root?.xaCache ?? (meta.root?.class as unknown as Record<symbol, EntityCacheSettings | undefined> | undefined)?.[DECORATED];
  if (raw === undefined || raw === false) return undefined;
  const settings: EntityCacheSettings = raw === true ? {} : raw;
  return { ttlSeconds: settings.ttlSeconds, strategy: settings.strategy ?? 'read-write', collections: settings.collections ?? true, secretFields: settings.secretFields ?? [], uniqueKeys: settings.uniqueKeys ?? [] };
}
