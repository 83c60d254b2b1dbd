import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchConfig } from './config.js';
import type { Environment } from './environment.js';
import type { ProfileSummary } from './profile-runner.js';
import { barChartSvg, type ChartPanel } from './svg-chart.js';
import type { Point, WorkloadResult } from './workloads/index.js';
import type { RecoveryResult } from './workloads/recovery.js';
import { WRITE_SIZES } from './workloads/write-transaction.js';
import { KEPT_SECTIONS, sectionOf, spliceSection } from './doc-section.js';

/** Everything one run measured; also written to dist/bench/results.json. */
export interface BenchResults {
  config: BenchConfig;
  environment: Environment;
  contenders: Array<{ key: string; label: string; description: string }>;
  workloads: Array<{ key: string; title: string; operation: string }>;
  /** workload key → contender key → result */
  results: Record<string, Record<string, WorkloadResult>>;
  unavailable: Record<string, string>;
  failures: Record<string, Record<string, string>>;
  recovery?: RecoveryResult;
  profiles?: ProfileSummary[];
  totalSeconds?: number;
}

const ops = (n: number | undefined): string => (n === undefined || Number.isNaN(n) ? '—' : Math.round(n).toLocaleString('en-US'));
const ms = (n: number | undefined): string => (n === undefined || Number.isNaN(n) ? '—' : n < 10 ? n.toFixed(2) : n.toFixed(1));
const per = (n: number | undefined): string => (n === undefined || Number.isNaN(n) ? '—' : n === 0 ? '0' : n < 10 ? n.toFixed(2) : n.toFixed(1));
const ratio = (a: number | undefined, b: number | undefined): string => (a === undefined || b === undefined || !(b > 0) ? '—' : `${(a / b).toFixed(2)}x`);
const pct = (n: number): string => `${(n * 100).toFixed(1)}%`;
/** Failed operations of a point, with the share of all attempts. */
const failed = (p: Point | undefined): string => (!p ? '—' : p.errors === 0 ? '0' : `${ops(p.errors)} (${pct(p.errors / (p.errors + p.ops))})`);

function point(results: BenchResults, workload: string, contender: string, label: string): Point | undefined {
  return results.results[workload]?.[contender]?.points.find((p) => p.label === label);
}

function cacheCell(p: Point | undefined, contender: string): string {
  if (!p) return '—';
  if (contender === 'none') return '—';
  if (contender === 'memory') return `${per(p.perOp.lookups)} (in-process)`;
  return per(p.perOp.cache);
}

function sqlCell(p: Point | undefined, contender: string): string {
  if (!p) return '—';
  const log = contender === 'xa' && (p.perOp.sqlLog ?? 0) > 0 ? ` + ${per(p.perOp.sqlLog)} log` : '';
  return `${per(p.perOp.sql)}${log}`;
}

/** Target lines: what, the measured value, met or not. */
interface Target {
  readonly what: string;
  readonly measured: string;
  readonly met: boolean | undefined;
}

