/** Pure helpers of the XA driver: shaping rows and reading what a write's arguments name. */
import { ReferenceKind, type EntityMetadata, type FindOptions } from '@mikro-orm/core';

/** Rows as the driver returns them: property names to database values. */
export type Row = Record<string, unknown>;
type AnyOptions = FindOptions<object, string, string, string> & Record<string, unknown>;

/** Options for a fill read: whole rows, from the primary (never a replica that may lag behind a commit). */
export function fillOptions(opts: AnyOptions): AnyOptions {
  const { fields: _f, exclude: _e, populate: _p, orderBy: _o, limit: _l, offset: _of, flags: _fl, refresh: _r, ...rest } = opts;
  return { ...rest, populate: [], orderBy: [], connectionType: 'write' } as AnyOptions;
}

export function project(row: Row, fields: string[] | undefined, pkProp: string, meta: EntityMetadata): Row {
  if (!fields || fields.length === 0 || fields.includes('*')) return row;
  const out: Row = { [pkProp]: row[pkProp] };
  for (const field of fields) if (field in row) out[field] = row[field];
  for (const prop of Object.values(meta.properties)) if (prop.version && prop.name in row) out[prop.name] = row[prop.name];
  return out;
}

export function emptyOrder(orderBy: unknown): boolean {
  if (orderBy === undefined || orderBy === null) return true;
  const list = Array.isArray(orderBy) ? orderBy : [orderBy];
  return list.every((o) => typeof o === 'object' && o !== null && Object.keys(o).length === 0);
}

export function isRow(value: unknown): value is Row {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function ownerId(fk: unknown): unknown {
  return typeof fk === 'object' && fk !== null && !(fk instanceof Date) ? Object.values(fk)[0] : fk;
}

/** The primary keys a `where` names, when it names nothing but primary keys; undefined otherwise. */
export function primaryKeysOf(meta: EntityMetadata, wheres: readonly unknown[]): unknown[] | undefined {
  if (meta.primaryKeys.length !== 1) return undefined;
  const pk = meta.primaryKeys[0] as string;
  const ids: unknown[] = [];
  for (const where of wheres) {
    if (typeof where !== 'object' || where === null) {
      ids.push(where);
      continue;
    }
    const entries = Object.entries(where);
    if (entries.length !== 1 || entries[0]?.[0] !== pk) return undefined;
    const value = entries[0][1];
    if (typeof value === 'object' && value !== null && !(value instanceof Date)) {
      const inList = (value as { $in?: unknown }).$in;
      if (Object.keys(value).length !== 1 || !Array.isArray(inList)) return undefined;
      ids.push(...inList);
    } else ids.push(value);
  }
  return ids;
}
