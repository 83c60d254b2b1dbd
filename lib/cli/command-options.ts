import type { ParsedCommand } from './cli-args.js';
import { countFlag, durationFlag, urlFlag } from './cli-flags.js';

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
    intervalMs: durationFlag(values, 'interval', 30_000, command, { minMs: MIN_WATCH_INTERVAL_MS }),
    url: urlFlag(values, 'url', command),
    watch: values.watch === true,
    quiet: values.quiet === true,
    json: values.json === true,
  };
}
