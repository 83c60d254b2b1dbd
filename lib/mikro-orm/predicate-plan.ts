import { ReferenceKind, type EntityMetadata, type EntityProperty, type MetadataStorage } from '@mikro-orm/core';
import { propertyColumnClass, queryValue, type ColumnClass } from './predicate-values.js';

/**
 * A query whose result depends on conjunctions of one table rather than on the whole table: every row it can
 * return, count or order by has, in `columns`, one of the value combinations `combos`. A write renews the regions of
 * the combinations its rows' old and new values fall in, so any write that can change the result renews one of them.
 */
export interface Conjunction {
  /** `schema.table`. */
  readonly table: string;
  /** Sorted column names: the scheme. */
  readonly columns: readonly string[];
  /** Value combinations, in `columns`' order, canonical (`predicate-values.ts`). */
  readonly combos: ReadonlyArray<ReadonlyArray<string | null>>;
}

/** Most value combinations (the product of `$in` lists) one result may depend on; more depend on the table. */
export const MAX_CONJUNCTIONS_PER_RESULT = 64;

/** Methods of MikroORM's result-cache keys whose result is rows of the root table (or their count). */
const METHODS = new Set(['em.find', 'em.findOne', 'em.count']);

/**
 * Options of a find that do not make its result depend on rows outside its `where` (beyond the populate, field and
 * order checks below). Any other option keeps the result depending on the table.
 */
const NEUTRAL_OPTIONS = new Set([
  'orderBy',
  'limit',
  'offset',
  'fields',
  'exclude',
  'populate',
  'populateWhere',
  '_populateWhere',
  'populateOrderBy',
  'populateFilter',
  'filters',
  'cache',
  'refresh',
  'connectionType',
  'schema',
  'flags',
  'hintComments',
  'comments',
  'indexHint',
  'convertCustomTypes',
  'disableIdentityMap',
  'lockMode',
  'lockTableAliases',
  'strict',
  'failHandler',
]);

/**
 * The conjunction a MikroORM result-cache key (`[[schema, table, discriminator], method, options, where]`, the
 * `where` after MikroORM applied filters) depends on, or undefined when its shape is not one (see docs/usage.md,
 * "Which query results are invalidated by what a write changed"): the `where` must be a conjunction (`$and` or
 * object keys) of equalities or non-empty `$in` lists on scalar columns or many-to-one foreign keys of plain types;
 * nothing populated; fields, exclusions and ordering on the entity's own scalar properties only. Filters that add
 * conditions only narrow the result, which depends on the weaker conjunction all the more.
 */
export function conjunctionOf(key: string, metadata: MetadataStorage, schema: string | undefined, defaultSchema: string): Conjunction | undefined {
  if (!key.startsWith('[')) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(key);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed) || parsed.length < 4 || parsed.length > 5) return undefined;
  const [entity, method, options, where] = parsed as [unknown, unknown, unknown, unknown];
  if (!Array.isArray(entity) || typeof entity[1] !== 'string' || typeof method !== 'string' || !METHODS.has(method)) return undefined;
  const meta = metaOf(metadata, entity[1], entity[2]);
  if (!meta || !isObject(options) || !neutralOptions(meta, options)) return undefined;
  const conditions = new Map<string, ReadonlyArray<string | null>>();
  if (!collect(meta, where, conditions) || conditions.size === 0) return undefined;
  const columns = [...conditions.keys()].sort();
  let combos: Array<Array<string | null>> = [[]];
  for (const column of columns) {
    const values = conditions.get(column) as ReadonlyArray<string | null>;
    if (combos.length * values.length > MAX_CONJUNCTIONS_PER_RESULT) return undefined;
    combos = combos.flatMap((combo) => values.map((value) => [...combo, value]));
  }
  const root = meta.root ?? meta;
  const effective = schema ?? (root.schema && root.schema !== '*' ? root.schema : undefined) ?? defaultSchema;
  return { table: `${effective}.${root.tableName}`, columns, combos };
}

function metaOf(metadata: MetadataStorage, table: string, discriminator: unknown): EntityMetadata | undefined {
  for (const meta of metadata.getAll().values()) {
    if (meta.embeddable || meta.virtual || meta.tableName !== table) continue;
    if ((meta.discriminatorValue ?? null) === (discriminator ?? null)) return meta;
  }
  return undefined;
}

