import { ReferenceKind, type EntityMetadata, type EntityProperty, type FindOptions } from '@mikro-orm/core';
import { entityCacheOf, type ResolvedEntityCache } from './entity-marker.js';
import { uniqueKeysOf, type UniqueKey } from './unique-keys.js';

/** A primary key value that can be cached: what `{ id: v }` or `{ id: { $in: [...] } }` holds. */
type KeyValue = string | number | bigint;

/** A `find` the row cache can serve: rows of a cached entity by primary key. */
export interface RowLookup {
  readonly kind: 'rows';
  readonly cache: ResolvedEntityCache;
  readonly pkProp: string;
  readonly ids: readonly KeyValue[];
}

/** A `find` of the members of owners' 1:m collections: `{ fk: { $in: owners } }` on a cached child entity. */
export interface CollectionLookup {
  readonly kind: 'collection';
  readonly cache: ResolvedEntityCache;
  readonly pkProp: string;
  readonly fkProp: string;
  readonly ownerMeta: EntityMetadata;
  readonly collection: EntityProperty;
  readonly owners: readonly KeyValue[];
}

/**
 * A `find` by the values of a declared unique key (`{ email: v }`, `{ email: { $in: [...] } }`, or one value per
 * property of a composite key): each tuple resolves to a primary key through a cached index entry.
 */
export interface UniqueLookup {
  readonly kind: 'unique';
  readonly cache: ResolvedEntityCache;
  readonly pkProp: string;
  readonly key: UniqueKey;
  /** Value tuples in the key's property order. */
  readonly tuples: readonly (readonly KeyValue[])[];
}

type AnyFindOptions = FindOptions<object, string, string, string> & Record<string, unknown>;

/**
 * Decides whether a driver `find` is one the cache can answer, and how. Anything unusual (locks, a refresh asked
 * by the user, ordering, paging, filters or other conditions, lazy properties, joined populates, pivot or virtual
 * entities, composite keys, row-level-security session contexts) goes to the database: the cache only ever
 * answers questions whose answer is a set of whole rows named by primary key.
 */
export function planLookup(meta: EntityMetadata, where: unknown, options: AnyFindOptions, joinedPopulates: number): RowLookup | CollectionLookup | UniqueLookup | undefined {
  const cache = entityCacheOf(meta);
  if (!cache || meta.pivotTable || meta.virtual || meta.primaryKeys.length !== 1 || meta.embeddable) return undefined;
  if (options.lockMode || options.offset || options.groupBy || options.having || (options.unionWhere as unknown[] | undefined)?.length) return undefined;
  if ((options.exclude as unknown[] | undefined)?.length || joinedPopulates > 0 || asksForLazy(meta, options)) return undefined;
  if (Array.isArray(options.fields) && options.fields.some((f) => typeof f !== 'string' || f.includes('.'))) return undefined;
  const em = options.em as { getSessionContext?: () => unknown } | undefined;
  if (em?.getSessionContext?.()) return undefined;
  if (!isPlainObject(where)) return undefined;
  const entries = Object.entries(where);
  const unique = uniquePlan(meta, cache, entries, options);
  if (unique !== null) return unique;
  if (entries.length !== 1) return undefined;
  const [[prop, condition]] = entries as [[string, unknown]];
  const values = keyValues(condition);
  if (!values) return undefined;
  const pkProp = meta.primaryKeys[0] as string;
  if (prop === pkProp) {
    if (!noOrder(options.orderBy)) return undefined;
    if (options.limit !== undefined && options.limit !== 1) return undefined;
    return { kind: 'rows', cache, pkProp, ids: values };
  }
  const fk = meta.properties[prop];
  if (!fk || (fk.kind !== ReferenceKind.MANY_TO_ONE && !(fk.kind === ReferenceKind.ONE_TO_ONE && fk.owner))) return undefined;
  const ownerMeta = fk.targetMeta;
  const ownerCache = ownerMeta ? entityCacheOf(ownerMeta) : undefined;
  if (!ownerMeta || !ownerCache?.collections || ownerMeta.primaryKeys.length !== 1) return undefined;
  const collection = Object.values(ownerMeta.properties).find((p) => p.kind === ReferenceKind.ONE_TO_MANY && p.mappedBy === prop && p.targetMeta?.className === meta.className);
  if (!collection || options.limit !== undefined || options.fields) return undefined;
  if (!sameOrder(options.orderBy, collection.orderBy)) return undefined;
  return { kind: 'collection', cache, pkProp, fkProp: prop, ownerMeta, collection, owners: values };
}

