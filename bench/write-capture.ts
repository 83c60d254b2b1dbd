/**
 * What the database-side write capture costs a write: `npm run bench:capture`.
 *
 * Three contenders, each in a child process of its own (`write-capture-runner.ts`) on its own copy of a seeded
 * template database and its own memcached namespace: (a) plain MikroORM, no cache, no capture triggers; (b)
 * `withXaCache` with `installWriteCapture(orm)` done; (c) `withXaCache` without the capture triggers (prepare still
 * sends its log statement, which takes nothing). Rounds are interleaved: in each round every contender runs once
 * for each size (contender order rotated per round), then the raw statement; ratios are taken inside a round and
 * summarised as median and min–max over rounds. Prints a markdown table and writes it into docs/benchmarks.md as
 * the section "## Write capture" (the rest of the file is kept).
 *
 * Settings: `BENCH_ROUNDS` (default 5), `BENCH_SECONDS` (measured seconds per point, default 1.5),
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
import { fmt, median, ratiosInRound, rotated, roundSettings, withRange } from './rounds.js';
import { describeEnvironment } from './environment.js';
import type { CaptureContenderKey, RunnerCommand, RunnerReady, RunnerResult, RunnerSetup } from './write-capture-runner.js';

const TEMPLATE = 'capture_template';
const SIZES = [1, 10, 100, 1000] as const;
const RAW_SQL = 'UPDATE book SET price = price + 1 WHERE id <= 1000';
const BOOKS = 10_000;

const { rounds: ROUNDS, seconds: SECONDS, warmup: WARMUP } = roundSettings({ rounds: 5, seconds: 1.5, warmup: 0.3 });
const OUT = process.env.BENCH_OUT ?? 'docs';

const CONTENDERS: ReadonlyArray<{ key: CaptureContenderKey; label: string; description: string }> = [
  { key: 'none', label: 'no cache', description: 'plain MikroORM 7, no cache; no capture triggers on its database' },
  { key: 'xa', label: 'xa-cache + capture', description: '`withXaCache`, then `installWriteCapture(orm)` (the default path)' },
  { key: 'xa-bare', label: 'xa-cache, no triggers', description: '`withXaCache` without the capture triggers (the cost before the capture: prepare still sends its log statement)' },
];

/** A contender's child process (see {@link ContenderProcess}). */
const Runner = {
  start: (setup: RunnerSetup) =>
    ContenderProcess.start<RunnerCommand, RunnerReady, RunnerResult>(fileURLToPath(new URL('./write-capture-runner.js', import.meta.url)), setup),
};
type Runner = ContenderProcess<RunnerCommand, RunnerReady, RunnerResult>;

type PointKey = `${number}` | 'raw';
/** results[point][contender][round] */
type Results = Record<PointKey, Partial<Record<CaptureContenderKey, RunnerResult[]>>>;

