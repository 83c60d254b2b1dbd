import type { SqlRunner } from '../protocol/sql-runner.js';
import type { CaptureTarget, WriteCapture } from '../protocol/write-capture.js';
import { CliError } from './cli-errors.js';
import type { TableName } from './cli-flags.js';

/**
 * The tables to capture, read from the catalog (the tool has no entity metadata): every ordinary or partitioned
 * table of `schemas`, and every partition of those (a statement on a partition fires only the partition's own
 * statement triggers), a partition tagged with its root table, the logical table the cache keys it by. The
 * library's own tables are left out: capturing the log or the change table would record the capture's own writes.
 */
export async function schemaTargets(db: SqlRunner, schemas: readonly string[], capture: WriteCapture, logTable: string): Promise<CaptureTarget[]> {
  const { rows } = await db.query(
    `SELECT n.nspname AS schema_name, c.relname AS table_name, CASE WHEN c.relispartition THEN r.relname END AS logical
       FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_class r ON c.relispartition AND r.oid = pg_partition_root(c.oid)
       LEFT JOIN pg_namespace rn ON rn.oid = r.relnamespace
      WHERE c.relkind IN ('r', 'p')
        AND (n.nspname = ANY($1::text[]) OR rn.nspname = ANY($1::text[]))
        AND c.oid IS DISTINCT FROM to_regclass($2) AND c.oid IS DISTINCT FROM to_regclass($3)
      ORDER BY 1, 2`,
    [schemas, logTable, capture.table],
  );
  return (rows as CatalogRow[]).map(target);
}

/**
 * The named tables, each of which must exist and be a table; a partitioned one brings its partitions, since
 * without their triggers statements that name a partition would go unheard.
 */
export async function namedTargets(db: SqlRunner, tables: readonly TableName[], capture: WriteCapture, logTable: string, where: string): Promise<CaptureTarget[]> {
  const schemas = tables.map((t) => t.schema);
  const names = tables.map((t) => t.table);
  const { rows } = await db.query(
    `SELECT g.s AS schema_name, g.t AS table_name, c.relkind::text AS relkind,
            coalesce(c.oid = to_regclass($3) OR c.oid = to_regclass($4), false) AS own,
            (SELECT r.relname FROM pg_class r WHERE c.relispartition AND r.oid = pg_partition_root(c.oid)) AS logical
       FROM unnest($1::text[], $2::text[]) AS g(s, t)
       LEFT JOIN pg_class c ON c.oid = to_regclass(format('%I.%I', g.s, g.t))`,
    [schemas, names, logTable, capture.table],
  );
  for (const r of rows as Array<CatalogRow & { relkind: string | null; own: boolean }>) {
    const name = `${r.schema_name}.${r.table_name}`;
    if (r.relkind === null) throw CliError.config(`there is no table ${name} in ${where}`, 'names are matched as the catalog spells them (case-sensitive, unquoted)');
    if (r.relkind !== 'r' && r.relkind !== 'p') throw CliError.config(`${name} in ${where} is not a table (capture triggers go on tables and partitioned tables)`);
    if (r.own) throw CliError.usage(`${name} is the cache's own table; its writes are not captured`, 'capture');
  }
  const { rows: partitions } = await db.query(
    `SELECT n.nspname AS schema_name, c.relname AS table_name, r.relname AS logical
       FROM unnest($1::text[], $2::text[]) AS g(s, t)
       CROSS JOIN LATERAL pg_partition_tree(to_regclass(format('%I.%I', g.s, g.t))) p
       JOIN pg_class c ON c.oid = p.relid AND c.relkind IN ('r', 'p')
       JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_class r ON r.oid = pg_partition_root(c.oid)
      WHERE p.level > 0
      ORDER BY 1, 2`,
    [schemas, names],
  );
  const found = new Map<string, CaptureTarget>();
  for (const r of [...rows, ...partitions] as CatalogRow[]) found.set(`${r.schema_name}.${r.table_name}`, target(r));
  return [...found.values()];
}

interface CatalogRow {
  readonly schema_name: string;
  readonly table_name: string;
  readonly logical: string | null;
}

function target(r: CatalogRow): CaptureTarget {
  return r.logical ? { schema: r.schema_name, table: r.table_name, logicalTable: r.logical } : { schema: r.schema_name, table: r.table_name };
}
