import { envNumber, roundSettings, type RoundSettings } from './rounds.js';

/**
 * Settings of `npm run bench`, from the environment (and `--quick`), so a quick look and the full run use the same
 * code. The full run (default) is sized to take about 10 minutes on 2 cores; `--quick` (or `BENCH_QUICK=1`) takes
 * about 2, with less data and shorter points, for checking that the harness works, never for figures to quote.
 *
 * - `BENCH_ROUNDS` (default 5, quick 3, at least 3): interleaved rounds;
 * - `BENCH_SECONDS` (default 1.5, quick 0.5): measured seconds per point (one workload, one contender, one round);
 *   the mixed workload runs twice as long; `BENCH_WARMUP` (default 0.4, quick 0.2): unmeasured seconds before each;
 * - `BENCH_BOOKS` (default 10000, quick 2000): books of 50 per author; plus 20 (quick 4) authors of 500 books;
 * - `BENCH_IN_DOUBT` (default 10000, quick 2000): in-doubt transactions for the sweeper;
 * - `BENCH_POOL` (default 20): PostgreSQL pool size of every ORM;
 * - `BENCH_CONTENDERS`: comma-separated subset of contender keys (`none,memory,memjs,redis,xa,xa2`);
 * - `BENCH_WORKLOADS`: comma-separated subset of workload keys (`pk,collection50,collection500,flush10,mixed,recovery`);
 * - `BENCH_PROFILE` (default 1): the CPU profiles and round-trip counts of xa-cache;
 * - `BENCH_OUT` (default `docs`): where `benchmarks.md` and `benchmarks.svg` are written;
 * - `BENCH_NOTE`: a paragraph printed at the top of the report (the conditions of the run, e.g. a shared machine).
 */
export interface BenchConfig extends RoundSettings {
  readonly quick: boolean;
  readonly mixedSeconds: number;
  readonly books: number;
  readonly booksPerAuthor: number;
  readonly largeAuthors: number;
  readonly largeAuthorBooks: number;
  readonly inDoubt: number;
  readonly pool: number;
  readonly contenders: readonly string[] | undefined;
  readonly workloads: readonly string[] | undefined;
  readonly profile: boolean;
  /** Seconds of each CPU profile. */
  readonly profileSeconds: number;
  /** Operations counted one at a time for the round trips per operation. */
  readonly probeOps: number;
  readonly outDir: string;
}

const list = (name: string): string[] | undefined => {
  const raw = process.env[name];
  return raw ? raw.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
};

export function loadConfig(argv: readonly string[] = process.argv.slice(2)): BenchConfig {
  for (const arg of argv) if (arg !== '--quick') throw new Error(`unknown argument ${arg} (known: --quick)`);
  const quick = argv.includes('--quick') || process.env.BENCH_QUICK === '1';
  const rounds = roundSettings(quick ? { rounds: 3, seconds: 0.5, warmup: 0.2 } : { rounds: 5, seconds: 1.5, warmup: 0.4 });
  return {
    ...rounds,
    quick,
    mixedSeconds: rounds.seconds * 2,
    books: Math.max(100, Math.round(envNumber('BENCH_BOOKS', quick ? 2_000 : 10_000) / 50) * 50),
    booksPerAuthor: 50,
    largeAuthors: quick ? 4 : 20,
    largeAuthorBooks: 500,
    inDoubt: Math.round(envNumber('BENCH_IN_DOUBT', quick ? 2_000 : 10_000)),
    pool: Math.round(envNumber('BENCH_POOL', 20)),
    contenders: list('BENCH_CONTENDERS'),
    workloads: list('BENCH_WORKLOADS'),
    profile: (process.env.BENCH_PROFILE ?? '1') !== '0',
    profileSeconds: quick ? 1 : 3,
    probeOps: quick ? 30 : 200,
    outDir: process.env.BENCH_OUT ?? 'docs',
  };
}
