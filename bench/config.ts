/**
 * Settings of a benchmark run, from the environment so a quick look and the full run use the same code:
 *
 * - `BENCH_SECONDS` (default 3): measured seconds per point (one workload, one contender, one concurrency);
 * - `BENCH_MIXED_SECONDS` (default 20): duration of the mixed workload per contender;
 * - `BENCH_BOOKS` (default 10000): books (50 per author);
 * - `BENCH_IN_DOUBT` (default 10000): in-doubt transactions for the sweeper;
 * - `BENCH_POOL` (default 20): PostgreSQL pool size of every ORM;
 * - `BENCH_CONTENDERS`: comma-separated subset of contender keys (`none,memory,memjs,redis,xa`);
 * - `BENCH_WORKLOADS`: comma-separated subset of workload keys (`pk,unique,query,collection,write,mixed,recovery`);
 * - `BENCH_PROFILE` (default 1): run the focused `--cpu-prof` runs of xa-cache and summarise them;
 * - `BENCH_OUT` (default `docs`): where `benchmarks.md` and `benchmarks.svg` are written.
 */
export interface BenchConfig {
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly mixedSeconds: number;
  readonly books: number;
  readonly booksPerAuthor: number;
  readonly inDoubt: number;
  readonly pool: number;
  readonly contenders: readonly string[] | undefined;
  readonly workloads: readonly string[] | undefined;
  readonly profile: boolean;
  readonly outDir: string;
  /** The concurrencies every throughput workload reports. */
  readonly inFlight: readonly number[];
}

const num = (name: string, fallback: number): number => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, not ${raw}`);
  return value;
};

const list = (name: string): string[] | undefined => {
  const raw = process.env[name];
  return raw ? raw.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
};

export function loadConfig(): BenchConfig {
  const seconds = num('BENCH_SECONDS', 3);
  return {
    seconds,
    warmupSeconds: Math.min(1, seconds / 3),
    mixedSeconds: num('BENCH_MIXED_SECONDS', 20),
    books: Math.max(50, Math.round(num('BENCH_BOOKS', 10_000) / 50) * 50),
    booksPerAuthor: 50,
    inDoubt: Math.round(num('BENCH_IN_DOUBT', 10_000)),
    pool: Math.round(num('BENCH_POOL', 20)),
    contenders: list('BENCH_CONTENDERS'),
    workloads: list('BENCH_WORKLOADS'),
    profile: (process.env.BENCH_PROFILE ?? '1') !== '0',
    outDir: process.env.BENCH_OUT ?? 'docs',
    inFlight: [1, 32],
  };
}
