import type { CacheStats, RegionStats } from '../protocol/cache-stats.js';
import type { StoreCounters } from '../store/cache-store.js';
import type { InDoubtCounts } from './in-doubt-counts.js';
import type { OutsideFeedHealth } from './feed-health.js';

/** What the recovery sweeper of a process has done so far. */
export interface SweeperCounters {
  /** Sweeps run (startup and periodic). */
  readonly sweeps: number;
  /** Sweeps that failed (database unreachable, …). */
  readonly failures: number;
  /** Log rows resolved, and left unresolved (some key unreachable), summed over all sweeps. */
  readonly resolved: number;
  readonly unresolved: number;
  /** When the last sweep ended (ms since the epoch), if any did. */
  readonly lastSweepAt: number | undefined;
}

/** Everything {@link prometheusText} can export; only `stats` is required. */
export interface MetricsSource {
  readonly stats: CacheStats;
  readonly store?: StoreCounters;
  readonly inDoubt?: InDoubtCounts;
  readonly sweeper?: SweeperCounters;
  /** Promoted transactions whose log rows wait for deletion. */
  readonly pendingLogDeletes?: number;
  /** The outside-changes feed as this process sees it. */
  readonly outsideFeed?: OutsideFeedHealth;
}

/** HELP text of each protocol counter; the metric is `xa_cache_<snake_case>_total` (also used by prom-client-metrics.ts). */
export const COUNTERS: Record<string, string> = {
  hits: 'Reads served from the cache.',
  misses: 'Reads not served from the cache.',
  puts: 'Values stored by readers after a miss.',
  lockBypasses: 'Misses because a transaction held the key (read the database, no fill).',
  leaseWaits: "Times a reader waited for another reader's fill lease.",
  lockWaits: "Times a reader waited for a writer's promote.",
  staleFillsRefused: 'Fills refused because the key changed after the lease was taken.',
  foreignEntries: 'Entries whose bytes were not ours (foreign, corrupt, truncated), read as misses.',
  forgedEntries: 'Entries refused because their authentication failed (forged, copied from another key, undecryptable).',
  keyMismatches: 'Entries not written for the key they were read under (copied, or naming other data): misses.',
  undecodablePayloads: 'Values whose payload did not decode: misses, replaced by the next fill.',
  searchPathBypasses: 'Reads sent to the database because the schema of their unqualified tables was not known (search_path).',
  staleResults: 'Values found under a region generation that is no longer current.',
  prepares: 'Write transactions prepared (keys locked, log row written).',
  promotes: 'Committed transactions promoted.',
  releases: 'Rolled-back transactions released.',
  evictions: 'Keys evicted by promote or the sweeper.',
  unresolvedKeys: 'Keys a promote or release could not reach (left to lock expiry and the sweeper).',
  degradedCommits: 'Transactions committed under the degrade policy with keys that could not be locked.',
  capturedKeys: 'Keys and regions only the database-side write capture named (triggers, cascades, Kysely, functions).',
  outsideChanges: 'Captured changes of outside writers applied as invalidations.',
  sweptTransactions: 'Log rows resolved by the recovery sweeper.',
  serversUnreachableAtStart: 'memcached servers that did not answer the startup probe of startXaCache.',
};

export const REGION_COUNTERS: ReadonlyArray<keyof RegionStats> = ['hits', 'misses', 'puts', 'lockBypasses', 'leaseWaits', 'staleFillsRefused'];

/**
 * The counters in Prometheus' text exposition format (version 0.0.4), every metric prefixed `xa_cache_`.
 * `labels` are added to every sample (for example `{ instance_role: 'api' }`).
 */
