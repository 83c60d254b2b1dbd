/**
 * The benchmark suite: `npm run bench`. Starts throwaway servers (or uses DATABASE_URL / MEMCACHED_SERVERS), seeds
 * one template database, opens every contender, each on its own copy of the data and its own cache namespace, and
 * runs each workload against every contender in turn; then the sweeper; then focused `--cpu-prof` runs of xa-cache; then writes
 * docs/benchmarks.md and docs/benchmarks.svg. Settings: see `config.ts`.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Servers } from '../spec/support/servers.js';
import { loadConfig } from './config.js';
import { allContenders, type OpenContender } from './contenders/index.js';
import { adminUrlOf, cloneDatabase, createTemplate, dropDatabase } from './database.js';
import { describeEnvironment } from './environment.js';
import { runProfiles, type ProfileSummary } from './profile-runner.js';
import { RedisProcess } from './redis-process.js';
import { writeReport, type BenchResults } from './report.js';
import { allWorkloads } from './workloads/index.js';
import { runRecovery } from './workloads/recovery.js';

const TEMPLATE = 'bench_template';

async function main(): Promise<void> {
  const config = loadConfig();
  const started = performance.now();
  const stamp = (): string => {
    const s = Math.round((performance.now() - started) / 1000);
    return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
  };
  const log = (line: string): void => console.log(`[${stamp()}] ${line}`);

  const wanted = (key: string, list: readonly string[] | undefined): boolean => !list || list.includes(key);
  const contenders = allContenders.filter((c) => wanted(c.key, config.contenders));
  const workloads = allWorkloads.filter((w) => wanted(w.key, config.workloads));

  log(`starting servers (memcached, PostgreSQL${contenders.some((c) => c.key === 'redis') ? ', redis' : ''})`);
  const servers = await Servers.start({ memcached: 1 });
  const redis = contenders.some((c) => c.key === 'redis') ? await RedisProcess.start() : undefined;
  const admin = adminUrlOf(servers.db);
  const results: BenchResults = { config, environment: await describeEnvironment(servers.db), contenders: [], workloads: [], results: {}, unavailable: {}, failures: {} };
  let profiles: ProfileSummary[] = [];
  try {
    log(`seeding ${config.books} books, ${config.books / config.booksPerAuthor} authors`);
    await createTemplate(admin, TEMPLATE, config.books, config.booksPerAuthor);
    results.workloads = workloads.map((w) => ({ key: w.key, title: w.title, operation: w.operation }));
    // Every contender open at once, each on its own copy of the data, and the workloads run workload by workload:
    // the contenders of one workload are measured minutes apart at most, so a noisy neighbour on the machine
    // skews a ratio less than if each contender ran all its workloads in turn.
    const open: Array<{ key: string; label: string; database: string; contender: OpenContender }> = [];
    try {
      for (const contender of contenders) {
        results.contenders.push({ key: contender.key, label: contender.label, description: contender.description });
        const reason = contender.unavailable({ redisPort: redis?.port });
        if (reason) {
          results.unavailable[contender.key] = reason;
          log(`${contender.label}: skipped (${reason})`);
          continue;
        }
        const database = `bench_${contender.key}`;
        const databaseUrl = await cloneDatabase(admin, TEMPLATE, database);
        const opened = await contender.open({
          databaseUrl,
          memcached: servers.memcachedAddresses,
          redisPort: redis?.port,
          pool: config.pool,
          namespace: `bench-${contender.key}-${randomUUID().slice(0, 8)}`,
        });
        open.push({ key: contender.key, label: contender.label, database, contender: opened });
      }
      const planned = open.length * workloads.length;
      let done = 0;
      for (const workload of workloads) {
        for (const c of open) {
          done++;
          const progress = (line: string): void => log(`(${done}/${planned}) ${c.label.padEnd(18)} ${line}`);
          try {
            const result = await workload.run({ contender: c.contender, contenderKey: c.key, config, progress });
            (results.results[workload.key] ??= {})[c.key] = result;
          } catch (error) {
            const message = error instanceof Error ? error.message : String(error);
            (results.failures[workload.key] ??= {})[c.key] = message;
            progress(`${workload.key} FAILED: ${message}`);
          }
        }
      }
    } finally {
      for (const c of open) {
        await c.contender.close().catch(() => undefined);
        await dropDatabase(admin, c.database).catch(() => undefined);
      }
    }
    if (wanted('recovery', config.workloads)) {
      try {
        const databaseUrl = await cloneDatabase(admin, TEMPLATE, 'bench_recovery');
        results.recovery = await runRecovery(servers.memcachedAddresses, databaseUrl, config.inDoubt, (line) => log(`xa-cache           ${line}`));
      } catch (error) {
        (results.failures.recovery ??= {}).xa = error instanceof Error ? error.message : String(error);
        log(`recovery FAILED: ${results.failures.recovery.xa}`);
      }
      await dropDatabase(admin, 'bench_recovery').catch(() => undefined);
    }
    if (config.profile) {
      profiles = await runProfiles({ admin, template: TEMPLATE, memcached: servers.memcachedAddresses, config, log });
    }
  } finally {
    await redis?.stop();
    await servers.stop();
  }
  results.profiles = profiles;
  results.totalSeconds = (performance.now() - started) / 1000;
  mkdirSync('dist/bench', { recursive: true });
  writeFileSync('dist/bench/results.json', JSON.stringify(results, null, 2));
  const written = writeReport(results, config.outDir);
  log(`done in ${stamp()}: wrote ${written.join(', ')} (raw figures in dist/bench/results.json)`);
}

await main();
