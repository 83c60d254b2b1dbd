import { ReferenceKind, type EntityMetadata, type EntityProperty } from '@mikro-orm/core';
import { pkString } from './cache-keys.js';
import { entityCacheOf } from './entity-marker.js';
import { keyedByText } from './text-keys.js';
import { XaConfigError } from './xa-errors.js';

/** A declared cached unique lookup (`xaCache: { uniqueKeys }`): its properties and their columns, in declared order. */
export interface UniqueKey {
  readonly props: readonly string[];
  readonly columns: readonly string[];
}

const resolved = new WeakMap<EntityMetadata, readonly UniqueKey[]>();

/**
 * The unique keys an entity declares, checked against its metadata: each property exists, is a scalar or an owning
 * to-one reference of one column whose JSON text is the reader's key text (see `keyedByText`), is not the primary
 * key, and the set is exactly a unique constraint MikroORM knows (`unique: true` on the property, or an entry of
 * `uniques`). Throws `XaConfigError` naming the entity and the columns otherwise.
 */
export function uniqueKeysOf(meta: EntityMetadata): readonly UniqueKey[] {
  let found = resolved.get(meta);
  if (!found) {
    found = (entityCacheOf(meta)?.uniqueKeys ?? []).map((props) => checked(meta, props));
    resolved.set(meta, found);
  }
  return found;
}

function checked(meta: EntityMetadata, props: readonly string[]): UniqueKey {
  const name = `uniqueKeys [${props.join(', ')}]`;
  if (!Array.isArray(props) || props.length === 0 || new Set(props).size !== props.length) throw XaConfigError.entity(meta.className, `${name} must be a non-empty list of distinct property names`);
  const columns: string[] = [];
  for (const propName of props) {
    const prop = meta.properties[propName] as EntityProperty | undefined;
    if (!prop) throw XaConfigError.entity(meta.className, `${name} names "${propName}", which is not a property`);
    if (prop.primary) throw XaConfigError.entity(meta.className, `${name} names the primary key "${propName}"; rows are already cached by it`);
    const single = prop.kind === ReferenceKind.SCALAR || prop.kind === ReferenceKind.MANY_TO_ONE || (prop.kind === ReferenceKind.ONE_TO_ONE && prop.owner);
    if (!single || prop.fieldNames?.length !== 1) throw XaConfigError.entity(meta.className, `${name}: "${propName}" is not a single-column property`);
    if (!keyedByText(prop)) {
      throw XaConfigError.entity(meta.className, `${name}: column "${prop.fieldNames[0]}" has type ${prop.columnTypes?.join(', ')}; cached unique keys support text, varchar, integer, bigint and uuid columns only (their stored form must be the reader's key form)`);
    }
    columns.push(prop.fieldNames[0] as string);
  }
  if (!declaredUnique(meta, props)) {
    throw XaConfigError.entity(meta.className, `${name}: no unique constraint on exactly column(s) ${columns.join(', ')} in the entity's metadata; declare it (p.string().unique(), or uniques: [{ properties: [...] }]) or remove it from uniqueKeys`);
  }
  return { props, columns };
}

function declaredUnique(meta: EntityMetadata, props: readonly string[]): boolean {
  const wanted = [...props].sort().join('\0');
  if (props.length === 1 && meta.properties[props[0] as string]?.unique) return true;
  return (meta.uniques ?? []).some((u) => {
    if (u.expression || u.where || u.disabled || u.columns?.length) return false;
    const list = u.properties === undefined ? [] : Array.isArray(u.properties) ? u.properties : [u.properties];
    return [...list].map(String).sort().join('\0') === wanted;
  });
}

/**
 * The key text of a unique key's values in a row as the driver returns it (property names), or undefined when a
 * value is null (nulls are never looked up: a unique index allows many). A reference may come as its key.
 */
export function rowValues(key: UniqueKey, row: Record<string, unknown>): string[] | undefined {
  const out: string[] = [];
  for (const prop of key.props) {
    const value = keyOf(row[prop]);
    if (value === undefined || value === null) return undefined;
    out.push(pkString(value));
  }
  return out;
}

function keyOf(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || value instanceof Date) return value;
  const values = Object.values(value as object);
  return values.length === 1 ? values[0] : undefined;
}
