/**
 * Lookups by a unique key under the mixed workload: `npm run bench:unique`.
 *
 * Three contenders, each in a child process of its own (`unique-lookup-runner.ts`) on its own copy of a seeded
 * template database and its own memcached namespace: (a) plain MikroORM, no cache; (b) `withXaCache` with
 * `Author.email` declared in `uniqueKeys` and `installWriteCapture(orm)` done; (c) the same without `uniqueKeys`,
 * the lookup asked as a cached query result (`{ cache: 60_000 }`). Each runs, per round, 32 operations in flight:
 * 95% `em.fork().findOne(Author, { email })` of a Zipf-distributed author, 5% a flush that gives an author a new
 * address; every read's answer is checked. Rounds are interleaved (contender order rotated per round); ratios are
 * taken inside a round and summarised as median and min–max over rounds. Prints a markdown table and writes it into
 * docs/benchmarks.md as the section "## Lookups by unique keys" (the rest of the file is kept).
 *
 * Settings: `BENCH_ROUNDS` (default 5), `BENCH_SECONDS` (measured seconds per round, default 1.5),
 * `BENCH_WARMUP` (default 0.3), `BENCH_OUT` (default `docs`).
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Servers } from '../spec/support/servers.js';
import { ContenderProcess } from './contender-process.js';
import { adminUrlOf, cloneDatabase, createTemplate, dropDatabase } from './database.js';
import { spliceSection } from './doc-section.js';
import { fmt, ratiosInRound, rotated, roundSettings, sum, withRange } from './rounds.js';
import { describeEnvironment } from './environment.js';
import type { LookupContenderKey, RunnerCommand, RunnerReady, RunnerResult, RunnerSetup } from './unique-lookup-runner.js';

export const UNIQUE_LOOKUP_HEADING = '## Lookups by unique keys';

const TEMPLATE = 'unique_template';
const AUTHORS = 10_000;
const IN_FLIGHT = 32;
const WRITE_SHARE = 0.05;
const RETIRED_SHARE = 0.05;
const POOL = 20;

const { rounds: ROUNDS, seconds: SECONDS, warmup: WARMUP } = roundSettings({ rounds: 5, seconds: 1.5, warmup: 0.3 });
const OUT = process.env.BENCH_OUT ?? 'docs';

const CONTENDERS: ReadonlyArray<{ key: LookupContenderKey; label: string; description: string }> = [
  { key: 'none', label: 'no cache', description: 'plain MikroORM 7, `findOne(Author, { email })`' },
  { key: 'xa-unique', label: 'xa-cache, unique key', description: "`withXaCache` + `installWriteCapture(orm)`, `Author` declared as the bookstore declares it (`xaCache: { ttlSeconds: 600, uniqueKeys: [['email']] }`), `findOne(Author, { email })`" },
  { key: 'xa-query', label: 'xa-cache, `cache:` query', description: '`withXaCache` + `installWriteCapture(orm)`, `Author` cached by id but without `uniqueKeys`, `findOne(Author, { email }, { cache: 60_000 })` (a cached query result)' },
];

const dbName = (key: LookupContenderKey): string => `unique_${key.replace('-', '_')}`;

/** A contender's child process (see {@link ContenderProcess}). */
const Runner = {
  start: (setup: RunnerSetup) =>
    ContenderProcess.start<RunnerCommand, RunnerReady, RunnerResult>(fileURLToPath(new URL('./unique-lookup-runner.js', import.meta.url)), setup),
};
type Runner = ContenderProcess<RunnerCommand, RunnerReady, RunnerResult>;

/** results[contender][round] */
type Results = Partial<Record<LookupContenderKey, RunnerResult[]>>;

async function main(): Promise<void> {
  const started = performance.now();
  const log = (line: string): void => console.log(`[${((performance.now() - started) / 1000).toFixed(0).padStart(3)} s] ${line}`);
  log('starting servers (memcached, PostgreSQL)');
  const servers = await Servers.start({ memcached: 1 });
  const admin = adminUrlOf(servers.db);
  const environment = await describeEnvironment(servers.db);
  const results: Results = {};
  const runners = new Map<LookupContenderKey, Runner>();
  try {
    log(`seeding ${AUTHORS} authors`);
    await createTemplate(admin, TEMPLATE, AUTHORS, 1);
    for (const c of CONTENDERS) {
      const databaseUrl = await cloneDatabase(admin, TEMPLATE, dbName(c.key));
      const { runner, ready } = await Runner.start({ key: c.key, databaseUrl, memcached: servers.memcachedAddresses, namespace: `unique-${c.key}-${randomUUID().slice(0, 8)}`, authors: AUTHORS, pool: POOL });
      runners.set(c.key, runner);
      log(`opened ${c.label} (every address read twice in ${ready.prefillSeconds.toFixed(1)} s)`);
    }
    for (let round = 0; round < ROUNDS; round++) {
      const order = rotated(CONTENDERS, round);
      for (const c of order) {
        const r = await (runners.get(c.key) as Runner).run({ type: 'run', round, inFlight: IN_FLIGHT, warmupSeconds: WARMUP, seconds: SECONDS, writeShare: WRITE_SHARE, retiredShare: RETIRED_SHARE });
        (results[c.key] ??= []).push(r);
        log(
          `round ${round + 1}/${ROUNDS} ${c.label.padEnd(24)} ${fmt.rate(r.opsPerSecond).padStart(6)} ops/s, p50 ${fmt.ms(r.p50)} ms (read ${fmt.ms(r.readP50)}, write ${fmt.ms(r.writeP50)}), SQL/read ${fmt.two(r.sqlPerRead)}, hits ${fmt.pct(r.hitRatio)}, ${r.reads} reads, ${r.writes} writes, ${r.violations} violations${r.firstViolation ? ` (${r.firstViolation})` : ''}${r.errors ? `, ${r.errors} errors: ${r.firstError}` : ''}`,
        );
      }
    }
  } finally {
    for (const r of runners.values()) await r.close().catch(() => undefined);
    for (const c of CONTENDERS) await dropDatabase(admin, dbName(c.key)).catch(() => undefined);
    await dropDatabase(admin, TEMPLATE).catch(() => undefined);
    await servers.stop();
  }
  const totalSeconds = (performance.now() - started) / 1000;
  const section = render(results, environment, totalSeconds);
  console.log(`\n${section}`);
  mkdirSync('dist/bench', { recursive: true });
  writeFileSync('dist/bench/unique-lookup-results.json', JSON.stringify({ environment, rounds: ROUNDS, seconds: SECONDS, warmup: WARMUP, results }, null, 2));
  const path = join(OUT, 'benchmarks.md');
  writeFileSync(path, spliceSection(existsSync(path) ? readFileSync(path, 'utf8') : '# Benchmarks\n', section));
  log(`done in ${totalSeconds.toFixed(0)} s: wrote ${path} (raw figures in dist/bench/unique-lookup-results.json)`);
}

