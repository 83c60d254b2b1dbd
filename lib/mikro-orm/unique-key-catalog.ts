import type { EntityMetadata, MikroORM } from '@mikro-orm/core';
import { uniqueKeysOf } from './unique-keys.js';
import { XaConfigError } from './xa-errors.js';
import type { XaPostgreSqlDriver } from './xa-driver.js';

/** A declared unique key the database does not enforce. */
export interface UnbackedUniqueKey {
  readonly entity: string;
  readonly table: string;
  readonly columns: readonly string[];
}

/**
 * The declared `uniqueKeys` that no unique index in the database backs exactly: same columns (in any order), no
 * `WHERE` (partial), no expression (`lower(email)`), valid. The metadata check at `MikroORM.init` trusts the
 * entity definitions; this one asks the catalog, since a migration may have dropped or never created the index,
 * and an index entry for a value two rows hold would serve one of them for both. `startXaCache` runs it.
 */
export async function unbackedUniqueKeys(orm: MikroORM, schemas?: readonly string[]): Promise<UnbackedUniqueKey[]> {
  const driver = orm.em.getDriver() as unknown as Partial<XaPostgreSqlDriver>;
  if (!driver.xaConnection) throw XaConfigError.driverMissing();
  const defaultSchema = driver.xaConnection.cache.defaultSchema;
  const wanted: UnbackedUniqueKey[] = [];
  for (const meta of orm.getMetadata().getAll().values() as Iterable<EntityMetadata>) {
    const root = meta.root ?? meta;
    if (meta !== root) continue;
    const tableSchemas = root.schema === '*' ? (schemas ?? [defaultSchema]) : [root.schema ?? defaultSchema];
    for (const key of uniqueKeysOf(meta)) for (const schema of tableSchemas) wanted.push({ entity: meta.className, table: `${schema}.${root.tableName}`, columns: key.columns });
  }
  if (wanted.length === 0) return [];
  const db = await driver.xaConnection.sqlRunner();
  const { rows } = await db.query(
    `SELECT n.nspname || '.' || c.relname AS t,
            (SELECT array_agg(a.attname::text ORDER BY a.attname::text) FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum WHERE k.ord <= i.indnkeyatts) AS cols
       FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
        AND n.nspname || '.' || c.relname = ANY($1::text[])`,
    [[...new Set(wanted.map((w) => w.table))]],
  );
  const backed = new Set((rows as Array<{ t: string; cols: string[] | null }>).map((r) => `${r.t}\0${(r.cols ?? []).join('\0')}`));
  return wanted.filter((w) => !backed.has(`${w.table}\0${[...w.columns].sort().join('\0')}`));
}

/** Rejects naming every declared unique key the database does not back (see {@link unbackedUniqueKeys}). */
export async function verifyUniqueKeys(orm: MikroORM, schemas?: readonly string[]): Promise<void> {
  const unbacked = await unbackedUniqueKeys(orm, schemas);
  if (unbacked.length === 0) return;
  const list = unbacked.map((u) => `${u.entity} (${u.table}: ${u.columns.join(', ')})`).join('; ');
  throw new XaConfigError(
    `uniqueKeys not backed by a unique index on exactly those columns (non-partial, no expression): ${list}. Create the index (CREATE UNIQUE INDEX … ON table (columns)) or remove the key from xaCache.uniqueKeys`,
  );
}
