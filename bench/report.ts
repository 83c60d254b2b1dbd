import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchConfig } from './config.js';
import { KEPT_SECTIONS, sectionOf, spliceSection } from './doc-section.js';
import type { Environment } from './environment.js';
import type { RoundResult } from './measure.js';
import { fmt, median, ratiosInRound, sum, withRange } from './rounds.js';
import type { ProbeResult, ProfileResult } from './suite-runner.js';
import { barChartSvg, type ChartPanel } from './svg-chart.js';
import type { WorkloadSpec } from './workloads/index.js';
import type { RecoveryResult } from './workloads/recovery.js';

/** Everything one run measured; also written to dist/bench/results.json. */
export interface BenchResults {
  config: BenchConfig;
  environment: Environment;
  contenders: Array<{ key: string; label: string; description: string; workloads?: readonly string[] }>;
  workloads: WorkloadSpec[];
  /** workload → contender → one result per round (null: that round failed), indexed by round. */
  rounds: Record<string, Record<string, Array<RoundResult | null>>>;
  /** workload → contender → the first failure. */
  failures: Record<string, Record<string, string>>;
  unavailable: Record<string, string>;
  /** contender → workload → seconds its fill took. */
  prepareSeconds: Record<string, Record<string, number>>;
  /** contender → workload → counters per operation, each operation alone. */
  probes: Record<string, Record<string, ProbeResult>>;
  profiles: Array<{ contender: string; workload: string; result: ProfileResult }>;
  /** Load average (1 min) of the machine when the run started and ended. */
  load?: { start: number; end: number };
  recovery?: RecoveryResult;
  totalSeconds?: number;
  /** `BENCH_NOTE`: what the reader must know about the conditions of this run. */
  note?: string;
}

const INCOHERENT = ['memory', 'memjs', 'redis'] as const;

/** One figure per round of a contender in a workload (NaN where the round failed or the figure is missing). */
function perRound(r: BenchResults, workload: string, contender: string, f: (x: RoundResult) => number | undefined): number[] {
  return (r.rounds[workload]?.[contender] ?? []).map((x) => (x ? (f(x) ?? Number.NaN) : Number.NaN));
}

/** Ratios inside each round of `f` between two contenders of a workload. */
function inRound(r: BenchResults, workload: string, of: string, base: string, f: (x: RoundResult) => number | undefined): number[] {
  const a = perRound(r, workload, of, f);
  const b = perRound(r, workload, base, f);
  return ratiosInRound(a, b, (x) => x);
}

const throughput = (x: RoundResult): number => x.opsPerSecond;
const flushP50 = (x: RoundResult): number | undefined => x.timedP50;
const hitRatio = (x: RoundResult): number => (x.reads > 0 ? x.hits / x.reads : Number.NaN);
const label = (r: BenchResults, key: string): string => r.contenders.find((c) => c.key === key)?.label ?? key;

/** One line of a target table: the criterion, the figure per round, and the bound it must meet. */
interface Criterion {
  readonly what: string;
  /** One value per round (ratios taken inside the round), or undefined when not measured. */
  readonly values: number[] | undefined;
  readonly format: (x: number) => string;
  /** The bound; undefined for a figure shown for information only. */
  readonly meets?: (x: number) => boolean;
  readonly note?: string;
  /** Counted once per run (not per round). */
  readonly once?: boolean;
}

function verdict(c: Criterion): string {
  const finite = (c.values ?? []).filter((x) => Number.isFinite(x));
  if (finite.length === 0) return '— (not measured in this run)';
  const meets = c.meets;
  if (!meets) return '— (information)';
  const word = meets(median(finite)) ? '**met**' : '**not met**';
  return c.once ? word : `${word} (${finite.filter(meets).length} of ${finite.length} rounds)`;
}

function targetTable(title: string, goal: string, criteria: readonly Criterion[]): string[] {
  const lines = [`### ${title}`, '', goal, '', '| criterion | measured: median (min–max over rounds) | verdict |', '| --- | --- | --- |'];
  for (const c of criteria) {
    const measured = !c.values ? '—' : c.once ? `${c.format(c.values[0] as number)} (counted once)` : withRange(c.values, c.format);
    lines.push(`| ${c.what} | ${measured}${c.note ? `; ${c.note}` : ''} | ${verdict(c)} |`);
  }
  lines.push('');
  return lines;
}