function render(results: Results, e: Awaited<ReturnType<typeof describeEnvironment>>, totalSeconds: number): string {
  const md: string[] = [];
  md.push(UNIQUE_LOOKUP_HEADING, '');
  md.push(
    `Generated by \`npm run bench:unique\` (\`bench/unique-lookup.ts\`) on ${e.date.slice(0, 10)} in ${totalSeconds.toFixed(0)} s, library at commit ${e.commit}. Machine: ${e.cpu}, ${e.cores} cores shared with other work (PostgreSQL ${e.postgres} with fsync off, ${e.memcached} and the benchmark all on them), Node.js ${e.node}; ${AUTHORS.toLocaleString('en-US')} authors.`,
    '',
  );
  md.push(
    `Method: each contender runs in a child process of its own on its own copy of one seeded database and its own memcached namespace (every address read twice at start), and in each of ${ROUNDS} interleaved rounds (order rotated) runs ${IN_FLIGHT} operations in flight for ${SECONDS} s after a ${WARMUP} s warm-up: ${100 - WRITE_SHARE * 100}% \`em.fork().findOne(Author, { email })\` of a Zipf-distributed author (s = 0.99; ${RETIRED_SHARE * 100}% of them ask an address the author no longer holds, or never held), ${WRITE_SHARE * 100}% \`findOneOrFail(Author, id)\`, a new \`email\`, \`flush()\`. Every read is checked (the author returned must hold the address asked; null only when no author held it throughout the read; a retired address must give null); a hit is a read that sent no statement to PostgreSQL; figures are medians over rounds with the min–max in brackets, and the ratio to no cache is taken inside each round.`,
    '',
  );
  md.push('Contenders (all three map the same `author` table with the same four columns; only the caching of the lookup differs):', '');
  for (const c of CONTENDERS) md.push(`- **${c.label}**: ${c.description}.`);
  md.push('');
  md.push(
    '| contender | ops/s | vs no cache | p50 ms (all) | read p50 ms | write p50 ms | SQL statements per read | memcached calls per read | hit ratio | reads checked | violations | errors |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  const base = results.none ?? [];
  for (const c of CONTENDERS) {
    const rs = results[c.key] ?? [];
    if (rs.length === 0) {
      md.push(`| ${c.label} | — | — | — | — | — | — | — | — | — | — | — |`);
      continue;
    }
    const ratios = ratiosInRound(rs, base, (r) => r.opsPerSecond);
    const xa = c.key !== 'none';
    const violations = sum(rs.map((r) => r.violations));
    const errors = sum(rs.map((r) => r.errors));
    md.push(
      `| ${c.label} | ${withRange(rs.map((r) => r.opsPerSecond), fmt.rate)} | ${xa ? withRange(ratios, fmt.ratio) : '1.00x'} | ${withRange(rs.map((r) => r.p50), fmt.ms)} | ${withRange(rs.map((r) => r.readP50), fmt.ms)} | ${withRange(rs.map((r) => r.writeP50), fmt.ms)} | ${withRange(rs.map((r) => r.sqlPerRead), fmt.two)} | ${xa ? withRange(rs.map((r) => r.cachePerRead), fmt.two) : '—'} | ${xa ? withRange(rs.map((r) => r.hitRatio), fmt.pct) : '—'} | ${fmt.rate(sum(rs.map((r) => r.reads)))} | **${violations}**${violations ? ` (${rs.find((r) => r.firstViolation)?.firstViolation})` : ''} | ${errors}${errors ? ` (${rs.find((r) => r.firstError)?.firstError})` : ''} |`,
    );
  }
  md.push('');
  md.push(ANALYSIS_PLACEHOLDER, '');
  return md.join('\n');
}

/** Replaced by hand after a run with what the figures show (the generator cannot judge them). */
const ANALYSIS_PLACEHOLDER = process.env.BENCH_UNIQUE_ANALYSIS ?? '<!-- What these figures show: written by hand after each run (the generator cannot judge them). -->';

await main();