export function prometheusText(source: MetricsSource, labels: Readonly<Record<string, string>> = {}): string {
  const out = new MetricWriter(labels);
  const { stats } = source;
  for (const [field, help] of Object.entries(COUNTERS)) {
    const value = (stats as unknown as Record<string, unknown>)[field];
    if (typeof value === 'number') out.metric(`xa_cache_${snake(field)}_total`, 'counter', help, [[{}, value]]);
  }
  out.metric('xa_cache_errors_total', 'counter', 'Store errors met by the protocol, by kind.', Object.entries(stats.errors).map(([kind, n]) => [{ kind }, n]));
  const regions = [...stats.regions()];
  for (const field of REGION_COUNTERS) {
    out.metric(`xa_cache_region_${snake(field)}_total`, 'counter', `${COUNTERS[field]} Per region (rows:<table> entities, coll:<table> collections, t:<table> query results).`, regions.map(([region, counters]) => [{ region }, counters[field]]));
  }
  if (source.store) {
    const store = source.store;
    out.metric('xa_cache_store_round_trips_total', 'counter', 'Batches written to memcached sockets.', [[{}, store.roundTrips]]);
    out.metric('xa_cache_store_requests_total', 'counter', 'memcached requests sent.', [[{}, store.requests]]);
    out.metric('xa_cache_store_stalls_total', 'counter', 'Deadlines extended because this process\'s event loop was stalled, not the server slow.', [[{}, store.stalls ?? 0]]);
    out.metric('xa_cache_store_hashed_keys_total', 'counter', 'Keys hashed because they were too long or held forbidden bytes.', [[{}, store.hashedKeys]]);
    out.metric('xa_cache_store_errors_total', 'counter', 'memcached operations that ended in an error, by error class.', Object.entries(store.errors).map(([error, n]) => [{ error }, n]));
  }
  if (source.pendingLogDeletes !== undefined) {
    out.metric('xa_cache_pending_log_deletes', 'gauge', 'Promoted transactions whose log rows wait for lazy deletion.', [[{}, source.pendingLogDeletes]]);
  }
  if (source.inDoubt) {
    const d = source.inDoubt;
    out.metric('xa_cache_in_doubt_transactions', 'gauge', `Transaction log rows older than ${d.minAgeMs} ms, by database outcome.`, Object.entries(d.byOutcome).map(([outcome, n]) => [{ outcome }, n]));
    out.metric('xa_cache_in_doubt_oldest_age_seconds', 'gauge', 'Age of the oldest in-doubt log row (database clock).', [[{}, d.oldestAgeMs / 1000]]);
  }
  if (source.sweeper) {
    const s = source.sweeper;
    out.metric('xa_cache_sweeps_total', 'counter', 'Recovery sweeps run by this process.', [[{}, s.sweeps]]);
    out.metric('xa_cache_sweep_failures_total', 'counter', 'Recovery sweeps that failed.', [[{}, s.failures]]);
    out.metric('xa_cache_sweep_resolved_total', 'counter', 'Log rows resolved by sweeps of this process.', [[{}, s.resolved]]);
    out.metric('xa_cache_sweep_unresolved_total', 'counter', 'Log rows sweeps of this process left unresolved.', [[{}, s.unresolved]]);
    if (s.lastSweepAt !== undefined) out.metric('xa_cache_last_sweep_timestamp_seconds', 'gauge', 'When the last sweep ended.', [[{}, s.lastSweepAt / 1000]]);
  }
  if (source.outsideFeed) outsideFeedMetrics(out, source.outsideFeed);
  return out.text();
}

function outsideFeedMetrics(out: MetricWriter, f: OutsideFeedHealth): void {
  out.metric('xa_cache_outside_feed_leader', 'gauge', 'Whether this process is the elected follower of outside changes (1) or not (0).', [[{}, f.leading ? 1 : 0]]);
  if (f.lagMs !== undefined) out.metric('xa_cache_outside_feed_lag_seconds', 'gauge', 'Age of the oldest committed outside change not applied yet, at the last check (database clock); 0: none.', [[{}, f.lagMs / 1000]]);
  out.metric('xa_cache_outside_feed_suspended', 'gauge', 'Whether the cache stopped serving because the outside-changes feed is down (1) or serves (0).', [[{}, f.suspended === undefined ? 0 : 1]]);
  out.metric('xa_cache_outside_feed_suspensions_total', 'counter', 'Times serving stopped because the outside-changes feed was down.', [[{}, f.suspensions]]);
  out.metric('xa_cache_outside_feed_errors_total', 'counter', 'Outside-changes apply runs and feed checks that failed.', [[{}, f.errors]]);
  out.metric('xa_cache_outside_feed_renewals_total', 'counter', 'Times every cached table was renewed because outside changes may have been missed.', [[{}, f.renewals]]);
  if (f.lastSuccessAt !== undefined) out.metric('xa_cache_outside_feed_last_success_timestamp_seconds', 'gauge', 'When this process last applied outside changes without error.', [[{}, f.lastSuccessAt / 1000]]);
  if (f.lastCheckAt !== undefined) out.metric('xa_cache_outside_feed_last_check_timestamp_seconds', 'gauge', 'When this process last read the feed without error.', [[{}, f.lastCheckAt / 1000]]);
  if (f.lastError !== undefined) out.metric('xa_cache_outside_feed_last_error_info', 'gauge', 'The last error of the outside-changes feed, until a run succeeds.', [[{ error: f.lastError.slice(0, 200) }, 1]]);
}

type Sample = [Readonly<Record<string, string>>, number];

class MetricWriter {
  readonly #lines: string[] = [];
  constructor(private readonly common: Readonly<Record<string, string>>) {}

  metric(name: string, type: 'counter' | 'gauge', help: string, samples: readonly Sample[]): void {
    this.#lines.push(`# HELP ${name} ${help.replaceAll('\\', '\\\\').replaceAll('\n', '\\n')}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) this.#lines.push(`${name}${labelSet({ ...this.common, ...labels })} ${formatValue(value)}`);
  }

  text(): string {
    return `${this.#lines.join('\n')}\n`;
  }
}

function labelSet(labels: Record<string, string>): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${v.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n')}"`);
  return pairs.length === 0 ? '' : `{${pairs.join(',')}}`;
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? '+Inf' : '-Inf';
  return String(value);
}

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** One sample parsed from the text format. */
export interface PrometheusSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses the samples of a text exposition (what {@link prometheusText} writes); comments and blank lines are skipped. */
export function parsePrometheusText(text: string): PrometheusSample[] {
  const samples: PrometheusSample[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?\s*$/.exec(line.trim());
    if (!match || line.startsWith('#')) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1] as string] = (pair[2] as string).replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c));
    }
    const raw = match[4] as string;
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    samples.push({ name: match[1] as string, labels, value });
  }
  return samples;
}