/** A figure counted once per run (the probes), as a criterion's values. */
const counted = (x: number | undefined): Pick<Criterion, 'values' | 'once'> => ({ values: x === undefined ? undefined : [x], once: true });

function targets(r: BenchResults): string[] {
  const out: string[] = ['## Targets (issue 15)', ''];
  out.push(
    'Each criterion is judged on the median over rounds of a figure taken inside each round (a ratio: both contenders of that round); the count says in how many rounds it held on its own. Round trips are counted one operation at a time from the store\'s counters (see "Where the time goes"), once per run.',
    '',
  );
  // Write-through: the mixed workload.
  const worstHitGap = (): number[] | undefined => {
    const xa = perRound(r, 'mixed', 'xa', hitRatio);
    if (xa.length === 0) return undefined;
    const others = INCOHERENT.map((k) => perRound(r, 'mixed', k, hitRatio)).filter((s) => s.length > 0);
    if (others.length === 0) return undefined;
    return xa.map((x, i) => Math.max(...others.map((o) => (o[i] ?? Number.NaN) - x)));
  };
  const stale = r.rounds.mixed?.xa ? perRound(r, 'mixed', 'xa', (x) => x.staleReads) : undefined;
  out.push(
    ...targetTable('Write-through', 'Mixed 95/5 Zipf at 32 in flight: hot rows stay hits after writes, and no read is stale.', [
      { what: 'throughput ≥ 0.9x the naive memjs adapter', values: r.rounds.mixed?.memjs ? inRound(r, 'mixed', 'xa', 'memjs', throughput) : undefined, format: fmt.ratio, meets: (x) => x >= 0.9 },
      { what: '0 stale reads (every read checked)', values: stale, format: (x) => fmt.rate(x), meets: (x) => x === 0, note: stale ? `${fmt.rate(sum(stale))} in all rounds of ${fmt.rate(sum(perRound(r, 'mixed', 'xa', (x) => x.reads)))} reads` : undefined },
      { what: 'hit ratio within 5 points of the incoherent adapters\' (points below the best of them in the round)', values: worstHitGap(), format: (x) => (x * 100).toFixed(1), meets: (x) => x <= 0.05 },
    ]),
  );
  const pkTrips = r.probes.xa?.pk?.all?.roundTrips;
  const pk2Trips = r.probes.xa2?.pk?.all?.roundTrips;
  out.push(
    ...targetTable('PK hit: one key, one round trip, one server', '`findOne(Book, id)` of a cached row at 32 in flight.', [
      { what: '≥ 1.3x naive memjs', values: r.rounds.pk?.memjs ? inRound(r, 'pk', 'xa', 'memjs', throughput) : undefined, format: fmt.ratio, meets: (x) => x >= 1.3 },
      { what: '≥ 0.8x MemoryCacheAdapter', values: r.rounds.pk?.memory ? inRound(r, 'pk', 'xa', 'memory', throughput) : undefined, format: fmt.ratio, meets: (x) => x >= 0.8 },
      { what: 'two memcached servers ≥ 0.97x one', values: r.rounds.pk?.xa2 ? inRound(r, 'pk', 'xa2', 'xa', throughput) : undefined, format: fmt.ratio, meets: (x) => x >= 0.97 },
      { what: 'memcached round trips per hit, one server: 1', ...counted(pkTrips), format: fmt.two, meets: (x) => x <= 1.0001 },
      { what: 'memcached round trips per hit, two servers: 1', ...counted(pk2Trips), format: fmt.two, meets: (x) => x <= 1.0001 },
    ]),
  );
  const memoryRatio50 = r.rounds.collection50?.memory ? inRound(r, 'collection50', 'memory', 'none', throughput) : undefined;
  out.push(
    ...targetTable('Collections', "`findOneOrFail(Author, id, { populate: ['books'] })` at 32 in flight.", [
      {
        what: "collection of 50 ≥ MemoryCacheAdapter's ratio to no cache (xa-cache / MemoryCacheAdapter in the round)",
        values: r.rounds.collection50?.memory ? inRound(r, 'collection50', 'xa', 'memory', throughput) : undefined,
        format: fmt.ratio,
        meets: (x) => x >= 1,
        note: `xa-cache ${withRange(inRound(r, 'collection50', 'xa', 'none', throughput), fmt.ratio)} no cache, MemoryCacheAdapter ${memoryRatio50 ? withRange(memoryRatio50, fmt.ratio) : '—'}`,
      },
      { what: 'collection of 500 ≥ 1.5x no cache', values: r.rounds.collection500?.xa ? inRound(r, 'collection500', 'xa', 'none', throughput) : undefined, format: fmt.ratio, meets: (x) => x >= 1.5 },
      { what: 'collection of 50 in ≤ 2 memcached round trips', ...counted(r.probes.xa?.collection50?.all?.roundTrips), format: fmt.two, meets: (x) => x <= 2.0001 },
      { what: 'collection of 500 in ≤ 2 memcached round trips', ...counted(r.probes.xa?.collection500?.all?.roundTrips), format: fmt.two, meets: (x) => x <= 2.0001 },
    ]),
  );
  out.push(
    ...targetTable('Commits', 'Flush of 10 books at 1 in flight, the flush alone timed (p50 of each round).', [
      { what: 'flush p50 ≤ 1.2x no cache', values: r.rounds.flush10?.xa ? inRound(r, 'flush10', 'xa', 'none', flushP50) : undefined, format: fmt.ratio, meets: (x) => x <= 1.2 },
      {
        what: 'memcached round trips per commit (flush alone; constant in the number of rows: see "Write capture" for 1 to 1,000)',
        ...counted(r.probes.xa?.flush10?.timed?.roundTrips),
        format: fmt.two,
      },
    ]),
  );
  out.push(
    '### Herd and codec',
    '',
    'Not measured by `npm run bench`. **Herd: met**, a count rather than a speed, asserted by `spec/mikro-orm/herd.spec.ts` in every test run: 100 concurrent cold reads of one row, one 1:m collection, one m:n collection and one query result each cost at most 2 SELECTs, through one ORM and split over two ORMs (processes sharing memcached). **Codec**: measured by hand: JSON for values it round-trips exactly, V8 for the rest (section "Value codec" below).',
    '',
  );
  return out;
}

