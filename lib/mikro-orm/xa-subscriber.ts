import { helper, ReferenceKind, type EntityMetadata, type EntityProperty, type EventSubscriber, type FlushEventArgs, type TransactionEventArgs, type UnitOfWork, type ChangeSet, type AnyEntity } from '@mikro-orm/core';
import { keys, pkString, qualifiedTable } from './cache-keys.js';
import { entityCacheOf } from './entity-marker.js';
import { uniqueKeysOf } from './unique-keys.js';
import type { TransactionScope } from './transaction-scope.js';
import type { XaPostgreSqlDriver } from './xa-driver.js';
import { ReadOnlyEntityError } from './xa-errors.js';

interface Pending {
  readonly keys: Set<string>;
}

/**
 * Names, at each flush, the collections the flush changes: for a child created, deleted or moved, its old and
 * new owners' 1:m collections; for an m:n collection, its owner's and the other side's. Rows themselves are named
 * by the driver. Naming them now lets prepare lock them while its log statement runs; what the database does on
 * its own for the flush (cascades, triggers) reaches prepare through its capture.
 *
 * An implicit flush transaction begins after `onFlush`, so its names wait for `afterTransactionStart`.
 */
export class XaSubscriber implements EventSubscriber {
  readonly #pending = new WeakMap<UnitOfWork, Pending>();

  async onFlush(args: FlushEventArgs): Promise<void> {
    const driver = args.em.getDriver() as unknown as XaPostgreSqlDriver;
    const defaultSchema = driver.xaConnection.cache.defaultSchema;
    const found: Pending = { keys: new Set() };
    const forgetOld = driver.xaConnection.cache.xa.options.unsafeTestSwitches.forgetOldUniqueValues === true;
    for (const cs of args.uow.getChangeSets()) this.#changeSet(args.uow, cs, defaultSchema, found, forgetOld);
    for (const coll of args.uow.getCollectionUpdates()) this.#collection(coll, defaultSchema, found);
    if (found.keys.size === 0) return;
    const scope = args.em.isInTransaction() ? driver.xaConnection.scopeOf(args.em.getTransactionContext()) : undefined;
    if (scope) apply(scope, found);
    else this.#pending.set(args.uow, found);
  }

  async afterTransactionStart(args: TransactionEventArgs): Promise<void> {
    const pending = args.uow ? this.#pending.get(args.uow) : undefined;
    if (!pending || !args.uow) return;
    this.#pending.delete(args.uow);
    const scope = (args.em.getDriver() as unknown as XaPostgreSqlDriver).xaConnection.scopeOf(args.transaction);
    if (scope) apply(scope, pending);
  }

