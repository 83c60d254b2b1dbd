import type { EntityMetadata } from '@mikro-orm/core';

/**
 * The key namespace of the MikroORM layer (the store adds its own prefix, and hashes keys over 250 bytes):
 *
 * | key | holds |
 * | --- | --- |
 * | `e:<schema>.<table>:<pk>` | one row, as the driver returns it |
 * | `c:<schema>.<table>.<property>:<pk>` | the member primary keys of one owner's collection |
 * | `q:<MikroORM result-cache key>` | one query result |
 * | `q@"<schema>":<MikroORM result-cache key>` | one query result of a call in another schema than the default one |
 * | `u:<schema>.<table>:<columns>:<values>` | the primary key of the row holding these values of a declared unique key |
 *
 * Regions (tables), whose generations invalidate whole groups of entries:
 *
 * | region | written by | read by |
 * | --- | --- | --- |
 * | `t:<schema>.<table>` | every write to the table (also the table's in-flight region, see `conjunction-schemes.ts`) | query results that read it, except those below |
 * | `tw:<schema>.<table>` | writes whose rows cannot be named (`TRUNCATE`, statements recorded table-wide, a scheme set the writer could not read) | query results cached by conjunction |
 * | `p:<schema>.<table>@<version>:<columns>=<values>` | writes whose old or new row has these values in these columns | query results of that conjunction (docs/usage.md) |
 * | `rows:<schema>.<table>` | writes whose rows cannot be named (raw SQL, bulk updates) | rows and unique-key entries of the table |
 * | `coll:<schema>.<table>` | writes to a child or pivot table outside a unit-of-work flush | collections kept in it |
 */
export const keys = {
  row: (table: string, pk: string): string => `e:${table}:${pk}`,
  collection: (ownerTable: string, property: string, pk: string): string => `c:${ownerTable}.${property}:${pk}`,
  query: (resultCacheKey: string): string => `q:${resultCacheKey}`,
  /** A result read in a schema other than the default one (the schema as a JSON string, so the key parses one way). */
  schemaQuery: (schema: string, resultCacheKey: string): string => `q@${JSON.stringify(schema)}:${resultCacheKey}`,
  /**
   * A unique-key index entry. `columns` are the key's column names (the capture knows columns, not properties);
   * `values` their `pkString` forms, bare for one column and as a JSON array for several, so no value can
   * masquerade as two.
   */
  unique: (table: string, columns: readonly string[], values: readonly string[]): string =>
    `u:${table}:${columns.join(',')}:${values.length === 1 ? values[0] : JSON.stringify(values)}`,
};

/** Region names. */
export const regions = {
  query: (table: string): string => `t:${table}`,
  rows: (table: string): string => `rows:${table}`,
  collections: (table: string): string => `coll:${table}`,
  /** The generation of a table renewed only by writes whose rows cannot be named. */
  tableWide: (table: string): string => `tw:${table}`,
  /**
   * One conjunction of a scheme (sorted columns) of the scheme set `version`: `values` in the columns' order, in
   * their canonical forms (`predicate-values.ts`), null for SQL NULL; JSON, so no value can masquerade as two.
   */
  conjunction: (table: string, version: string, columns: readonly string[], values: ReadonlyArray<string | null>): string =>
    `p:${table}@${version}:${columns.join(',')}=${JSON.stringify(values)}`,
};

/** The table whose in-flight region (`t:<schema>.<table>`) this is, if it is one. */
export function inFlightTable(region: string): string | undefined {
  return region.startsWith('t:') ? region.slice(2) : undefined;
}

/** `schema.table` of an entity's root table in the schema a call runs against. */
export function qualifiedTable(meta: EntityMetadata, schema: string | undefined, defaultSchema: string): string {
  const root = meta.root ?? meta;
  const effective = schema ?? (root.schema && root.schema !== '*' ? root.schema : undefined) ?? defaultSchema;
  return `${effective}.${root.tableName}`;
}

/** A primary key value as it appears in keys: stable across number/string/bigint/Date forms of the same value. */
export function pkString(value: unknown): string {
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'object' && value !== null) return JSON.stringify(value);
  return String(value);
}