function targets(r: BenchResults): Target[] {
  const t: Target[] = [];
  const at32 = (w: string, c: string): number | undefined => point(r, w, c, '32 in flight')?.opsPerSecond;
  const xaPk = at32('pk', 'xa');
  const check = (what: string, value: number | undefined, base: number | undefined, min: number, baseName: string): void => {
    if (value === undefined || base === undefined) return void t.push({ what, measured: `not measured (${baseName} missing)`, met: undefined });
    t.push({ what, measured: `${(value / base).toFixed(2)}x (${ops(value)} vs ${ops(base)} ops/s)`, met: value / base >= min });
  };
  check('PK hit, 32 in flight: ≥ 6x no cache', xaPk, at32('pk', 'none'), 6, 'no cache');
  check('PK hit, 32 in flight: ≥ 1.0x naive memjs adapter', xaPk, at32('pk', 'memjs'), 1, 'naive memjs');
  check('PK hit, 32 in flight: ≥ 0.5x MemoryCacheAdapter', xaPk, at32('pk', 'memory'), 0.5, 'MemoryCacheAdapter');
  check('collection of 50, 32 in flight: ≥ 5x no cache', at32('collection', 'xa'), at32('collection', 'none'), 5, 'no cache');
  const coll1 = point(r, 'collection', 'xa', '1 in flight');
  const none1 = point(r, 'collection', 'none', '1 in flight');
  if (coll1 && none1) t.push({ what: 'collection of 50, 1 in flight: ≥ 5x no cache (latency p50)', measured: `${(none1.p50 / coll1.p50).toFixed(2)}x (${ms(coll1.p50)} vs ${ms(none1.p50)} ms)`, met: none1.p50 / coll1.p50 >= 5 });
  if (coll1) t.push({ what: 'collection of 50: one memcached round trip per server', measured: `${per(coll1.perOp.cache)} store calls per operation (1 server)`, met: (coll1.perOp.cache ?? Infinity) <= 1.0001 });
  const w10 = point(r, 'write', 'xa', '10 entities, 1 in flight');
  const w10none = point(r, 'write', 'none', '10 entities, 1 in flight');
  if (w10 && w10none) {
    const x = (w10.extra?.flushP50 ?? NaN) / (w10none.extra?.flushP50 ?? NaN);
    t.push({ what: 'write transaction of 10, 1 in flight: flush p50 ≤ 1.3x no cache', measured: `${x.toFixed(2)}x (${ms(w10.extra?.flushP50)} vs ${ms(w10none.extra?.flushP50)} ms)`, met: x <= 1.3 });
  }
  const rt = WRITE_SIZES.map((n) => point(r, 'write', 'xa', `${n} ${n === 1 ? 'entity' : 'entities'}, 1 in flight`)?.extra?.flush_cache);
  if (rt.every((v) => v !== undefined)) {
    t.push({ what: 'memcached round trips per commit do not grow with the entities', measured: `${rt.map((v) => per(v)).join(' / ')} store calls per flush for ${WRITE_SIZES.join(' / ')} entities`, met: Math.max(...(rt as number[])) <= Math.min(...(rt as number[])) + 0.01 });
  }
  check('mixed 95/5, 32 in flight: ≥ 3x no cache', point(r, 'mixed', 'xa', '32 in flight')?.opsPerSecond, point(r, 'mixed', 'none', '32 in flight')?.opsPerSecond, 3, 'no cache');
  const facts = r.results.mixed?.xa?.facts;
  if (facts) t.push({ what: 'mixed: zero stale reads (every read checked)', measured: `${ops(facts.staleReads)} stale of ${ops(facts.reads)} reads`, met: facts.staleReads === 0 });
  if (r.recovery) t.push({ what: `sweeper: ${ops(r.config.inDoubt)} in-doubt transactions in < 5 s`, measured: `${r.recovery.sweepSeconds.toFixed(2)} s (${ops(r.recovery.resolved)} resolved, ${r.recovery.leftInLog} left)`, met: r.recovery.sweepSeconds < 5 && r.recovery.leftInLog === 0 && r.recovery.resolved >= r.config.inDoubt });
  return t;
}