  #changeSet(uow: UnitOfWork, cs: ChangeSet<AnyEntity>, defaultSchema: string, found: Pending, forgetOld: boolean): void {
    const meta = cs.meta as EntityMetadata;
    if (entityCacheOf(meta)?.strategy === 'read-only') throw new ReadOnlyEntityError(meta.className);
    const original = (cs.originalEntity ?? uow.getOriginalEntityData(cs.entity) ?? {}) as Record<string, unknown>;
    for (const { fk, ownerMeta, collection } of childLinks(meta)) {
      const owners = new Set<unknown>();
      if (cs.type === 'create' || cs.type === 'delete' || cs.type === 'delete_early') {
        owners.add(refId((cs.entity as Record<string, unknown>)[fk.name]));
        if (cs.type !== 'create') owners.add(refId(original[fk.name]));
      } else if (fk.name in cs.payload) {
        // Moved: both the owner it left and the one it joined. An update that keeps the owner changes no collection.
        owners.add(refId(original[fk.name]));
        owners.add(refId((cs.payload as Record<string, unknown>)[fk.name]));
      }
      const ownerTable = qualifiedTable(ownerMeta, cs.schema, defaultSchema);
      for (const owner of owners) if (owner !== undefined && owner !== null) found.keys.add(keys.collection(ownerTable, collection.name, pkString(owner)));
    }
    this.#uniqueEntries(cs, original, defaultSchema, found, forgetOld);
  }

  /**
   * The unique-key index entries of the old and new values a change set writes, named now so prepare locks them
   * with the rest of the flush's keys in one round; the capture names them too (for every other write path), and
   * a key named twice is locked once.
   */
  #uniqueEntries(cs: ChangeSet<AnyEntity>, original: Record<string, unknown>, defaultSchema: string, found: Pending, forgetOld: boolean): void {
    const meta = cs.meta as EntityMetadata;
    const uniques = uniqueKeysOf(meta);
    if (uniques.length === 0) return;
    const table = qualifiedTable(meta, cs.schema, defaultSchema);
    const entity = cs.entity as Record<string, unknown>;
    const payload = cs.payload as Record<string, unknown>;
    for (const key of uniques) {
      const images: Array<Record<string, unknown>> = [];
      // `forgetOldUniqueValues` (a test switch) drops the old images: the bug the consistency checker must catch.
      if (cs.type === 'create') images.push(entity);
      else if (cs.type === 'delete' || cs.type === 'delete_early') images.push(...(forgetOld ? [] : [original]));
      else if (key.props.some((prop) => prop in payload)) images.push(...(forgetOld ? [entity] : [original, entity]));
      for (const image of images) {
        const values = key.props.map((prop) => refId(image[prop]));
        if (values.every((v) => v !== undefined && v !== null)) found.keys.add(keys.unique(table, key.columns, values.map(pkString)));
      }
    }
  }

  #collection(coll: { owner: object; property: EntityProperty; getItems(check?: boolean): object[]; getSnapshot(): object[] | undefined }, defaultSchema: string, found: Pending): void {
    const prop = coll.property;
    if (prop.kind !== ReferenceKind.MANY_TO_MANY) return;
    const ownerMeta = helper(coll.owner).__meta as EntityMetadata;
    const schema = helper(coll.owner).__schema;
    if (entityCacheOf(ownerMeta)?.collections) {
      found.keys.add(keys.collection(qualifiedTable(ownerMeta, schema, defaultSchema), prop.name, pkString(helper(coll.owner).getPrimaryKey())));
    }
    const inverse = prop.owner ? prop.inversedBy : prop.mappedBy;
    const targetMeta = prop.targetMeta;
    if (!inverse || !targetMeta || !entityCacheOf(targetMeta)?.collections) return;
    const targetTable = qualifiedTable(targetMeta, schema, defaultSchema);
    for (const item of [...(coll.getSnapshot() ?? []), ...coll.getItems(false)]) {
      found.keys.add(keys.collection(targetTable, inverse, pkString(helper(item).getPrimaryKey())));
    }
  }
}

function apply(scope: TransactionScope, pending: Pending): void {
  scope.invalidate(pending.keys);
}

/** A reference's primary key, or a raw foreign key value as it stands. */
function refId(value: unknown): unknown {
  if (value === null || value === undefined) return value;
  if (typeof value === 'object' && !(value instanceof Date) && helper(value as object)?.getPrimaryKey) return helper(value as object).getPrimaryKey();
  return value;
}

interface ChildLink {
  readonly fk: EntityProperty;
  readonly ownerMeta: EntityMetadata;
  readonly collection: EntityProperty;
}

const links = new WeakMap<EntityMetadata, ChildLink[]>();

/** The cached 1:m collections a child entity is a member of, through which foreign key. */
function childLinks(meta: EntityMetadata): ChildLink[] {
  let found = links.get(meta);
  if (!found) {
    found = [];
    for (const fk of Object.values(meta.properties)) {
      if (fk.kind !== ReferenceKind.MANY_TO_ONE && !(fk.kind === ReferenceKind.ONE_TO_ONE && fk.owner)) continue;
      const ownerMeta = fk.targetMeta;
      if (!ownerMeta || !entityCacheOf(ownerMeta)?.collections) continue;
      for (const collection of Object.values(ownerMeta.properties)) {
        if (collection.kind === ReferenceKind.ONE_TO_MANY && collection.mappedBy === fk.name) found.push({ fk, ownerMeta, collection });
      }
    }
    links.set(meta, found);
  }
  return found;
}
