/**
 * The benchmark suite: `npm run bench` (`-- --quick` for a short run). Starts throwaway servers (or uses
 * DATABASE_URL / MEMCACHED_SERVERS), seeds one template database, and starts every contender in a child process of
 * its own (`suite-runner.ts`), on its own copy of the data and its own cache namespace. Every workload is filled
 * once per contender, then measured in interleaved rounds: in each round every workload runs once for every
 * contender, the contenders in an order rotated per round, so a slow moment of the shared machine falls on one
 * round of all of them rather than on one contender. The round trips per operation (one operation at a time) are
 * counted before the rounds, the CPU profiles after them, then the sweeper; then docs/benchmarks.md and docs/benchmarks.svg (`report.ts`). Settings: `config.ts`.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Servers } from '../spec/support/servers.js';
import { loadConfig } from './config.js';
import { ContenderProcess } from './contender-process.js';
import { allContenders, type Contender } from './contenders/index.js';
import { adminUrlOf, cloneDatabase, createTemplate, dropDatabase } from './database.js';
import { describeEnvironment } from './environment.js';
import type { RoundResult } from './measure.js';
import { RedisProcess } from './redis-process.js';
import { writeReport, type BenchResults } from './report.js';
import { fmt, rotated } from './rounds.js';
import type { ProbeResult, ProfileResult, SuiteCommand, SuiteReady, SuiteResult, SuiteSetup } from './suite-runner.js';
import { allWorkloads, type DataShape } from './workloads/index.js';
import { runRecovery } from './workloads/recovery.js';

const TEMPLATE = 'bench_template';
type Runner = ContenderProcess<SuiteCommand, SuiteReady, SuiteResult>;
const RUNNER_FILE = fileURLToPath(new URL('./suite-runner.js', import.meta.url));

/** What is profiled: every workload of xa-cache, and the primary-key hit of the in-process cache for comparison. */
const PROFILED: ReadonlyArray<{ contender: string; workload: string }> = [
  ...allWorkloads.map((w) => ({ contender: 'xa', workload: w.key })),
  { contender: 'memory', workload: 'pk' },
];