/** null: not a unique-key condition at all; undefined: one the cache cannot answer; else the plan. */
function uniquePlan(meta: EntityMetadata, cache: ResolvedEntityCache, entries: Array<[string, unknown]>, options: AnyFindOptions): UniqueLookup | undefined | null {
  if (entries.length === 0) return null;
  const asked = entries.map(([prop]) => prop).sort().join('\0');
  const key = uniqueKeysOf(meta).find((k) => [...k.props].sort().join('\0') === asked);
  if (!key) return null;
  if (!noOrder(options.orderBy) || (options.limit !== undefined && options.limit !== 1)) return undefined;
  const pkProp = meta.primaryKeys[0] as string;
  const where = Object.fromEntries(entries);
  if (key.props.length === 1) {
    const values = keyValues(where[key.props[0] as string]);
    return values ? { kind: 'unique', cache, pkProp, key, tuples: values.map((v) => [v]) } : undefined;
  }
  const tuple = key.props.map((prop) => where[prop]);
  return tuple.every(isKey) ? { kind: 'unique', cache, pkProp, key, tuples: [tuple as KeyValue[]] } : undefined;
}

function keyValues(condition: unknown): KeyValue[] | undefined {
  if (isKey(condition)) return [condition];
  if (!isPlainObject(condition)) return undefined;
  const ops = Object.keys(condition);
  if (ops.length !== 1 || ops[0] !== '$in') return undefined;
  const list = (condition as { $in: unknown }).$in;
  if (!Array.isArray(list) || !list.every(isKey)) return undefined;
  return list as KeyValue[];
}

function isKey(value: unknown): value is KeyValue {
  return typeof value === 'number' || typeof value === 'string' || typeof value === 'bigint';
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}

function noOrder(orderBy: unknown): boolean {
  if (orderBy === undefined || orderBy === null) return true;
  if (Array.isArray(orderBy)) return orderBy.every((o) => isPlainObject(o) && Object.keys(o).length === 0);
  return isPlainObject(orderBy) && Object.keys(orderBy).length === 0;
}

/** The loader asks for a collection's members in the collection's own declared order (or none): only then may ids be cached. */
function sameOrder(asked: unknown, declared: unknown): boolean {
  const normalise = (o: unknown): string => JSON.stringify((Array.isArray(o) ? o : o ? [o] : []).filter((x) => isPlainObject(x) && Object.keys(x).length > 0));
  return normalise(asked) === normalise(declared);
}

const lazyProps = new WeakMap<EntityMetadata, ReadonlySet<string>>();

function asksForLazy(meta: EntityMetadata, options: AnyFindOptions): boolean {
  let lazy = lazyProps.get(meta);
  if (!lazy) {
    lazy = new Set(Object.values(meta.properties).filter((p) => p.lazy && p.kind === ReferenceKind.SCALAR).map((p) => p.name));
    lazyProps.set(meta, lazy);
  }
  if (lazy.size === 0 && !options.populate) return false;
  const populate = (options.populate as Array<{ field: string } | string> | undefined) ?? [];
  for (const hint of populate) {
    const field = typeof hint === 'string' ? hint : hint.field;
    if (field === '*' || lazy.has(field.split(':')[0] as string)) return true;
  }
  return Array.isArray(options.fields) && options.fields.some((f) => typeof f === 'string' && (lazy as ReadonlySet<string>).has(f));
}
