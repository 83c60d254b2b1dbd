import type { EntityProperty } from '@mikro-orm/core';

/**
 * Columns a conjunction may name, and the one text form of their values. A query names a conjunction with the
 * values of its `where`; a write with the values of its captured row images (PostgreSQL's `to_jsonb`). Both must
 * give the same text for values PostgreSQL compares equal, or an invalidation is missed; so only types whose
 * equality is plain are admitted:
 *
 * - integers (`smallint`, `integer`, `bigint` and their serials): the decimal digits, within JavaScript's safe range
 *   (an image of a larger `bigint` parses rounded, and a rounded value never equals a safe one);
 * - text (`text`, `varchar`): the string itself (deterministic collations compare bytes);
 * - `uuid`: lower case, as PostgreSQL prints it;
 * - `boolean`: `true` / `false`.
 *
 * Everything else (dates, decimals, floats, `char(n)`, `citext`, JSON, arrays, custom types that convert values)
 * keeps its queries depending on the whole table.
 */
export type ColumnClass = 'integer' | 'text' | 'uuid' | 'boolean';

const INTEGER = /^(smallint|int2|integer|int|int4|bigint|int8|serial|serial4|smallserial|serial2|bigserial|serial8)$/;
const TEXT = /^(text|varchar(\(\d+\))?|character varying(\(\d+\))?)$/;
const UUID_TYPE = /^uuid$/;
const BOOLEAN = /^(boolean|bool)$/;
const UUID_VALUE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
/** MikroORM's built-in types that pass values through unchanged (or as the same number in another JS type). */
const PLAIN_TYPES = new Set(['IntegerType', 'SmallIntType', 'TinyIntType', 'MediumIntType', 'BigIntType', 'StringType', 'TextType', 'UuidType', 'BooleanType', 'EnumType']);

/** The class of a column type name as PostgreSQL spells it, if conjunctions may name it. */
export function columnClassOf(columnType: string | undefined): ColumnClass | undefined {
  const type = columnType?.trim().toLowerCase();
  if (type === undefined) return undefined;
  if (INTEGER.test(type)) return 'integer';
  if (TEXT.test(type)) return 'text';
  if (UUID_TYPE.test(type)) return 'uuid';
  if (BOOLEAN.test(type)) return 'boolean';
  return undefined;
}

/** The class of a property's single column, if its queries may depend on conjunctions. */
export function propertyColumnClass(prop: EntityProperty): ColumnClass | undefined {
  if (prop.fieldNames?.length !== 1 || prop.columnTypes?.length !== 1) return undefined;
  const custom = prop.customType as { constructor?: { name?: string } } | undefined;
  if (custom && !PLAIN_TYPES.has(custom.constructor?.name ?? '')) return undefined;
  return columnClassOf(prop.columnTypes[0]);
}

/**
 * A value of a query's `where` in its canonical form: a string, null for SQL NULL, or undefined when it cannot be
 * named (a type the column does not take plainly: the query then depends on the whole table).
 */
export function queryValue(cls: ColumnClass, value: unknown): string | null | undefined {
  if (value === null) return null;
  switch (cls) {
    case 'integer':
      if (typeof value === 'number') return Number.isSafeInteger(value) ? String(value) : undefined;
      if (typeof value === 'bigint') return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? String(value) : undefined;
      if (typeof value === 'string' && /^-?\d{1,16}$/.test(value)) {
        const n = Number(value);
        return Number.isSafeInteger(n) ? String(n) : undefined;
      }
      return undefined;
    case 'text':
      return typeof value === 'string' ? value : undefined;
    case 'uuid':
      return typeof value === 'string' && UUID_VALUE.test(value) ? value.toLowerCase() : undefined;
    case 'boolean':
      return typeof value === 'boolean' ? String(value) : undefined;
  }
}

/**
 * A value of a captured row image (parsed JSON) in the same canonical form. Images carry PostgreSQL's own text of
 * the value, so any JSON scalar maps to its text; anything else gets a form no query value has.
 */
export function imageValue(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'string') return value;
  return `\u0000${JSON.stringify(value)}`;
}