async function main(): Promise<void> {
  const config = loadConfig();
  const loadAtStart = loadavg()[0] ?? Number.NaN;
  const started = performance.now();
  const stamp = (): string => {
    const s = Math.round((performance.now() - started) / 1000);
    return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
  };
  const log = (line: string): void => console.log(`[${stamp()}] ${line}`);
  const error = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';

  const wanted = (key: string, list: readonly string[] | undefined): boolean => !list || list.includes(key);
  const workloads = allWorkloads.filter((w) => wanted(w.key, config.workloads));
  const contenders = allContenders.filter((c) => wanted(c.key, config.contenders) && workloads.some((w) => runs(c, w.key)));
  const data: DataShape = { books: config.books, booksPerAuthor: config.booksPerAuthor, largeAuthors: config.largeAuthors, largeAuthorBooks: config.largeAuthorBooks };

  const needRedis = contenders.some((c) => c.key === 'redis');
  const memcachedCount = Math.max(1, ...contenders.map((c) => c.memcachedServers));
  log(`${config.quick ? 'QUICK run (figures not for quoting): ' : ''}starting servers (${memcachedCount} memcached, PostgreSQL${needRedis ? ', redis' : ''})`);
  const servers = await Servers.start({ memcached: memcachedCount });
  const redis = needRedis ? await RedisProcess.start() : undefined;
  const admin = adminUrlOf(servers.db);
  const results: BenchResults = {
    config,
    environment: await describeEnvironment(servers.db),
    contenders: [],
    workloads: workloads.map(({ key, title, operation, inFlight, headline }) => ({ key, title, operation, inFlight, headline })),
    rounds: {},
    failures: {},
    unavailable: {},
    prepareSeconds: {},
    probes: {},
    profiles: [],
    ...(process.env.BENCH_NOTE ? { note: process.env.BENCH_NOTE } : {}),
  };
  const runners = new Map<string, Runner>();
  const fail = (workload: string, contender: string, message: string): void => {
    (results.failures[workload] ??= {})[contender] ??= message;
  };
  try {
    log(`seeding ${fmt.rate(config.books)} books (${config.booksPerAuthor} per author) and ${config.largeAuthors} authors of ${config.largeAuthorBooks}`);
    await createTemplate(admin, TEMPLATE, config.books, config.booksPerAuthor, { authors: config.largeAuthors, books: config.largeAuthorBooks });
    for (const c of contenders) {
      results.contenders.push({ key: c.key, label: c.label, description: c.description, ...(c.workloads ? { workloads: c.workloads } : {}) });
      const reason = c.unavailable({ redisPort: redis?.port });
      if (reason) {
        results.unavailable[c.key] = reason;
        log(`${c.label}: skipped (${reason})`);
        continue;
      }
      const setup: SuiteSetup = {
        key: c.key,
        data,
        databaseUrl: await cloneDatabase(admin, TEMPLATE, `bench_${c.key}`),
        memcached: servers.memcachedAddresses.slice(0, c.memcachedServers),
        redisPort: redis?.port,
        pool: config.pool,
        namespace: `bench-${c.key}-${randomUUID().slice(0, 8)}`,
      };
      const { runner } = await ContenderProcess.start<SuiteCommand, SuiteReady, SuiteResult>(RUNNER_FILE, setup);
      runners.set(c.key, runner);
      const prepared = (results.prepareSeconds[c.key] = {} as Record<string, number>);
      for (const w of workloads.filter((w) => runs(c, w.key))) {
        try {
          prepared[w.key] = ((await runner.run({ type: 'prepare', workload: w.key })) as { prepareSeconds: number }).prepareSeconds;
        } catch (e) {
          fail(w.key, c.key, `prepare: ${error(e)}`);
        }
      }
      log(`${c.label.padEnd(22)} open, filled: ${Object.entries(prepared).map(([k, s]) => `${k} ${s.toFixed(1)} s`).join(', ')}`);
    }

    // Round trips per operation, before the rounds: every key is still as the fill left it, so a hit is a hit.
    if (config.profile) {
      for (const c of contenders.filter((c) => runners.has(c.key) && c.key !== 'none' && c.key !== 'memory')) {
        const probes = (results.probes[c.key] = {} as Record<string, ProbeResult>);
        for (const w of workloads.filter((w) => runs(c, w.key))) {
          try {
            probes[w.key] = (await (runners.get(c.key) as Runner).run({ type: 'probe', workload: w.key, count: config.probeOps })) as ProbeResult;
            log(`round trips per operation, ${c.label}, ${w.key}: ${Object.entries(probes[w.key] ?? {}).map(([kind, v]) => `${kind} ${fmt.two(v.roundTrips ?? Number.NaN)}`).join(', ')}`);
          } catch (e) {
            log(`probe ${c.key} ${w.key} FAILED: ${error(e)}`);
          }
        }
      }
    }

    for (let round = 0; round < config.rounds; round++) {
      for (const w of workloads) {
        const seconds = w.key === 'mixed' ? config.mixedSeconds : config.seconds;
        for (const c of rotated(contenders.filter((c) => runners.has(c.key) && runs(c, w.key) && results.failures[w.key]?.[c.key]?.startsWith('prepare') !== true), round)) {
          const slot = ((results.rounds[w.key] ??= {})[c.key] ??= []);
          try {
            const r = (await (runners.get(c.key) as Runner).run({ type: 'measure', workload: w.key, warmup: config.warmup, seconds })) as RoundResult;
            slot[round] = r;
            if (r.errors > 0) fail(w.key, c.key, `${r.errors} failed operations in round ${round + 1}; first: ${r.firstError}`);
            log(`round ${round + 1}/${config.rounds} ${w.key.padEnd(13)} ${c.label.padEnd(22)} ${describe(r)}`);
          } catch (e) {
            slot[round] = null;
            fail(w.key, c.key, error(e));
            log(`round ${round + 1}/${config.rounds} ${w.key.padEnd(13)} ${c.label.padEnd(22)} FAILED: ${error(e)}`);
          }
        }
      }
    }

    if (config.profile) {
      for (const p of PROFILED) {
        const runner = runners.get(p.contender);
        if (!runner || !workloads.some((w) => w.key === p.workload)) continue;
        try {
          const result = (await runner.run({ type: 'profile', workload: p.workload, warmup: config.warmup, seconds: config.profileSeconds })) as ProfileResult;
          results.profiles.push({ ...p, result });
          log(`profile ${p.contender} ${p.workload}: ${fmt.rate(result.opsPerSecond)} ops/s under the profiler, ${result.digest.samples} samples`);
        } catch (e) {
          log(`profile ${p.contender} ${p.workload} FAILED: ${error(e)}`);
        }
      }
    }
  } finally {
    for (const r of runners.values()) await r.close().catch(() => undefined);
    for (const c of contenders) await dropDatabase(admin, `bench_${c.key}`).catch(() => undefined);
  }
  try {
    if (wanted('recovery', config.workloads)) {
      try {
        const databaseUrl = await cloneDatabase(admin, TEMPLATE, 'bench_recovery');
        results.recovery = await runRecovery(servers.memcachedAddresses.slice(0, 1), databaseUrl, config.inDoubt, (line) => log(`xa-cache ${line}`));
      } catch (e) {
        fail('recovery', 'xa', error(e));
        log(`recovery FAILED: ${error(e)}`);
      }
      await dropDatabase(admin, 'bench_recovery').catch(() => undefined);
    }
  } finally {
    await dropDatabase(admin, TEMPLATE).catch(() => undefined);
    await redis?.stop();
    await servers.stop();
  }
  results.load = { start: loadAtStart, end: loadavg()[0] ?? Number.NaN };
  results.totalSeconds = (performance.now() - started) / 1000;
  mkdirSync('dist/bench', { recursive: true });
  writeFileSync('dist/bench/results.json', JSON.stringify(results, null, 2));
  const written = writeReport(results, config.outDir);
  log(`done in ${stamp()}: wrote ${written.join(', ')} (raw figures in dist/bench/results.json)`);
}

/** Whether a contender runs a workload. */
function runs(c: Contender, workload: string): boolean {
  return !c.workloads || c.workloads.includes(workload);
}

function describe(r: RoundResult): string {
  const parts = [`${fmt.rate(r.opsPerSecond).padStart(7)} ops/s`, `p50 ${fmt.ms(r.p50)} ms`];
  if (r.timedP50 !== undefined) parts.push(`flush p50 ${fmt.ms(r.timedP50)} ms`);
  if (r.reads > 0 && r.writes > 0) parts.push(`hits ${fmt.pct(r.hits / r.reads)}`, `${r.staleReads} stale of ${r.reads} reads`);
  if (r.perOp.roundTrips !== undefined) parts.push(`round trips/op ${fmt.two(r.perOp.roundTrips)}`);
  if (r.errors) parts.push(`${r.errors} errors: ${r.firstError}`);
  return parts.join(', ');
}

await main();
