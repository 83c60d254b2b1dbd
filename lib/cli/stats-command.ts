import { FOLLOWER_HELD_SQL } from '../operations/follower-lease.js';
import { countInDoubt, type InDoubtCounts } from '../operations/in-doubt-counts.js';
import { parsePrometheusText, type PrometheusSample } from '../operations/prometheus-text.js';
import type { CommandOptions } from './command-options.js';
import { CliError, EXIT, describe } from './cli-errors.js';
import type { CliOutput } from './cli-output.js';
import type { CliSession } from './cli-session.js';
import { memcachedStats, type MemcachedServerStats } from './memcached-stats.js';
import { formatAge, formatCount, textTable } from './text-table.js';

/**
 * `stats --url`: reads a running application's counters from its metrics endpoint (`serveMetrics`, or any route
 * answering `runtime.metrics()`). Exit 4 when the endpoint cannot be read.
 */
export async function statsFromUrl(url: string, options: CommandOptions, io: CliOutput): Promise<number> {
  const timeoutMs = options.connectTimeoutMs;
  let text: string;
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (!response.ok) throw new Error(`HTTP ${response.status} ${response.statusText}`);
    text = await response.text();
  } catch (error) {
    throw new CliError(`cannot read metrics from ${url}: ${describe(error)}`, EXIT.unreachable, 'is the application running with serveMetrics() (or a /metrics route answering runtime.metrics())?');
  }
  const samples = parsePrometheusText(text).filter((s) => s.name.startsWith('xa_cache_'));
  if (samples.length === 0) throw new CliError(`${url} answered, but with no xa_cache_ metrics`, EXIT.failed, 'is this the metrics endpoint of an application using mikro-orm-xa-cache?');
  const value = (name: string): number => samples.filter((s) => s.name === name).reduce((sum, s) => sum + s.value, 0);
  const hits = value('xa_cache_hits_total');
  const misses = value('xa_cache_misses_total');
  if (options.json) {
    io.out(JSON.stringify({ source: url, hitRatio: hits + misses > 0 ? hits / (hits + misses) : null, samples }, null, 2));
    return EXIT.ok;
  }
  io.out(`Counters of the application at ${url}`);
  io.out(`hit ratio ${hits + misses > 0 ? `${((hits / (hits + misses)) * 100).toFixed(1)}%` : '-'} (${formatCount(hits)} hits, ${formatCount(misses)} misses)\n`);
  const plain = samples.filter((s) => !s.name.startsWith('xa_cache_region_'));
  io.out(textTable(['METRIC', 'LABELS', 'VALUE'], plain.map((s) => [s.name.replace(/^xa_cache_/, ''), labelText(s), formatValue(s)])));
  const regions = regionRows(samples);
  if (regions.length > 0) {
    io.out('\nPer region (rows:<table> entities, coll:<table> collections, t:<table> query results)');
    io.out(textTable(['REGION', 'HITS', 'MISSES', 'HIT RATIO', 'PUTS', 'LOCK BYPASSES', 'LEASE WAITS', 'STALE FILLS REFUSED'], regions));
  }
  return EXIT.ok;
}

/**
 * `stats` without `--url`: a one-off probe from outside the application. Each memcached server's reachability,
 * round trip and its own `stats` (items, memory, evictions), and the in-doubt rows of the log. Exit 4 when a
 * memcached server does not answer.
 */
export async function statsProbe(session: CliSession, options: CommandOptions, io: CliOutput): Promise<number> {
  const { minAgeMs, connectTimeoutMs: timeoutMs } = options;
  const [probe, inDoubt, young] = await Promise.all([
    session.probeMemcached(),
    countInDoubt(session.db, session.config.logTable, minAgeMs),
    session.pool.query(`SELECT count(*)::int AS n FROM ${session.config.logTable}`).then((r) => (r.rows[0] as { n: number }).n),
  ]);
  const feed = await outsideFeed(session);
  const servers = await Promise.all(session.config.memcached.map((s) => memcachedStats(s, timeoutMs)));
  const { config } = session;
  if (options.json) {
    io.out(
      JSON.stringify(
        {
          source: 'probe',
          namespace: config.namespace,
          memcached: servers.map((s) => ({ ...s, reachable: !probe.unreachable.includes(s.server), rttMs: round(probe.rttMs.get(s.server)) })),
          log: { table: config.logTable, database: config.dbLabel, inDoubt, younger: young - inDoubt.total },
          outsideFeed: feed,
        },
        null,
        2,
      ),
    );
  } else {
    io.out(`memcached (namespace "${config.namespace}"; items, memory and evictions are server-wide)`);
    io.out(textTable(['SERVER', 'REACHABLE', 'RTT', 'ITEMS', 'MEMORY', 'EVICTIONS', 'SERVER HIT RATIO', 'UPTIME', 'VERSION'], servers.map((s) => serverRow(s, probe.unreachable, probe.rttMs))));
    io.out(`\ntransaction log ${config.logTable} in ${config.dbLabel}`);
    io.out(inDoubtText(inDoubt, young - inDoubt.total));
    io.out(`\noutside changes ${session.cache.capture.table}`);
    io.out(feedText(feed));
    io.out('\nHits, misses, puts and the other protocol counters live in each application process: read them with');
    io.out('  mikro-orm-xa-cache stats --url http://<app>:<port>/metrics   (serveMetrics() or runtime.metrics())');
  }
  return probe.unreachable.length > 0 ? EXIT.unreachable : EXIT.ok;
}