/** "x (in round)" of a contender against no cache and xa-cache against it, for the headline figure. */
function workloadTable(r: BenchResults, w: WorkloadSpec): string[] {
  const byContender = r.rounds[w.key] ?? {};
  const keys = r.contenders.map((c) => c.key).filter((k) => byContender[k]);
  const timed = w.headline === 'timedP50';
  const lines: string[] = [];
  if (timed) {
    lines.push(
      '| contender | flush p50 ms | flush p99 ms | tx/s | flush p50 vs no cache | SQL/op (+ log) | cache calls/op | memcached round trips/op | failed |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
  } else if (w.key === 'mixed') {
    lines.push(
      '| contender | ops/s | vs no cache | xa-cache vs it | read p50 ms | write p50 ms | hit ratio | stale reads (all rounds) | writes | memcached round trips/op | failed |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
  } else {
    lines.push(
      '| contender | ops/s | vs no cache | xa-cache vs it | p50 ms | p99 ms | SQL/op | cache calls/op | memcached round trips/op | failed |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
  }
  for (const k of keys) {
    const rs = (byContender[k] ?? []).filter((x): x is RoundResult => !!x);
    const name = k === 'xa' ? '**xa-cache**' : label(r, k);
    const f = (g: (x: RoundResult) => number | undefined, format: (x: number) => string): string => withRange(perRound(r, w.key, k, g), format);
    const per = (counter: string): string => (k === 'none' && counter !== 'sql' ? '—' : f((x) => x.perOp[counter], fmt.two));
    const trips = k === 'none' || k === 'memory' ? '—' : k === 'redis' ? `${per('roundTrips') === '—' ? per('cache') : per('roundTrips')} (redis)` : per('roundTrips');
    const failed = sum(rs.map((x) => x.errors));
    const failedCell = `${failed}${failed ? ` of ${fmt.rate(failed + sum(rs.map((x) => x.ops)))}` : ''}`;
    const vsNone = k === 'none' ? '1.00x' : withRange(inRound(r, w.key, k, 'none', timed ? flushP50 : throughput), fmt.ratio);
    const xaVs = k === 'xa' ? '1.00x' : byContender.xa ? withRange(inRound(r, w.key, 'xa', k, throughput), fmt.ratio) : '—';
    if (timed) {
      const log = k.startsWith('xa') ? ` + ${f((x) => x.perOp.sqlLog, fmt.two)} log` : '';
      lines.push(`| ${name} | ${f(flushP50, fmt.ms)} | ${f((x) => x.timedP99, fmt.ms)} | ${f(throughput, fmt.rate)} | ${vsNone} | ${f((x) => x.perOp.sql, fmt.two)}${log} | ${per('cache')} | ${trips} | ${failedCell} |`);
    } else if (w.key === 'mixed') {
      const staleReads = sum(rs.map((x) => x.staleReads));
      const reads = sum(rs.map((x) => x.reads));
      lines.push(
        `| ${name} | ${f(throughput, fmt.rate)} | ${vsNone} | ${xaVs} | ${f((x) => x.readP50, fmt.ms)} | ${f((x) => x.writeP50, fmt.ms)} | ${f(hitRatio, fmt.pct)} | **${fmt.rate(staleReads)}** of ${fmt.rate(reads)} (${fmt.pct(reads ? staleReads / reads : Number.NaN)}) | ${fmt.rate(sum(rs.map((x) => x.writes)))} | ${trips} | ${failedCell} |`,
      );
    } else {
      lines.push(`| ${name} | ${f(throughput, fmt.rate)} | ${vsNone} | ${xaVs} | ${f((x) => x.p50, fmt.ms)} | ${f((x) => x.p99, fmt.ms)} | ${f((x) => x.perOp.sql, fmt.two)} | ${per('cache')} | ${trips} | ${failedCell} |`);
    }
  }
  return lines;
}

/** The profile section: CPU per operation and this library's own share of it, then the round trips per operation. */
function whereTheTimeGoes(r: BenchResults): string[] {
  const out: string[] = ['## Where the time goes (generated)', ''];
  if (r.profiles.length > 0) {
    out.push(
      `CPU: each line is ${r.config.profileSeconds} s of one workload in the contender's own process (its cache already filled) under the V8 sampling profiler (\`node:inspector\`, 1 ms interval, started and stopped around the measured window; \`bench/cpu-profile.ts\` sorts samples by the script they fell in). "Client CPU per operation" is the busy (non-idle) share of the samples times the window over the operations; "xa-cache's own" is the self time of \`dist/lib\` (store, protocol, MikroORM integration): the cache path itself, without the MikroORM and driver work it calls.`,
      '',
      '| contender | workload | in flight | ops/s under the profiler | client CPU per operation | xa-cache\'s own (share of CPU) | MikroORM | pg | memjs | GC | idle |',
      '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const p of r.profiles) {
      const share = (pred: (area: string) => boolean): number => sum(p.result.digest.byArea.filter((a) => pred(a.frame)).map((a) => a.share));
      const idle = share((a) => a.startsWith('idle'));
      const busy = 1 - idle;
      const cpuUs = (busy * p.result.seconds * 1e6) / Math.max(1, p.result.ops);
      const own = share((a) => a.startsWith('xa-cache'));
      const pctOfBusy = (x: number): string => fmt.pct(busy > 0 ? x / busy : Number.NaN);
      out.push(
        `| ${label(r, p.contender)} | ${r.workloads.find((w) => w.key === p.workload)?.title ?? p.workload} | ${p.result.inFlight} | ${fmt.rate(p.result.opsPerSecond)} | ${cpuUs.toFixed(1)} µs | ${p.contender.startsWith('xa') ? `${((own / Math.max(busy, 1e-9)) * cpuUs).toFixed(1)} µs (${pctOfBusy(own)})` : '—'} | ${pctOfBusy(share((a) => a.startsWith('MikroORM')))} | ${pctOfBusy(share((a) => a === 'pg driver'))} | ${pctOfBusy(share((a) => a === 'memjs'))} | ${pctOfBusy(share((a) => a === 'GC'))} | ${fmt.pct(idle)} |`,
      );
    }
    out.push('', 'Shares of MikroORM, pg, memjs and GC are of the busy samples; idle is of all samples (time waiting for the servers).', '');
    const hit = r.profiles.find((p) => p.contender === 'xa' && p.workload === 'pk');
    if (hit) {
      out.push('Hit path (xa-cache, primary-key hit): this library\'s functions by inclusive time (self + what they call, waiting excluded), share of all samples:', '', '| function | layer | inclusive |', '| --- | --- | ---: |');
      for (const f of hit.result.digest.topInclusiveLib.slice(0, 10)) out.push(`| \`${f.frame}\` | ${f.area} | ${fmt.pct(f.share)} |`);
      out.push('', 'Top frames by self time:', '', '| frame | layer | self |', '| --- | --- | ---: |');
      for (const f of hit.result.digest.topSelf.slice(0, 10)) out.push(`| \`${f.frame}\` | ${f.area} | ${fmt.pct(f.share)} |`);
      out.push('');
    }
  }
  const probed = Object.keys(r.probes);
  if (probed.length > 0) {
    out.push(
      `Round trips: ${r.config.probeOps} operations of each workload run one at a time after the rounds, each contender's counters read around every operation, so nothing else shares its batches. For xa-cache the figures are its store's own counters (\`store.counters\`: \`roundTrips\` = batches written to a server socket, one per server per call; \`requests\` = memcached requests in them; "store calls" = \`get\`/\`execute\` calls); for the result-cache adapters every \`get\`/\`set\` is one round trip. "flush" is the flush alone of the write workload.`,
      '',
      '| contender | workload | operation | memcached round trips | memcached requests | store calls | SQL statements (onQuery) |',
      '| --- | --- | --- | ---: | ---: | ---: | ---: |',
    );
    for (const c of probed) {
      for (const [w, byKind] of Object.entries(r.probes[c] ?? {})) {
        for (const kind of ['all', 'read', 'write', 'timed']) {
          const v = byKind[kind];
          if (!v || (kind === 'write' && w === 'flush10')) continue;
          const what = kind === 'all' ? (w === 'mixed' ? 'any (95/5)' : w === 'flush10' ? 'load + flush' : 'read') : kind === 'timed' ? 'flush' : kind;
          out.push(`| ${label(r, c)} | ${r.workloads.find((x) => x.key === w)?.title ?? w} | ${what} | ${fmt.two(v.roundTrips ?? Number.NaN)} | ${v.requests === undefined ? '—' : fmt.two(v.requests)} | ${fmt.two(v.cache ?? Number.NaN)} | ${fmt.two(v.sql ?? Number.NaN)}${v.sqlLog ? ` + ${fmt.two(v.sqlLog)} log` : ''} |`);
        }
      }
    }
    out.push('');
  }
  return out;
}

/** The SVG panels: the headline figure of each workload (median over rounds). */
function chartPanels(r: BenchResults): ChartPanel[] {
  return r.workloads
    .filter((w) => r.rounds[w.key])
    .map((w) => ({
      title: w.headline === 'timedP50' ? `${w.title}: flush p50 ms (lower is better)` : `${w.title} (ops/s, ${w.inFlight} in flight)`,
      bars: r.contenders.filter((c) => r.rounds[w.key]?.[c.key]).map((c) => ({ label: c.label, value: median(perRound(r, w.key, c.key, w.headline === 'timedP50' ? flushP50 : throughput)), highlight: c.key === 'xa' })),
    }));
}

/** Writes benchmarks.md and benchmarks.svg into `dir`; returns the paths written. */
export function writeReport(r: BenchResults, dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  const e = r.environment;
  const c = r.config;
  const md: string[] = [];
  md.push('# Benchmarks', '');
  md.push(
    `Generated by \`npm run bench\` (\`bench/run.ts\`${c.quick ? ' with `--quick`: a harness check, not figures to quote' : ''}) on ${e.date.slice(0, 10)} in ${Math.round(r.totalSeconds ?? 0)} s, library at commit ${e.commit}. Every figure of this part was measured in that one run; sections generated by other scripts say so.`,
    '',
  );
  if (r.note) md.push(`**Note on this run.** ${r.note}`, '');
  md.push('![Headline figure per contender](benchmarks.svg)', '');
  md.push('## Method', '');
  md.push(
    `- Each contender runs in a child process of its own (\`bench/suite-runner.ts\`), on its own copy of one seeded database and its own cache namespace; no two contenders ever run at the same time. Every workload is filled once per contender before the first round (every key read once).`,
    `- ${c.rounds} interleaved rounds: in each round every workload runs once for every contender, in an order rotated by one per round, ${c.seconds} s measured after ${c.warmup} s unmeasured (the mixed workload ${c.mixedSeconds} s). Figures are the **median over rounds with the min–max in brackets**; a ratio is taken **inside each round** (both contenders of that round), then summarised the same way.`,
    `- "N in flight" = N concurrent async loops in the contender's process, each running one operation after another with a fresh \`em.fork()\`. p50/p99 are exact percentiles over every operation of the round.`,
    `- Machine: ${e.cpu}, ${e.cores} cores, ${e.memoryGb} GiB, ${e.os}, **shared**: PostgreSQL, memcached, redis, the contenders and other people's work all ran on these cores${r.load ? ` (load average ${r.load.start.toFixed(1)} at the start, ${r.load.end.toFixed(1)} at the end)` : ''}. Node.js ${e.node}; PostgreSQL ${e.postgres} (fsync off); ${e.memcached}; ${e.redis === 'not installed' ? 'redis: not installed' : e.redis.replace(/ sha=.*$/, '')}. Packages: ${Object.entries(e.packages).map(([k, v]) => `${k} ${v}`).join(', ')}.`,
    `- Data: ${fmt.rate(c.books)} books, ${fmt.rate(c.books / c.booksPerAuthor)} authors of ${c.booksPerAuthor} books and ${c.largeAuthors} of ${c.largeAuthorBooks}, 10 publishers, 20 tags, one review per book. Throwaway memcached servers (64 MiB, 2 threads; a second one only for "xa-cache, 2 memcached"), PostgreSQL pool of ${c.pool} per ORM.`,
    '- "SQL/op" counts statements through MikroORM\'s `onQuery` (BEGIN/COMMIT not included; "+ log" is xa-cache\'s log statement, sent on the transaction\'s connection). "cache calls/op": adapter `get`/`set` calls, or xa-cache\'s store calls. "memcached round trips/op" at 32 in flight is lower than one operation alone needs when concurrent calls share a batch; the per-operation counts are in "Where the time goes".',
    '',
  );
  md.push('Contenders:', '');
  for (const x of r.contenders) md.push(`- **${x.label}**: ${x.description}.${r.unavailable[x.key] ? ` **Skipped in this run: ${r.unavailable[x.key]}.**` : ''}`);
  md.push('');
  md.push(...targets(r));
  for (const w of r.workloads) {
    if (!r.rounds[w.key] && !r.failures[w.key]) continue;
    md.push(`## ${w.title}`, '', `Operation: ${w.operation}; ${w.inFlight} in flight.`, '');
    md.push(...workloadTable(r, w));
    const failures = Object.entries(r.failures[w.key] ?? {});
    if (failures.length > 0) md.push('', 'Failures:', '', ...failures.map(([k, m]) => `- ${label(r, k)}: \`${m.replace(/`/g, "'").slice(0, 300)}\``));
    md.push('');
  }
  if (r.recovery) {
    const rec = r.recovery;
    md.push('## Recovery', '');
    md.push(
      `${fmt.rate(rec.transactions)} in-doubt transactions (each: 3 row keys and 1 of 50 regions locked, its log row inserted, the database transaction committed, never promoted: a process that died right after COMMIT), created through the protocol (\`spec/support/protocol-fixture.ts\`) in ${rec.createSeconds.toFixed(1)} s. One sweeper (\`XaCache.sweep\`, batches of 500, \`minAgeMs: 0\`), measured once:`,
      '',
      '| in doubt | resolved | keys resolved | batches | sweep time | per 1,000 transactions | left in the log |',
      '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      `| ${fmt.rate(rec.transactions)} | ${fmt.rate(rec.resolved)} | ${fmt.rate(rec.keys)} | ${rec.batches} | ${rec.sweepSeconds.toFixed(2)} s | ${((rec.sweepSeconds / Math.max(1, rec.transactions)) * 1e6).toFixed(0)} ms | ${rec.leftInLog} |`,
      '',
    );
  }
  md.push(...whereTheTimeGoes(r));
  // Hand-kept notes (analysis.md: what the figures show; outside-latency.md: `node dist/bench/outside-latency.js`).
  for (const notes of ['bench/analysis.md', 'bench/outside-latency.md']) {
    if (existsSync(notes)) md.push(readFileSync(notes, 'utf8').trim(), '');
  }
  const mdPath = join(dir, 'benchmarks.md');
  let doc = `${md.join('\n').replace(/\n{3,}/g, '\n\n')}\n`;
  // Sections other scripts (or hand runs) wrote stay as they were measured.
  const previous = existsSync(mdPath) ? readFileSync(mdPath, 'utf8') : '';
  for (const heading of KEPT_SECTIONS) {
    const kept = sectionOf(previous, heading);
    if (kept) doc = spliceSection(doc, kept);
  }
  writeFileSync(mdPath, doc);
  const svgPath = join(dir, 'benchmarks.svg');
  writeFileSync(svgPath, barChartSvg('mikro-orm-xa-cache benchmarks: median over rounds per contender', `${e.date.slice(0, 10)}, ${e.cpu}, ${e.cores} shared cores, Node ${e.node}; each contender in its own process (xa-cache in orange)`, chartPanels(r)));
  return [mdPath, svgPath];
}


