import type { ParsedCommand } from './cli-args.js';
import { CliError } from './cli-errors.js';
import { progressModeOf, type ProgressMode } from './progress-line.js';
import { countFlag, durationFlag, listFlag, tableFlag, urlFlag, type TableName } from './cli-flags.js';

/** Default `--min-age`: the sweeper's own default, so what `inspect` reports is what a sweep would take. */
export const DEFAULT_MIN_AGE_MS = 10_000;

/**
 * `sweep --watch` never sweeps more often than this: with `--interval 0` it would otherwise claim log rows in a
 * tight loop, hundreds of times a second, against the same database the application writes to.
 */
export const MIN_WATCH_INTERVAL_MS = 100;

/** A bound far above any real need that keeps counts well inside PostgreSQL's integers and the process's memory. */
export const MAX_LIMIT = 1_000_000;
export const MAX_BATCH_SIZE = 100_000;

/** The flags of a command, checked and with defaults applied. */
export interface CommandOptions {
  readonly connectTimeoutMs: number;
  readonly minAgeMs: number;
  /** `inspect`: transactions shown; `sweep`: resolved transactions listed. */
  readonly limit: number;
  readonly batchSize: number;
  readonly intervalMs: number;
  readonly url: string | undefined;
  readonly watch: boolean;
  readonly quiet: boolean;
  readonly json: boolean;
  /** `inspect --scan-locks`: also list locks of transactions with no log row. */
  readonly scanLocks: boolean;
  /** `capture`: run the DDL instead of printing it. */
  readonly apply: boolean;
  /** `capture`: remove the triggers instead of installing them. */
  readonly drop: boolean;
  /** `capture`: schemas whose tables are captured (default `public` when no `--table` is given). */
  readonly schemas: readonly string[];
  /** `capture`: the tables to capture; `invalidate`: the table whose entries are invalidated (one). */
  readonly tables: readonly TableName[];
  /** `invalidate`: primary keys of rows of the `--table`. */
  readonly ids: readonly string[];
  /** `invalidate`: raw item keys (`r:<region>` names a region). */
  readonly keys: readonly string[];
  /** `follow`: the bound past which the feed counts as down (`outsideChangesMaxLagMs`). */
  readonly maxLagMs: number;
  /** When long work draws progress on stderr (`XA_CACHE_PROGRESS`; see {@link ProgressMode}). */
  readonly progress: ProgressMode;
}

/**
 * Checks every flag of `parsed` before anything is connected, so a bad value is a usage error (exit 2) whether or
 * not the servers are reachable, and never reaches SQL or a timer.
 */
export function readCommandOptions(parsed: ParsedCommand): CommandOptions {
  const { values, command } = parsed;
  return {
    connectTimeoutMs: durationFlag(values, 'connect-timeout', 5000, command, { minMs: 1 }),
    minAgeMs: durationFlag(values, 'min-age', DEFAULT_MIN_AGE_MS, command, { minMs: 0 }),
    limit: countFlag(values, 'limit', command === 'sweep' ? 1000 : 100, command, MAX_LIMIT),
    batchSize: countFlag(values, 'batch-size', 500, command, MAX_BATCH_SIZE),
    // follow: the fallback poll (notifications wake it at once); sweep --watch: the sweep interval.
    intervalMs: durationFlag(values, 'interval', command === 'follow' ? 1000 : 30_000, command, { minMs: MIN_WATCH_INTERVAL_MS }),
    maxLagMs: durationFlag(values, 'max-lag', 30_000, command, { minMs: 1 }),
    url: urlFlag(values, 'url', command),
    watch: values.watch === true,
    quiet: values.quiet === true,
    json: values.json === true,
    scanLocks: values['scan-locks'] === true,
    apply: values.apply === true,
    drop: values.drop === true,
    // An environment setting, not a flag, but checked with them: a bad value is a usage error before connecting.
    progress: progressModeOf(process.env.XA_CACHE_PROGRESS, command),
    ...targets(parsed),
  };
}

/** The tables, ids and keys a `capture` or `invalidate` acts on, with the combinations each command allows. */
function targets(parsed: ParsedCommand): Pick<CommandOptions, 'schemas' | 'tables' | 'ids' | 'keys'> {
  const { values, command } = parsed;
  const schemas = listFlag(values, 'schema', command);
  const tables = tableFlag(values, 'table', command);
  const ids = listFlag(values, 'id', command);
  const keys = listFlag(values, 'key', command);
  if (command === 'capture') {
    // Both would leave unclear whether the tables are added to the schemas or replace them.
    if (schemas.length > 0 && tables.length > 0) throw CliError.usage('give --schema or --table, not both', command);
    return { schemas: tables.length === 0 && schemas.length === 0 ? ['public'] : [...new Set(schemas)], tables, ids, keys };
  }
  if (command === 'follow') {
    const intervalMs = durationFlag(values, 'interval', 1000, command, { minMs: MIN_WATCH_INTERVAL_MS });
    // The bound is checked every interval: one shorter than the interval could never be kept.
    if (durationFlag(values, 'max-lag', 30_000, command, { minMs: 1 }) <= intervalMs) throw CliError.usage('--max-lag must be longer than --interval', command);
  }
  if (command === 'invalidate') {
    if (tables.length === 0 && keys.length === 0) throw CliError.usage('say what to invalidate: --table SCHEMA.TABLE [--id ID …] or --key KEY …', command);
    if (tables.length > 0 && keys.length > 0) throw CliError.usage('give --table (with --id) or --key, not both', command);
    if (tables.length > 1) throw CliError.usage('give one --table (its rows are named with --id)', command);
    if (ids.length > 0 && tables.length === 0) throw CliError.usage('--id needs --table SCHEMA.TABLE: a row key names its table', command);
  }
  return { schemas, tables, ids: [...new Set(ids)], keys: [...new Set(keys)] };
}