/** The outside-changes feed as the database shows it: pending changes, the oldest's age, whether a follower holds the lock. */
interface FeedProbe {
  readonly present: boolean;
  readonly pending: number;
  readonly lagMs: number;
  readonly followerHeld: boolean;
}

async function outsideFeed(session: CliSession): Promise<FeedProbe> {
  const table = session.cache.capture.table;
  const { rows } = await session.pool.query('SELECT to_regclass($1) IS NOT NULL AS present', [table]);
  if (!(rows[0] as { present: boolean }).present) return { present: false, pending: 0, lagMs: 0, followerHeld: false };
  const [{ oldestAgeMs }, counted, held] = await Promise.all([
    session.cache.capture.feedState(session.db),
    session.pool.query(`SELECT count(*)::int AS n FROM ${table}`),
    session.pool.query(FOLLOWER_HELD_SQL, [table]),
  ]);
  return { present: true, pending: (counted.rows[0] as { n: number }).n, lagMs: Math.round(oldestAgeMs), followerHeld: (held.rows[0] as { held: boolean }).held };
}

function feedText(f: FeedProbe): string {
  if (!f.present) return '  no change table: the write capture is not installed (mikro-orm-xa-cache capture --apply)';
  const lag = f.pending === 0 ? 'nothing waiting' : `${formatCount(f.pending)} change${f.pending === 1 ? '' : 's'} waiting, the oldest ${formatAge(f.lagMs)} old`;
  const follower = f.followerHeld ? 'a follower holds the lock' : 'NO FOLLOWER holds the lock (start the application with startXaCache, or mikro-orm-xa-cache follow)';
  return `  ${lag}; ${follower}`;
}

function inDoubtText(d: InDoubtCounts, younger: number): string {
  const parts = Object.entries(d.byOutcome).filter(([, n]) => n > 0).map(([outcome, n]) => `${n} ${outcome}`);
  return [
    `in doubt (older than ${formatAge(d.minAgeMs)}): ${d.total}${parts.length > 0 ? ` (${parts.join(', ')}), oldest ${formatAge(d.oldestAgeMs)}` : ''}`,
    `younger rows (promotes in flight, awaiting lazy deletion): ${younger}`,
  ].join('\n');
}

function serverRow(s: MemcachedServerStats, unreachable: readonly string[], rtt: ReadonlyMap<string, number>): string[] {
  const up = !unreachable.includes(s.server);
  const ratio = s.getHits !== undefined && s.getMisses !== undefined && s.getHits + s.getMisses > 0 ? `${((s.getHits / (s.getHits + s.getMisses)) * 100).toFixed(1)}%` : '-';
  const mib = (b: number | undefined): string => (b === undefined ? '?' : `${(b / 1048576).toFixed(1)}`);
  return [
    s.server,
    up ? 'yes' : 'NO',
    up ? `${(rtt.get(s.server) ?? 0).toFixed(1)}ms` : '-',
    s.items === undefined ? '-' : formatCount(s.items),
    s.bytes === undefined ? '-' : `${mib(s.bytes)}/${mib(s.limitBytes)} MiB`,
    s.evictions === undefined ? '-' : formatCount(s.evictions),
    ratio,
    s.uptimeSeconds === undefined ? '-' : formatAge(s.uptimeSeconds * 1000),
    s.version ?? (s.error ? `(${s.error})` : '-'),
  ];
}

function regionRows(samples: readonly PrometheusSample[]): string[][] {
  const byRegion = new Map<string, Record<string, number>>();
  for (const s of samples) {
    const m = /^xa_cache_region_(.+)_total$/.exec(s.name);
    const region = s.labels.region;
    if (!m || region === undefined) continue;
    const row = byRegion.get(region) ?? {};
    row[m[1] as string] = s.value;
    byRegion.set(region, row);
  }
  return [...byRegion].sort(([a], [b]) => a.localeCompare(b)).map(([region, r]) => {
    const hits = r.hits ?? 0;
    const misses = r.misses ?? 0;
    const ratio = hits + misses > 0 ? `${((hits / (hits + misses)) * 100).toFixed(1)}%` : '-';
    return [region, formatCount(hits), formatCount(misses), ratio, formatCount(r.puts ?? 0), formatCount(r.lock_bypasses ?? 0), formatCount(r.lease_waits ?? 0), formatCount(r.stale_fills_refused ?? 0)];
  });
}

function labelText(s: PrometheusSample): string {
  const entries = Object.entries(s.labels);
  return entries.length === 0 ? '' : entries.map(([k, v]) => `${k}=${v}`).join(',');
}

function formatValue(s: PrometheusSample): string {
  return Number.isInteger(s.value) ? formatCount(s.value) : s.value.toFixed(3);
}

function round(n: number | undefined): number | undefined {
  return n === undefined ? undefined : Math.round(n * 100) / 100;
}
