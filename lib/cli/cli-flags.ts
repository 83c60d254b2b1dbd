import { CliError } from './cli-errors.js';

/** Parsed flag values, as `util.parseArgs` returns them. */
export type FlagValues = Readonly<Record<string, string | boolean | string[] | undefined>>;

/**
 * Node runs a timer of more than 2^31 - 1 ms at once, so no duration may exceed it (the memcached store refuses
 * such timeouts too).
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/**
 * A duration flag: `500ms`, `10s`, `2m`, `1h`, or a bare number of milliseconds, at least `minMs` (0 or 1:
 * `non-negative` or `positive` in the message) and at most `maxMs`.
 */
export function durationFlag(values: FlagValues, name: string, fallbackMs: number, command: string, bounds: { minMs: number; maxMs?: number }): number {
  const raw = values[name];
  if (raw === undefined) return fallbackMs;
  const text = String(raw).trim();
  const kind = bounds.minMs > 0 ? 'positive' : 'non-negative';
  // The sign is matched so that "-5s" is refused for being negative, not for being "not a duration".
  const match = /^(-?)(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text);
  if (!match) throw CliError.usage(`--${name} ${text} is not a duration; write 500ms, 10s, 2m, 1h or a number of milliseconds`, command);
  const ms = Math.round(Number(match[2]) * UNIT_MS[(match[3] ?? 'ms') as keyof typeof UNIT_MS]) * (match[1] ? -1 : 1);
  if (match[1] && ms !== 0) throw CliError.usage(`--${name} must be a ${kind} duration, got ${text}`, command);
  if (ms < bounds.minMs) throw CliError.usage(`--${name} must be ${bounds.minMs <= 1 ? `a ${kind} duration` : `at least ${bounds.minMs}ms`}, got ${text}`, command);
  const maxMs = bounds.maxMs ?? MAX_DURATION_MS;
  if (ms > maxMs) throw CliError.usage(`--${name} must be at most ${maxMs}ms, got ${text}`, command);
  return ms === 0 ? 0 : ms; // "-0" is 0, not -0 (which JSON prints as 0 but Object.is tells apart)
}

/**
 * A whole-number flag from 1 to `max`. Checked here, not by PostgreSQL: a value beyond a safe integer would
 * otherwise reach SQL as a bigint out of range, or silently lose digits.
 */
export function countFlag(values: FlagValues, name: string, fallback: number, command: string, max: number): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const text = String(raw).trim();
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max) throw CliError.usage(`--${name} must be a whole number from 1 to ${max}, got ${text}`, command);
  return n;
}

/** An `http:` or `https:` URL flag. */
export function urlFlag(values: FlagValues, name: string, command: string): string | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const text = String(raw).trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw CliError.usage(`--${name} ${text} is not a URL; write it as http://host:port/metrics`, command);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw CliError.usage(`--${name} must be an http:// or https:// URL, got ${text}`, command);
  return text;
}

/** `schema.table`, as the catalog spells the names (case-sensitive, unquoted). */
export interface TableName {
  readonly schema: string;
  readonly table: string;
}

/**
 * Whitespace and control characters: memcached keys cannot carry them, and a name or id with them is a pasting
 * mistake far more often than a real name.
 */
const UNPRINTABLE = /[\s\p{Cc}]/u;

/** The values of a flag that may be given several times (none: an empty list), each non-empty and printable. */
export function listFlag(values: FlagValues, name: string, command: string): string[] {
  const raw = values[name];
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [String(raw)];
  for (const text of list) {
    if (text === '' || UNPRINTABLE.test(text)) throw CliError.usage(`--${name} ${JSON.stringify(text)} must be non-empty, without spaces or control characters`, command);
  }
  return list;
}

/**
 * `--table SCHEMA.TABLE` values. The schema is required: cache keys and triggers name tables with their schema,
 * and guessing it from a `search_path` the tool does not share with the application would name another table.
 */
export function tableFlag(values: FlagValues, name: string, command: string): TableName[] {
  return listFlag(values, name, command).map((text) => {
    const match = /^([^.]+)\.([^.]+)$/.exec(text);
    if (!match) throw CliError.usage(`--${name} ${text} must be SCHEMA.TABLE, e.g. public.book`, command);
    return { schema: match[1] as string, table: match[2] as string };
  });
}