function neutralOptions(meta: EntityMetadata, options: Record<string, unknown>): boolean {
  for (const [name, value] of Object.entries(options)) {
    if (value === undefined || value === null) continue;
    if (!NEUTRAL_OPTIONS.has(name)) return false;
  }
  // Anything populated reads other rows (of other tables, or of this one: a self-reference).
  if (Array.isArray(options.populate) ? options.populate.length > 0 : options.populate !== undefined && options.populate !== false) return false;
  for (const list of [options.fields, options.exclude]) {
    if (list === undefined) continue;
    if (!Array.isArray(list) || !list.every((f) => typeof f === 'string' && !f.includes('.') && ownScalar(meta, f))) return false;
  }
  // Ordering by a relation's property joins (possibly this very table, through a self-reference).
  const orders = Array.isArray(options.orderBy) ? options.orderBy : options.orderBy === undefined ? [] : [options.orderBy];
  for (const order of orders) {
    if (!isObject(order)) return false;
    for (const [name, direction] of Object.entries(order)) {
      if (typeof direction !== 'string' && typeof direction !== 'number') return false;
      if (!ownScalar(meta, name) && !foreignKey(meta, name)) return false;
    }
  }
  return true;
}

function ownScalar(meta: EntityMetadata, name: string): boolean {
  const prop = meta.properties[name as keyof typeof meta.properties] as EntityProperty | undefined;
  return prop !== undefined && prop.kind === ReferenceKind.SCALAR && prop.persist !== false && !prop.formula;
}

function foreignKey(meta: EntityMetadata, name: string): EntityProperty | undefined {
  const prop = meta.properties[name as keyof typeof meta.properties] as EntityProperty | undefined;
  if (!prop || (prop.kind !== ReferenceKind.MANY_TO_ONE && !(prop.kind === ReferenceKind.ONE_TO_ONE && prop.owner))) return undefined;
  return prop.fieldNames?.length === 1 ? prop : undefined;
}

/** Adds the where's conditions, column → allowed values; false when the where is not a plain conjunction. */
function collect(meta: EntityMetadata, where: unknown, into: Map<string, ReadonlyArray<string | null>>): boolean {
  if (!isObject(where)) return false;
  for (const [name, condition] of Object.entries(where)) {
    if (name === '$and') {
      if (!Array.isArray(condition) || !condition.every((part) => collect(meta, part, into))) return false;
      continue;
    }
    const prop = meta.properties[name as keyof typeof meta.properties] as EntityProperty | undefined;
    if (!prop || prop.persist === false || prop.formula) return false;
    let cls: ColumnClass | undefined;
    let target: EntityMetadata | undefined;
    if (prop.kind === ReferenceKind.SCALAR) cls = propertyColumnClass(prop);
    else if (foreignKey(meta, name)) {
      cls = propertyColumnClass({ ...prop, customType: undefined } as EntityProperty);
      target = prop.targetMeta;
    }
    const column = prop.fieldNames?.[0];
    if (cls === undefined || column === undefined || into.has(column)) return false;
    const values = valuesOf(cls, condition, target);
    if (!values) return false;
    into.set(column, values);
  }
  return true;
}

/** The values a condition allows: an equality or a non-empty `$in` of plain values (NULL only as an equality). */
function valuesOf(cls: ColumnClass, condition: unknown, target: EntityMetadata | undefined): Array<string | null> | undefined {
  if (isObject(condition)) {
    const entries = Object.entries(condition);
    if (entries.length !== 1) return target ? single(cls, condition, target) : undefined;
    const [op, operand] = entries[0] as [string, unknown];
    if (op === '$eq') return valuesOf(cls, operand, target);
    if (op === '$in') {
      if (!Array.isArray(operand) || operand.length === 0) return undefined;
      const out: string[] = [];
      for (const item of operand) {
        const value = scalar(cls, item, target);
        if (value === undefined || value === null) return undefined; // `IN (…, NULL)` never matches NULL
        if (!out.includes(value)) out.push(value);
      }
      return out;
    }
    return target ? single(cls, condition, target) : undefined;
  }
  return single(cls, condition, target);
}

function single(cls: ColumnClass, value: unknown, target: EntityMetadata | undefined): Array<string | null> | undefined {
  const canonical = scalar(cls, value, target);
  return canonical === undefined ? undefined : [canonical];
}

/** A plain value, or a reference given as `{ <pk>: value }` for a foreign key. */
function scalar(cls: ColumnClass, value: unknown, target: EntityMetadata | undefined): string | null | undefined {
  if (isObject(value)) {
    if (!target || target.primaryKeys.length !== 1) return undefined;
    const entries = Object.entries(value);
    if (entries.length !== 1 || entries[0]?.[0] !== target.primaryKeys[0]) return undefined;
    return scalar(cls, entries[0]?.[1], undefined);
  }
  return queryValue(cls, value);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
