/**
 * The round bookkeeping every multi-process benchmark shares (`npm run bench`, `bench:capture`, `bench:unique`):
 * settings from the environment, the rotated contender order of each round, and summaries over rounds (median with
 * the min–max range; a ratio is taken inside each round first, then summarised the same way).
 */

/** A positive number from the environment, or `fallback`; anything else is an error, never a silent default. */
export function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, not ${raw}`);
  return value;
}

/** How many interleaved rounds, and how long each measured point of a round runs. */
export interface RoundSettings {
  readonly rounds: number;
  /** Measured seconds per point. */
  readonly seconds: number;
  /** Unmeasured seconds before each point. */
  readonly warmup: number;
}

/** `BENCH_ROUNDS` (at least 3: a median of fewer says nothing), `BENCH_SECONDS`, `BENCH_WARMUP`, over `defaults`. */
export function roundSettings(defaults: RoundSettings): RoundSettings {
  return {
    rounds: Math.max(3, Math.round(envNumber('BENCH_ROUNDS', defaults.rounds))),
    seconds: envNumber('BENCH_SECONDS', defaults.seconds),
    warmup: envNumber('BENCH_WARMUP', defaults.warmup),
  };
}

/** The contenders in the order of round `round`: rotated by one each round, so none always runs first or last. */
export function rotated<T>(list: readonly T[], round: number): T[] {
  return list.map((_, i) => list[(i + round) % list.length] as T);
}

/** The median of the finite values (NaN when there are none). */
export function median(xs: readonly number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** The smallest and largest finite values ([NaN, NaN] when there are none). */
export function range(xs: readonly number[]): [number, number] {
  const s = xs.filter((x) => Number.isFinite(x));
  return s.length === 0 ? [Number.NaN, Number.NaN] : [Math.min(...s), Math.max(...s)];
}

/** The median and min–max over rounds of one figure, summarised once so tables and targets agree. */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export function spread(xs: readonly number[]): Spread {
  const [min, max] = range(xs);
  return { median: median(xs), min, max };
}

/**
 * Ratios taken inside each round: `value(of[i]) / value(base[i])` for every round both measured (NaN where one is
 * missing), so a slow moment of the machine moves numerator and denominator together.
 */
export function ratiosInRound<T>(of: readonly T[], base: readonly T[], value: (r: T) => number): number[] {
  return of.map((r, i) => {
    const b = base[i];
    return b === undefined ? Number.NaN : value(r) / value(b);
  });
}

/** "median (min–max)" in the given format. */
export function withRange(xs: readonly number[], f: (x: number) => string): string {
  const s = spread(xs);
  return Number.isNaN(s.median) ? '—' : `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
}

/** Formats shared by the reports. */
export const fmt = {
  ms: (x: number): string => (Number.isNaN(x) ? '—' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)),
  rate: (x: number): string => (Number.isNaN(x) ? '—' : Math.round(x).toLocaleString('en-US')),
  ratio: (x: number): string => (Number.isNaN(x) ? '—' : `${x.toFixed(2)}x`),
  two: (x: number): string => (Number.isNaN(x) ? '—' : x.toFixed(2)),
  pct: (x: number): string => (Number.isNaN(x) ? '—' : `${(x * 100).toFixed(1)}%`),
  /** A count per operation: whole numbers bare, others with two decimals. */
  count: (x: number): string => (Number.isNaN(x) ? '—' : Number.isInteger(Math.round(x * 100) / 100) ? String(Math.round(x)) : x.toFixed(2)),
} as const;

/** The sum of the values. */
export const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);
