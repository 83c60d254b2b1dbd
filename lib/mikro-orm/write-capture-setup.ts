import type { EntityMetadata, MikroORM } from '@mikro-orm/core';
import type { SqlRunner } from '../protocol/sql-runner.js';
import type { XaCache } from '../protocol/xa-cache.js';
import { dollarQuote, type CaptureTarget } from '../protocol/write-capture.js';
import { XaConfigError } from './xa-errors.js';
import type { XaPostgreSqlDriver } from './xa-driver.js';

/**
 * The parts of a MikroORM instance the capture setup uses: `MikroORM` itself, or the schema generator's view of
 * it (which has no `MikroORM` object, see `XaSchemaGenerator`).
 */
export type CaptureOrm = Pick<MikroORM, 'em' | 'getMetadata' | 'isConnected' | 'connect'>;

/** Which schemas hold the tables of entities declared with `schema: '*'` (one per tenant). */
export interface WriteCaptureOptions {
  /** Schemas of wildcard-schema entities' tables. Default: the default schema only. */
  readonly schemas?: readonly string[];
}

/**
 * The tables whose writes the cache must hear of: every table of every entity (a cached query result may read any
 * of them) and every pivot table, in the schema each lives in, with the partitions of partitioned tables (a
 * statement on a partition fires only the partition's own statement triggers).
 */
export async function captureTargets(orm: CaptureOrm, options: WriteCaptureOptions = {}): Promise<CaptureTarget[]> {
  const { db, defaultSchema } = await parts(orm);
  return captureTargetsOf(orm.getMetadata().getAll().values(), db, defaultSchema, options);
}

/**
 * {@link captureTargets} from metadata. `options.schemas` absent and `skipWildcard` set: entities of every schema
 * (`schema: '*'`) are left out, since which tenant schemas exist is not known.
 */
export async function captureTargetsOf(metas: Iterable<EntityMetadata>, db: SqlRunner, defaultSchema: string, options: WriteCaptureOptions & { skipWildcard?: boolean } = {}): Promise<CaptureTarget[]> {
  const found = new Map<string, CaptureTarget>();
  for (const meta of metas) {
    if (meta.embeddable || meta.virtual || meta.expression || !meta.tableName || (meta.root && meta.root !== meta)) continue;
    if (meta.schema === '*' && !options.schemas && options.skipWildcard) continue;
    const schemas = meta.schema === '*' ? (options.schemas ?? [defaultSchema]) : [meta.schema ?? defaultSchema];
    for (const schema of schemas) found.set(`${schema}.${meta.tableName}`, { schema, table: meta.tableName });
  }
  const tables = [...found.values()];
  const { rows } = await db.query(
    `WITH RECURSIVE t(schema_name, table_name) AS (SELECT * FROM unnest($1::text[], $2::text[])),
       parts(oid, logical) AS (
         SELECT i.inhrelid, t.table_name FROM t
           JOIN pg_class p ON p.relname = t.table_name JOIN pg_namespace n ON n.oid = p.relnamespace AND n.nspname = t.schema_name
           JOIN pg_inherits i ON i.inhparent = p.oid
         UNION ALL SELECT i.inhrelid, parts.logical FROM parts JOIN pg_inherits i ON i.inhparent = parts.oid)
     SELECT n.nspname AS schema_name, c.relname AS table_name, parts.logical FROM parts
       JOIN pg_class c ON c.oid = parts.oid JOIN pg_namespace n ON n.oid = c.relnamespace`,
    [tables.map((t) => t.schema), tables.map((t) => t.table)],
  );
  for (const r of rows as Array<{ schema_name: string; table_name: string; logical: string }>) {
    tables.push({ schema: r.schema_name, table: r.table_name, logicalTable: r.logical });
  }
  return tables;
}

/**
 * The DDL that installs the database-side write capture for this ORM's tables: the change table, the capture
 * function and the triggers, idempotent. Put it in a migration (run it again after adding entities or
 * partitions), or apply it with {@link installWriteCapture} or `mikro-orm-xa-cache capture --apply`.
 */
export async function writeCaptureDdl(orm: CaptureOrm, options: WriteCaptureOptions = {}): Promise<string[]> {
  const { xa } = await parts(orm);
  const targets = await existing(orm, await captureTargets(orm, options));
  return [...xa.capture.baseDdl(), ...targets.flatMap((t) => xa.capture.tableDdl(t))];
}

/** Applies {@link writeCaptureDdl} in one transaction (serialised with concurrent installers). Returns the tables covered. */
export async function installWriteCapture(orm: CaptureOrm, options: WriteCaptureOptions = {}): Promise<CaptureTarget[]> {
  const { db, xa } = await parts(orm);
  const targets = await existing(orm, await captureTargets(orm, options));
  const statements = [...xa.capture.baseDdl(), ...targets.flatMap((t) => xa.capture.tableDdl(t))];
  const body = statements.map((s) => `EXECUTE ${dollarQuote(s)};`).join('\n');
  await db.query(`DO $install$ BEGIN PERFORM pg_advisory_xact_lock(hashtext(${dollarQuote(xa.capture.table)})); ${body} END $install$`);
  (orm.em.getDriver() as unknown as XaPostgreSqlDriver).xaConnection.cache.captureGate.recheck();
  return targets;
}

/** The tables whose capture is missing, disabled or out of date (see {@link installWriteCapture}). */
export async function verifyWriteCapture(orm: CaptureOrm, options: WriteCaptureOptions = {}): Promise<CaptureTarget[]> {
  const { db, xa } = await parts(orm);
  return xa.capture.missing(db, await captureTargets(orm, options));
}

async function existing(orm: CaptureOrm, targets: CaptureTarget[]): Promise<CaptureTarget[]> {
  const { db } = await parts(orm);
  const { rows } = await db.query(`SELECT s, t FROM unnest($1::text[], $2::text[]) AS x(s, t) WHERE to_regclass(format('%I.%I', s, t)) IS NOT NULL`, [
    targets.map((t) => t.schema),
    targets.map((t) => t.table),
  ]);
  const present = new Set(rows.map((r) => `${(r as { s: string }).s}.${(r as { t: string }).t}`));
  return targets.filter((t) => present.has(`${t.schema}.${t.table}`));
}

async function parts(orm: CaptureOrm): Promise<{ db: SqlRunner; xa: XaCache; defaultSchema: string }> {
  const driver = orm.em.getDriver() as unknown as Partial<XaPostgreSqlDriver>;
  if (!driver.xaConnection) throw XaConfigError.driverMissing();
  if (!(await orm.isConnected())) await orm.connect();
  const connection = driver.xaConnection;
  return { db: await connection.sqlRunner(), xa: connection.cache.xa, defaultSchema: connection.cache.defaultSchema };
}
