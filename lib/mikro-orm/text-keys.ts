import type { EntityProperty } from '@mikro-orm/core';

const TEXT_KEY_TYPES = /^(smallint|integer|int|int2|int4|int8|bigint|serial|bigserial|smallserial|text|character varying|varchar(\(\d+\))?|uuid)$/i;

/**
 * Whether a key column's value, as PostgreSQL's JSON prints it, is the string readers put in keys (`pkString`):
 * integers, text and uuids are; dates and numerics are not. The capture names keys from JSON row images, readers
 * from the values MikroORM passes: only where the two agree can a write name the exact key a reader uses.
 */
export function keyedByText(prop: EntityProperty): boolean {
  return (prop.columnTypes ?? []).length === 1 && TEXT_KEY_TYPES.test(prop.columnTypes[0] as string);
}
