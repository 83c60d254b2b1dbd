import type { SqlRunner } from '../protocol/sql-runner.js';
import { resolveProtocolOptions } from '../protocol/protocol-options.js';
import { dollarQuote, WriteCapture, type CaptureTarget } from '../protocol/write-capture.js';
import { namedTargets, schemaTargets } from './catalog-targets.js';
import type { CliConfig } from './cli-config.js';
import { CliError, EXIT, describe } from './cli-errors.js';
import type { CliOutput } from './cli-output.js';
import type { CommandOptions } from './command-options.js';

/**
 * `capture`: the DDL of the database-side write capture (the change table, the capture function, the triggers of
 * each table), printed as a script or, with `--apply`, run in one transaction; with `--drop`, the DDL that removes
 * the triggers. The tables come from the catalog, not from entity metadata (the tool has none): every table of
 * `--schema` (default `public`), or exactly the `--table`s named (with their partitions). Needs PostgreSQL only.
 */
export async function captureCommand(db: SqlRunner, config: CliConfig, options: CommandOptions, io: CliOutput): Promise<number> {
  // The log table's name goes into DDL: it is checked as the library checks it before anything is built from it.
  try {
    resolveProtocolOptions({ logTable: config.logTable });
  } catch (error) {
    throw CliError.config(describe(error), 'check --log-table (the logTable cache option)');
  }
  const capture = new WriteCapture(config.logTable);
  const targets = options.tables.length > 0 ? await namedTargets(db, options.tables, capture, config.logTable, config.dbLabel) : await schemaTargets(db, options.schemas, capture, config.logTable);
  const statements = options.drop ? targets.flatMap((t) => capture.dropTableDdl(t)) : [...capture.baseDdl(), ...targets.flatMap((t) => capture.tableDdl(t))];
  if (targets.length === 0 && !options.json) io.err(`warning: no tables found in schema${options.schemas.length > 1 ? 's' : ''} ${options.schemas.join(', ')} of ${config.dbLabel}`);
  if (options.apply && statements.length > 0) await applyAtomically(db, capture, statements);

  if (options.json) {
    io.out(JSON.stringify({ action: options.drop ? 'drop' : 'install', applied: options.apply, changeTable: capture.table, database: config.dbLabel, tables: targets, statements }, null, 2));
  } else if (options.apply) {
    const verb = options.drop ? 'Removed the write capture from' : `Installed the write capture (change table ${capture.table}) on`;
    io.out(`${verb} ${targets.length} table${targets.length === 1 ? '' : 's'} in ${config.dbLabel}${targets.length > 0 ? ':' : '.'}`);
    for (const t of targets) io.out(`  ${label(t)}`);
  } else {
    io.out(script(capture, targets, statements, options.drop));
  }
  return EXIT.ok;
}

/**
 * Runs the statements as one `DO` block: one transaction, so a failure leaves no table half-captured, serialised
 * with `installWriteCapture` and other installers by the same advisory lock.
 */
async function applyAtomically(db: SqlRunner, capture: WriteCapture, statements: readonly string[]): Promise<void> {
  const body = statements.map((s) => `EXECUTE ${dollarQuote(s)};`).join('\n');
  await db.query(`DO $capture$ BEGIN PERFORM pg_advisory_xact_lock(hashtext(${dollarQuote(capture.table)})); ${body} END $capture$`);
}

/** A psql-ready script: one transaction, taking the installers' advisory lock, so it is as safe as `--apply`. */
function script(capture: WriteCapture, targets: readonly CaptureTarget[], statements: readonly string[], drop: boolean): string {
  const head = [
    `-- mikro-orm-xa-cache write capture: ${drop ? 'remove the triggers from' : `change table ${capture.table}, triggers on`} ${targets.length} table${targets.length === 1 ? '' : 's'}`,
    ...targets.map((t) => `--   ${label(t)}`),
    'BEGIN;',
    `SELECT pg_advisory_xact_lock(hashtext(${dollarQuote(capture.table)}));`,
  ];
  return [...head, ...statements.map((s) => `${s};`), 'COMMIT;'].join('\n');
}

function label(t: CaptureTarget): string {
  return `${t.schema}.${t.table}${t.logicalTable ? ` (partition of ${t.logicalTable})` : ''}`;
}