async function main(): Promise<void> {
  const started = performance.now();
  const log = (line: string): void => console.log(`[${((performance.now() - started) / 1000).toFixed(0).padStart(3)} s] ${line}`);
  log('starting servers (memcached, PostgreSQL)');
  const servers = await Servers.start({ memcached: 1 });
  const admin = adminUrlOf(servers.db);
  const environment = await describeEnvironment(servers.db);
  const results = {} as Results;
  const runners = new Map<CaptureContenderKey, Runner>();
  const notes: string[] = [];
  try {
    log(`seeding ${BOOKS} books`);
    await createTemplate(admin, TEMPLATE, BOOKS, 50);
    for (const c of CONTENDERS) {
      const databaseUrl = await cloneDatabase(admin, TEMPLATE, `capture_${c.key.replace('-', '_')}`);
      const { runner, ready } = await Runner.start({ key: c.key, databaseUrl, memcached: servers.memcachedAddresses, namespace: `capture-${c.key}-${randomUUID().slice(0, 8)}` });
      runners.set(c.key, runner);
      const line = `${c.label}: ${ready.triggers} user triggers on its database${ready.missingCapture === undefined ? '' : `, verifyWriteCapture: ${ready.missingCapture} tables without capture`}`;
      notes.push(line);
      log(`opened ${line}`);
    }
    for (let round = 0; round < ROUNDS; round++) {
      const order = rotated(CONTENDERS, round);
      for (const size of SIZES) {
        for (const c of order) {
          const r = await (runners.get(c.key) as Runner).run({ type: 'flush', size, warmupSeconds: WARMUP, seconds: SECONDS });
          ((results[`${size}`] ??= {})[c.key] ??= []).push(r);
          log(
            `round ${round + 1}/${ROUNDS} N=${String(size).padEnd(4)} ${c.label.padEnd(22)} p50 ${fmt.ms(r.p50).padStart(6)} fmt.ms, ${fmt.rate(r.opsPerSecond).padStart(5)} tx/s, ${Object.entries(r.perCommit).map(([k, v]) => `${k} ${fmt.count(v)}`).join(', ')}${r.errors ? `, ${r.errors} errors: ${r.firstError}` : ''}`,
          );
        }
      }
      for (const c of order) {
        const r = await (runners.get(c.key) as Runner).run({ type: 'raw', sql: RAW_SQL, warmupSeconds: WARMUP, seconds: SECONDS });
        ((results.raw ??= {})[c.key] ??= []).push(r);
        log(`round ${round + 1}/${ROUNDS} raw    ${c.label.padEnd(22)} p50 ${fmt.ms(r.p50).padStart(6)} fmt.ms, ${fmt.rate(r.opsPerSecond).padStart(5)} stmt/s, ${Object.entries(r.perCommit).map(([k, v]) => `${k} ${fmt.count(v)}`).join(', ')}${r.errors ? `, ${r.errors} errors: ${r.firstError}` : ''}`);
      }
    }
  } finally {
    for (const r of runners.values()) await r.close().catch(() => undefined);
    for (const c of CONTENDERS) await dropDatabase(admin, `capture_${c.key.replace('-', '_')}`).catch(() => undefined);
    await dropDatabase(admin, TEMPLATE).catch(() => undefined);
    await servers.stop();
  }
  const totalSeconds = (performance.now() - started) / 1000;
  const section = render(results, environment, totalSeconds, notes);
  console.log(`\n${section}`);
  mkdirSync('dist/bench', { recursive: true });
  writeFileSync('dist/bench/write-capture-results.json', JSON.stringify({ environment, rounds: ROUNDS, seconds: SECONDS, warmup: WARMUP, results }, null, 2));
  const path = join(OUT, 'benchmarks.md');
  writeFileSync(path, spliceSection(existsSync(path) ? readFileSync(path, 'utf8') : '# Benchmarks\n', section));
  log(`done in ${totalSeconds.toFixed(0)} s: wrote ${path} (raw figures in dist/bench/write-capture-results.json)`);
}

