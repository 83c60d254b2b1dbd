import { ReferenceKind, type EntityManager, type EntityMetadata, type EntityName } from '@mikro-orm/core';
import { keys, pkString, qualifiedTable, regions } from './cache-keys.js';
import { entityCacheOf } from './entity-marker.js';
import type { XaPostgreSqlDriver } from './xa-driver.js';
import { XaConfigError } from './xa-errors.js';

/**
 * Invalidates cached rows of an entity for a change no database reported to this library (another database, an
 * external system, a restore): with `ids`, those rows and their collections; without, every row of the table.
 * Query results that read the table are invalidated either way, and so are the collections stored in it.
 *
 * Inside a transaction (`em` is in one) the keys join its prepare and are invalidated under the two-phase
 * protocol when it commits (nothing if it rolls back); outside, they are invalidated now. Resolves to the store
 * keys that could not be reached (empty when everything was invalidated); inside a transaction, always empty
 * (an unreachable key then fails or degrades the commit, as the failure policy says).
 *
 * The counterpart of Hibernate's `Cache.evictEntityData` and IdentityCache's `expire_cache`.
 */
export async function invalidate<T extends object>(em: EntityManager, entity: EntityName<T>, ids?: readonly unknown[]): Promise<string[]> {
  const meta = em.getMetadata().get(entity as EntityName<object>) as EntityMetadata;
  return apply(em, [target(em, meta, ids)]);
}

/** Invalidates every cached row, collection and query result of each entity's table (see {@link invalidate}). */
export async function invalidateTable<T extends object>(em: EntityManager, ...entities: EntityName<T>[]): Promise<string[]> {
  return apply(em, entities.map((entity) => target(em, em.getMetadata().get(entity as EntityName<object>) as EntityMetadata, undefined)));
}

/** Invalidates everything cached for every entity of this ORM (see {@link invalidate}). */
export async function invalidateAll(em: EntityManager): Promise<string[]> {
  const metas = [...em.getMetadata().getAll().values()].filter((meta) => !meta.embeddable && !meta.virtual && meta.tableName && (!meta.root || meta.root === meta));
  return apply(em, metas.map((meta) => target(em, meta, undefined)));
}

function target(em: EntityManager, meta: EntityMetadata, ids: readonly unknown[] | undefined): { keys: string[]; regions: string[] } {
  const defaultSchema = driverOf(em).xaConnection.cache.defaultSchema;
  const schema = (em as unknown as { schema?: string }).schema;
  const table = qualifiedTable(meta, schema, defaultSchema);
  // Which values the rows had is unknown here: results cached by conjunction depend on the table-wide generation.
  const found = { keys: [] as string[], regions: [regions.query(table), regions.tableWide(table), regions.collections(table)] };
  if (!ids) found.regions.push(regions.rows(table));
  else for (const id of ids) found.keys.push(keys.row(table, pkString(id)));
  if (entityCacheOf(meta)?.collections) {
    for (const prop of Object.values(meta.properties)) {
      if (prop.kind !== ReferenceKind.ONE_TO_MANY && prop.kind !== ReferenceKind.MANY_TO_MANY) continue;
      if (ids) for (const id of ids) found.keys.push(keys.collection(table, prop.name, pkString(id)));
      else {
        const membersMeta = prop.kind === ReferenceKind.MANY_TO_MANY ? em.getMetadata().find(prop.pivotEntity as never) : prop.targetMeta;
        if (membersMeta) found.regions.push(regions.collections(qualifiedTable(membersMeta, schema, defaultSchema)));
      }
    }
  }
  return found;
}

async function apply(em: EntityManager, targets: Array<{ keys: string[]; regions: string[] }>): Promise<string[]> {
  const connection = driverOf(em).xaConnection;
  const itemKeys = targets.flatMap((t) => t.keys);
  const regionNames = [...new Set(targets.flatMap((t) => t.regions))];
  if (em.isInTransaction()) {
    const scope = connection.scopeOf(em.getTransactionContext());
    if (!scope) throw XaConfigError.foreignTransaction();
    scope.invalidate(itemKeys);
    scope.touchRegions(regionNames);
    return [];
  }
  return connection.cache.xa.invalidateNow(itemKeys, regionNames);
}

function driverOf(em: EntityManager): XaPostgreSqlDriver {
  const driver = em.getDriver() as unknown as Partial<XaPostgreSqlDriver>;
  if (!driver.xaConnection) throw XaConfigError.driverMissing();
  return driver as XaPostgreSqlDriver;
}
