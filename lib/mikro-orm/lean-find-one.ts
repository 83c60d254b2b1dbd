import { ReferenceKind, type EntityManager, type EntityMetadata, type EntityName } from '@mikro-orm/core';
import { entityCacheOf } from './entity-marker.js';

/** What the lean path needs of the driver (see `XaPostgreSqlDriver.servesRowsOf`). */
interface RowServingDriver {
  servesRowsOf(meta: EntityMetadata, schema: string | undefined): boolean;
  rowById(meta: EntityMetadata, schema: string | undefined, id: unknown, em: object): Promise<object | null>;
}

/** The entity manager's members the lean path uses that MikroORM does not type as public. */
interface EntityManagerInternals {
  tryFlush(entityName: EntityName<object>, options: object): Promise<void>;
  schema: string | undefined;
}

type Key = string | number | bigint;

const eligible = new WeakMap<EntityMetadata, boolean>();

/**
 * `em.findOne(Entity, id)` with no options, for a cached entity nothing about which needs the entity manager's
 * general query preparation: no filters, no eager or one-to-one relations (populate hints and joins), no
 * inheritance. Everything `findOne` does for such a call is done here in the same order — the identity map first,
 * auto-flush, the row (a clean hit read in one multi-get, else the driver's `findOne`: the row cache's general path, a
 * miss filled from the database), the entity merged
 * into the identity map, `onLoad` events — but without building filter conditions, populate hints, the result-cache
 * key and the populate pass, which for this call are all empty. Profiled, they were most of a cache hit's CPU.
 *
 * Resolves to `undefined` when the call is not of this shape: the caller runs MikroORM's `findOne`.
 */
export function leanFindOne(em: EntityManager, entityName: EntityName<object>, where: unknown, options: object | undefined, emFilters: boolean): Promise<object | null | undefined> | undefined {
  if (options !== undefined && Object.keys(options).length > 0) return undefined;
  const meta = em.getMetadata().find(entityName);
  if (!meta || !isEligible(meta)) return undefined;
  const id = keyOf(where, meta);
  if (id === undefined || emFilters) return undefined;
  const context = em.getContext();
  const config = context.config;
  if (config.get('disableIdentityMap') || config.get('resultCache').global || hasActiveFilters(config.get('filters'))) return undefined;
  if (context.getTransactionContext() !== undefined) return undefined;
  const driver = context.getDriver() as unknown as RowServingDriver;
  const internals = context as unknown as EntityManagerInternals;
  const schema = internals.schema;
  if (!driver.servesRowsOf(meta, schema)) return undefined;
  const uow = context.getUnitOfWork();
  // An entity already in the identity map (a reference to initialise, or one to refresh): MikroORM's path.
  if (uow.getById(entityName, id as never, schema) !== undefined) return undefined;
  return (async () => {
    await internals.tryFlush(entityName, {});
    const data = await driver.rowById(meta, schema, id, context);
    if (!data) return null;
    const entity = context.getEntityFactory().create(entityName, data as never, { merge: true, schema, convertCustomTypes: true });
    await uow.dispatchOnLoadEvent();
    return entity;
  })();
}

function isEligible(meta: EntityMetadata): boolean {
  let ok = eligible.get(meta);
  if (ok === undefined) {
    ok =
      entityCacheOf(meta) !== undefined &&
      meta.primaryKeys.length === 1 &&
      !meta.virtual &&
      !meta.pivotTable &&
      !meta.embeddable &&
      !meta.discriminatorColumn &&
      !meta.discriminatorValue &&
      !hasActiveFilters(meta.filters) &&
      !meta.props.some((p) => p.eager || p.lazy || p.kind === ReferenceKind.ONE_TO_ONE || p.kind === ReferenceKind.EMBEDDED || p.formula !== undefined);
    eligible.set(meta, ok);
  }
  return ok;
}

function keyOf(where: unknown, meta: EntityMetadata): Key | undefined {
  if (typeof where === 'number' || typeof where === 'string' || typeof where === 'bigint') return where;
  if (where === null || typeof where !== 'object' || Object.getPrototypeOf(where) !== Object.prototype) return undefined;
  const entries = Object.entries(where);
  if (entries.length !== 1) return undefined;
  const [prop, value] = entries[0] as [string, unknown];
  if (prop !== String(meta.primaryKeys[0])) return undefined;
  return typeof value === 'number' || typeof value === 'string' || typeof value === 'bigint' ? value : undefined;
}

/** Any filter that applies unless disabled (MikroORM's `default`, true unless set false). */
function hasActiveFilters(filters: Record<string, { default?: boolean }> | undefined): boolean {
  return filters !== undefined && Object.values(filters).some((f) => f.default !== false);
}