function render(results: Results, e: Awaited<ReturnType<typeof describeEnvironment>>, totalSeconds: number, notes: readonly string[]): string {
  const md: string[] = [];
  md.push('## Write capture', '');
  md.push(
    `Generated by \`npm run bench:capture\` (\`bench/write-capture.ts\`) on ${e.date.slice(0, 10)} in ${totalSeconds.toFixed(0)} s, library at commit ${e.commit}. Machine: ${e.cpu}, ${e.cores} cores shared with other work (PostgreSQL ${e.postgres} with fsync off, ${e.memcached} and the benchmark all on them), Node.js ${e.node}; ${BOOKS.toLocaleString('en-US')} books.`,
    '',
  );
  md.push(
    `Method: each contender runs in a child process of its own, on its own copy of one seeded database and its own memcached namespace; ${ROUNDS} interleaved rounds, in each of which every contender (in rotated order) runs each size for ${SECONDS} s after a ${WARMUP} s warm-up, 1 in flight, one operation = \`em.fork()\`, \`find(Book, { id: { $in: ids } })\` of the same N books, a new price on each, \`flush()\` (only the flush is timed; tx/s counts whole operations, load included). Figures are the median over rounds with the min–max over rounds in brackets; a ratio is taken inside a round (xa-cache / no cache of that round) and then summarised the same way.`,
    '',
  );
  md.push('Contenders:', '');
  for (const c of CONTENDERS) md.push(`- **${c.label}**: ${c.description}.`);
  md.push('', `Checked at start: ${notes.join('; ')}.`, '');
  md.push(
    '| N | contender | flush p50 ms | tx/s | flush p50 vs no cache | capture vs no triggers | SQL per commit (onQuery + log) | statements on the wire per commit | memcached round trips per commit | keys added by the capture per commit |',
    '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  const row = (point: PointKey, label: string, c: (typeof CONTENDERS)[number], unit: (r: RunnerResult) => number): string => {
    const rs = results[point]?.[c.key] ?? [];
    const base = results[point]?.none ?? [];
    const bare = results[point]?.['xa-bare'] ?? [];
    if (rs.length === 0) return `| ${label} | ${c.label} | — | — | — | — | — | — | — | — |`;
    const ratios = ratiosInRound(rs, base, (r) => r.p50);
    const captureRatios = ratiosInRound(rs, bare, (r) => r.p50);
    const per = (k: string): number => median(rs.map((r) => r.perCommit[k] ?? 0));
    const xa = c.key !== 'none';
    const errors = rs.reduce((s, r) => s + r.errors, 0);
    return `| ${label} | ${xa ? c.label : `${c.label}`} | ${withRange(rs.map((r) => r.p50), fmt.ms)} | ${withRange(rs.map(unit), fmt.rate)} | ${xa ? withRange(ratios, fmt.ratio) : '1.00x'} | ${c.key === 'xa' ? withRange(captureRatios, fmt.ratio) : c.key === 'xa-bare' ? '1.00x' : '—'} | ${fmt.count(per('sql'))}${xa ? ` + ${fmt.count(per('log'))} log` : ''} | ${fmt.count(per('wire'))} | ${xa ? fmt.count(per('cache')) : '—'} | ${xa ? fmt.count(per('capturedKeys')) : '—'} |${errors ? ` ${errors} errors: ${rs.find((r) => r.firstError)?.firstError}` : ''}`;
  };
  for (const size of SIZES) for (const c of CONTENDERS) md.push(row(`${size}`, String(size), c, (r) => r.opsPerSecond));
  md.push('');
  md.push(`Raw statement: \`em.execute('${RAW_SQL}')\` outside a transaction (xa-cache gives it a transaction of its own, so the capture's 1,000 old and new row images are taken by its prepare); the whole call is timed, and the second column is statements per second.`, '');
  md.push(
    '| statement | contender | p50 ms | statements/s | p50 vs no cache | capture vs no triggers | SQL per statement (onQuery + log) | statements on the wire | memcached round trips | keys added by the capture |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const c of CONTENDERS) md.push(row('raw', 'UPDATE of 1,000 rows', c, (r) => r.opsPerSecond));
  md.push('');
  md.push(
    'Where the time of the large writes goes: mean milliseconds per timed part (median over rounds), split into the time spent waiting for PostgreSQL on the application\'s write statements (their triggers included), on the statements on the log table (the prepare statement, which also takes the captured changes, and adding keys the capture named), on BEGIN/COMMIT, and the rest (Node.js: the unit of work, parsing and mapping the captured images to keys, memcached).',
    '',
    '| operation | contender | mean ms | write statements | log statements | BEGIN/COMMIT | rest (client, memcached) |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const [point, label] of [['100', 'flush of 100'], ['1000', 'flush of 1,000'], ['raw', 'UPDATE of 1,000 rows']] as Array<[PointKey, string]>) {
    for (const c of CONTENDERS) {
      const rs = results[point]?.[c.key] ?? [];
      if (rs.length === 0) continue;
      const per = (k: string): number => median(rs.map((r) => r.perCommit[k] ?? 0));
      const rest = median(rs.map((r) => (r.perCommit.ms ?? 0) - (r.perCommit.ms_write ?? 0) - (r.perCommit.ms_log ?? 0) - (r.perCommit.ms_tx ?? 0) - (r.perCommit.ms_read ?? 0)));
      md.push(`| ${label} | ${c.label} | ${fmt.ms(per('ms'))} | ${fmt.ms(per('ms_write'))} | ${c.key === 'none' ? '—' : fmt.ms(per('ms_log'))} | ${fmt.ms(per('ms_tx'))} | ${fmt.ms(rest)} |`);
    }
  }
  md.push('');
  md.push(ANALYSIS_PLACEHOLDER, '');
  return md.join('\n');
}

/** Replaced by hand after a run with what the figures show (the generator cannot judge them). */
const ANALYSIS_PLACEHOLDER = process.env.BENCH_CAPTURE_ANALYSIS ?? '<!-- What these figures show: written by hand after each run (the generator cannot judge them). -->';

await main();