function hitTable(r: BenchResults, workload: string): string[] {
  const lines = [
    '| contender | ops/s @1 | p50 ms | p99 ms | ops/s @32 | p50 ms | p99 ms | SQL/op | cache calls/op | vs no cache @32 | xa-cache vs it @32 |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  const xa = point(r, workload, 'xa', '32 in flight')?.opsPerSecond;
  const none = point(r, workload, 'none', '32 in flight')?.opsPerSecond;
  for (const c of r.contenders) {
    const one = point(r, workload, c.key, '1 in flight');
    const many = point(r, workload, c.key, '32 in flight');
    if (!one && !many) {
      lines.push(`| ${c.label} | ${r.unavailable[c.key] ? `skipped: ${r.unavailable[c.key]}` : r.failures[workload]?.[c.key] ? `failed: ${r.failures[workload]?.[c.key]}` : '—'} |||||||||| `);
      continue;
    }
    lines.push(
      `| ${c.key === 'xa' ? '**xa-cache**' : c.label} | ${ops(one?.opsPerSecond)} | ${ms(one?.p50)} | ${ms(one?.p99)} | ${ops(many?.opsPerSecond)} | ${ms(many?.p50)} | ${ms(many?.p99)} | ${sqlCell(many, c.key)} | ${cacheCell(many, c.key)} | ${ratio(many?.opsPerSecond, none)} | ${c.key === 'xa' ? '1.00x' : ratio(xa, many?.opsPerSecond)} |`,
    );
  }
  return lines;
}

function writeTable(r: BenchResults): string[] {
  const lines = [
    '| entities | contender | tx/s @1 | flush p50 ms | flush p99 ms | tx/s @32 | flush p50 ms @32 | flush p99 ms @32 | failed tx @1 / @32 | SQL per flush | cache round trips per flush | flush p50 vs no cache @1 |',
    '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const n of WRITE_SIZES) {
    const name = `${n} ${n === 1 ? 'entity' : 'entities'}`;
    const base = point(r, 'write', 'none', `${name}, 1 in flight`)?.extra?.flushP50;
    for (const c of r.contenders) {
      const one = point(r, 'write', c.key, `${name}, 1 in flight`);
      const many = point(r, 'write', c.key, `${name}, 32 in flight`);
      if (!one && !many) continue;
      const log = c.key === 'xa' && (one?.extra?.flush_sqlLog ?? 0) > 0 ? ` + ${per(one?.extra?.flush_sqlLog)} log` : '';
      const cache = c.key === 'none' ? '—' : c.key === 'memory' ? '0 (in-process)' : per(one?.extra?.flush_cache);
      lines.push(
        `| ${n} | ${c.key === 'xa' ? '**xa-cache**' : c.label} | ${ops(one?.opsPerSecond)} | ${ms(one?.extra?.flushP50)} | ${ms(one?.extra?.flushP99)} | ${ops(many?.opsPerSecond)} | ${ms(many?.extra?.flushP50)} | ${ms(many?.extra?.flushP99)} | ${failed(one)} / ${failed(many)} | ${per(one?.extra?.flush_sql)}${log} | ${cache} | ${ratio(one?.extra?.flushP50, base)} |`,
      );
    }
  }
  return lines;
}

function mixedTable(r: BenchResults): string[] {
  const lines = [
    '| contender | ops/s @32 | p50 ms | p99 ms | read p50 / p99 ms | write p50 / p99 ms | reads checked | stale reads | writes committed / failed | SQL/op | cache calls/op | vs no cache |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  const none = point(r, 'mixed', 'none', '32 in flight')?.opsPerSecond;
  for (const c of r.contenders) {
    const p = point(r, 'mixed', c.key, '32 in flight');
    const f = r.results.mixed?.[c.key]?.facts;
    if (!p || !f) continue;
    lines.push(
      `| ${c.key === 'xa' ? '**xa-cache**' : c.label} | ${ops(p.opsPerSecond)} | ${ms(p.p50)} | ${ms(p.p99)} | ${ms(p.extra?.readP50)} / ${ms(p.extra?.readP99)} | ${ms(p.extra?.writeP50)} / ${ms(p.extra?.writeP99)} | ${ops(f.reads)} | **${ops(f.staleReads)}** (${pct(f.staleShare ?? 0)}) | ${ops(f.writes)} / ${ops(p.errors)} | ${sqlCell(p, c.key)} | ${cacheCell(p, c.key)} | ${ratio(p.opsPerSecond, none)} |`,
    );
  }
  return lines;
}

function profileSection(profiles: readonly ProfileSummary[]): string[] {
  const out: string[] = [];
  for (const p of profiles) {
    out.push(`### Profile: ${p.description}`, '');
    out.push(
      `${p.seconds} s measured under \`node --cpu-prof\` (${ops(p.opsPerSecond)} ops/s with the profiler on; ${p.digest.samples} samples in the measured window; per operation: ${Object.entries(p.perOp)
        .map(([k, v]) => `${per(v)} ${k}`)
        .join(', ')}).`,
      '',
    );
    out.push('Self time by layer:', '', '| layer | share of samples |', '| --- | ---: |');
    for (const a of p.digest.byArea) out.push(`| ${a.frame} | ${pct(a.share)} |`);
    out.push('', 'Top frames by self time:', '', '| frame | layer | self |', '| --- | --- | ---: |');
    for (const f of p.digest.topSelf) out.push(`| \`${f.frame}\` | ${f.area} | ${pct(f.share)} |`);
    out.push('', "This library's functions by inclusive time (self + everything they call, waiting excluded):", '', '| function | layer | inclusive |', '| --- | --- | ---: |');
    for (const f of p.digest.topInclusiveLib) out.push(`| \`${f.frame}\` | ${f.area} | ${pct(f.share)} |`);
    out.push('');
  }
  return out;
}

/** The SVG panels: throughput at 32 in flight per workload. */
function chartPanels(r: BenchResults): ChartPanel[] {
  const panel = (title: string, workload: string, label: string): ChartPanel => ({
    title,
    bars: r.contenders.map((c) => ({ label: c.label, value: point(r, workload, c.key, label)?.opsPerSecond, highlight: c.key === 'xa' })),
  });
  const panels: ChartPanel[] = [];
  if (r.results.pk) panels.push(panel('Primary-key hit (ops/s, 32 in flight)', 'pk', '32 in flight'));
  if (r.results.unique) panels.push(panel('Unique-key hit (ops/s, 32 in flight)', 'unique', '32 in flight'));
  if (r.results.query) panels.push(panel('Query hit (ops/s, 32 in flight)', 'query', '32 in flight'));
  if (r.results.collection) panels.push(panel('Collection of 50 (ops/s, 32 in flight)', 'collection', '32 in flight'));
  if (r.results.mixed) panels.push(panel('Mixed 95/5 Zipf (ops/s, 32 in flight)', 'mixed', '32 in flight'));
  if (r.results.write) panels.push(panel('Write tx of 10 (tx/s, 32 in flight)', 'write', '10 entities, 32 in flight'));
  if (r.results.write) panels.push(panel('Write tx of 10 (tx/s, 1 in flight)', 'write', '10 entities, 1 in flight'));
  return panels;
}

/** Writes benchmarks.md and benchmarks.svg into `dir`; returns the paths written. */
export function writeReport(r: BenchResults, dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  const e = r.environment;
  const md: string[] = [];
  md.push('# Benchmarks', '');
  md.push(
    `Generated by \`npm run bench\` (\`bench/run.ts\`) on ${e.date.slice(0, 10)} in ${Math.round(r.totalSeconds ?? 0)} s. Every figure below was measured in that one run, on one machine, against the same servers and the same data; ratios are only ever taken between figures of the same run. Regenerate with \`npm run bench\` (settings: \`bench/config.ts\`).`,
    '',
  );
  md.push('![Throughput per contender](benchmarks.svg)', '');
  md.push('## Setup', '');
  md.push(`- Library: mikro-orm-xa-cache at commit ${e.commit}.`);
  md.push(`- Machine: ${e.cpu}, ${e.cores} cores, ${e.memoryGb} GiB, ${e.os}. The database, memcached, redis and the benchmark all share these cores.`);
  md.push(`- Node.js ${e.node}; PostgreSQL ${e.postgres} (fsync off); ${e.memcached}; ${e.redis === 'not installed' ? 'redis: not installed' : e.redis.replace(/ sha=.*$/, '')}.`);
  md.push(`- Packages: ${Object.entries(e.packages).map(([k, v]) => `${k} ${v}`).join(', ')}.`);
  md.push(`- Data: ${ops(r.config.books)} books, ${ops(r.config.books / r.config.booksPerAuthor)} authors with ${r.config.booksPerAuthor} books each, 10 publishers, 20 tags (2 per book), one review per book. Seeded once into a template database; every contender runs on its own fresh copy and its own cache namespace (and a fresh ORM), so none sees another's cached data or writes.`);
  md.push(`- One memcached server (64 MiB, 2 threads), one PostgreSQL, one redis-server: throwaway, started by the harness (\`spec/support/servers.ts\`, \`bench/redis-process.ts\`). PostgreSQL pool: ${r.config.pool} connections per ORM.`);
  md.push(`- "N in flight" = N concurrent async loops in one Node.js process, each running one operation after another; every operation uses a fresh \`em.fork()\`. Each point is measured for ${r.config.seconds} s after a ${r.config.warmupSeconds.toFixed(1)} s warm-up; the mixed workload runs ${r.config.mixedSeconds} s. p50/p99 are exact percentiles over every operation. With ${e.cores} cores one Node process is CPU-bound long before the servers are: at 32 in flight the figures measure client CPU per operation as much as anything.`);
  md.push('- "SQL/op" counts statements through MikroORM\'s `onQuery` (BEGIN/COMMIT are not included); for xa-cache "+ log" is its log-row INSERT, sent on the transaction\'s own connection. "cache calls/op" counts adapter `get`/`set` calls (naive memjs, redis) or store calls of xa-cache (each one pipelined round trip per memcached server it touches; there is one server here).', '');
  md.push('Contenders:', '');
  for (const c of r.contenders) md.push(`- **${c.label}**: ${c.description}.${r.unavailable[c.key] ? ` **Skipped in this run: ${r.unavailable[c.key]}.**` : ''}`);
  md.push('');

  md.push('## Targets', '');
  md.push('| target | measured | met |', '| --- | --- | :---: |');
  for (const t of targets(r)) md.push(`| ${t.what} | ${t.measured} | ${t.met === undefined ? '—' : t.met ? 'yes' : '**no**'} |`);
  md.push('');

  for (const w of r.workloads) {
    if (!r.results[w.key] && !r.failures[w.key]) continue;
    md.push(`## ${w.title}`, '', `Operation: ${w.operation}.`, '');
    if (w.key === 'write') md.push(...writeTable(r));
    else if (w.key === 'mixed') md.push(...mixedTable(r));
    else md.push(...hitTable(r, w.key));
    for (const [c, message] of Object.entries(r.failures[w.key] ?? {})) md.push('', `- ${c} failed: ${message}`);
    const failedPoints = r.contenders.flatMap((c) => (r.results[w.key]?.[c.key]?.points ?? []).filter((p) => p.errors > 0).map((p) => ({ c, p })));
    if (failedPoints.length > 0) md.push('', 'Failed operations (not counted in the throughput):', '');
    for (const { c, p } of failedPoints) md.push(`- ${c.label}, ${p.label}: ${ops(p.errors)} of ${ops(p.errors + p.ops)} failed; first error: \`${(p.firstError ?? '').replace(/`/g, "'").slice(0, 300)}\``);
    md.push('');
  }

  if (r.recovery) {
    const rec = r.recovery;
    md.push('## Recovery', '');
    md.push(
      `${ops(rec.transactions)} in-doubt transactions (each: 3 row keys and 1 of 50 regions locked, its log row inserted, the database transaction committed, never promoted: a process that died right after COMMIT), created through the protocol (\`spec/support/protocol-fixture.ts\`) in ${rec.createSeconds.toFixed(1)} s. One sweeper (\`XaCache.sweep\`, batches of 500, \`minAgeMs: 0\`):`,
      '',
      '| in doubt | resolved | keys resolved | batches | sweep time | per 1,000 transactions | left in the log |',
      '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      `| ${ops(rec.transactions)} | ${ops(rec.resolved)} | ${ops(rec.keys)} | ${rec.batches} | ${rec.sweepSeconds.toFixed(2)} s | ${((rec.sweepSeconds / Math.max(1, rec.transactions)) * 1000 * 1000).toFixed(0)} ms | ${rec.leftInLog} |`,
      '',
    );
  }

  // Hand-kept sections measured by their own scripts (outside-latency.md: `node dist/bench/outside-latency.js`).
  for (const notes of ['bench/analysis.md', 'bench/outside-latency.md']) {
    if (existsSync(notes)) md.push(readFileSync(notes, 'utf8').trim(), '');
  }
  if (r.profiles && r.profiles.length > 0) {
    md.push('## CPU profiles of xa-cache (generated)', '');
    md.push('Focused runs of xa-cache alone, each in a child `node --cpu-prof` (`bench/profile.ts`), summarised over the measured window only (start-up and cache fill left out) by `bench/cpu-profile.ts`. Shares are of all samples in the window, idle included: with one process on 2 cores, idle is time spent waiting for the servers.', '');
    md.push(...profileSection(r.profiles));
  }
  const mdPath = join(dir, 'benchmarks.md');
  let doc = `${md.join('\n').replace(/\n{3,}/g, '\n\n')}\n`;
  // Sections other scripts wrote (`npm run bench:capture`, `npm run bench:unique`) stay, as they were measured.
  const previous = existsSync(mdPath) ? readFileSync(mdPath, 'utf8') : '';
  for (const heading of KEPT_SECTIONS) {
    const kept = sectionOf(previous, heading);
    if (kept) doc = spliceSection(doc, kept);
  }
  writeFileSync(mdPath, doc);
  const svgPath = join(dir, 'benchmarks.svg');
  writeFileSync(svgPath, barChartSvg('mikro-orm-xa-cache benchmarks: throughput per contender', `${e.date.slice(0, 10)}, ${e.cpu}, ${e.cores} cores, Node ${e.node}; one run, same servers and data (xa-cache in orange)`, chartPanels(r)));
  return [mdPath, svgPath];
}
