import type * as PromClient from 'prom-client';
import type { CacheOperation, ObservedAttributes } from '../protocol/cache-observer.js';
import { COUNTERS, REGION_COUNTERS } from './prometheus-text.js';
import type { XaCacheRuntime } from './xa-cache-runtime.js';

/** Options of {@link registerXaCacheMetrics}. */
export interface XaCacheMetricsOptions {
  /** The registry to register into; default prom-client's global `register`. */
  readonly registry?: PromClient.Registry;
  /** Histogram buckets in seconds; default from 100 µs to 2.5 s (memcached round trips are sub-millisecond). */
  readonly buckets?: readonly number[];
}

/** What {@link registerXaCacheMetrics} registered; `unregister` removes the metrics and the timing hook. */
export interface XaCacheMetrics {
  readonly names: readonly string[];
  unregister(): void;
}

const DEFAULT_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * Registers the cache's metrics into an application's prom-client registry (prom-client is an optional peer
 * dependency): the same counters as `runtime.metrics()` — the protocol's, per region, the store's, the sweeper's,
 * the in-doubt log rows — read at scrape time by `collect()` callbacks, so the hot path is unchanged; and latency
 * histograms, fed by a timing observer (`CacheStats.observe`) that costs one flag check per operation when absent:
 *
 * - `xa_cache_read_duration_seconds{outcome="hit|miss|partial"}`: one multi-key read (the lease round included);
 * - `xa_cache_fill_duration_seconds{outcome="stored|refused|error"}`;
 * - `xa_cache_phase_duration_seconds{phase="prepare|promote|release",outcome}`;
 * - `xa_cache_commit_overhead_seconds`: prepare + promote of one committed transaction;
 * - `xa_cache_sweep_duration_seconds{outcome}`.
 *
 * Registering twice into one registry throws (prom-client refuses duplicate names): use one registry per ORM.
 */
export async function registerXaCacheMetrics(runtime: XaCacheRuntime, options: XaCacheMetricsOptions = {}): Promise<XaCacheMetrics> {
  const prom = (await import('prom-client')) as typeof PromClient;
  const registry = options.registry ?? prom.register;
  const registers = [registry];
  const buckets = [...(options.buckets ?? DEFAULT_BUCKETS)];
  const stats = runtime.cache.stats;
  const store = runtime.cache.store.counters;
  const names: string[] = [];
  const counter = (name: string, help: string, labelNames: string[], read: (c: PromClient.Counter<string>) => void): void => {
    names.push(name);
    new prom.Counter({
      name,
      help,
      labelNames,
      registers,
      collect() {
        // Mirrors counters kept elsewhere: reset, then add the current totals (Counter has no set()).
        this.reset();
        read(this);
      },
    });
  };
  const gauge = (name: string, help: string, labelNames: string[], read: (g: PromClient.Gauge<string>) => void | Promise<void>): void => {
    names.push(name);
    new prom.Gauge({ name, help, labelNames, registers, collect() { this.reset(); return read(this); } });
  };

  for (const [field, help] of Object.entries(COUNTERS)) {
    counter(`xa_cache_${snake(field)}_total`, help, [], (c) => c.inc((stats as unknown as Record<string, number>)[field] ?? 0));
  }
  counter('xa_cache_errors_total', 'Store errors seen by the protocol, by kind.', ['kind'], (c) => {
    for (const [kind, n] of Object.entries(stats.errors)) c.inc({ kind }, n);
  });
  for (const field of REGION_COUNTERS) {
    counter(`xa_cache_region_${snake(field)}_total`, `Per region label: ${COUNTERS[field] ?? field}`, ['region'], (c) => {
      for (const [region, counters] of stats.regions()) if (counters[field] > 0) c.inc({ region }, counters[field]);
    });
  }
  counter('xa_cache_store_requests_total', 'memcached requests sent.', [], (c) => c.inc(store.requests));
  counter('xa_cache_store_hashed_keys_total', 'Keys hashed because they were too long or held forbidden bytes.', [], (c) => c.inc(store.hashedKeys));
  counter('xa_cache_store_errors_total', 'memcached operations that ended in an error, by error class.', ['error'], (c) => {
    for (const [error, n] of Object.entries(store.errors)) c.inc({ error }, n);
  });
  counter('xa_cache_sweeps_total', 'Recovery sweeps run by this process.', [], (c) => c.inc(runtime.sweeper.sweeps));
  counter('xa_cache_sweep_failures_total', 'Recovery sweeps that failed.', [], (c) => c.inc(runtime.sweeper.failures));
  counter('xa_cache_sweep_resolved_total', 'Log rows resolved by sweeps of this process.', [], (c) => c.inc(runtime.sweeper.resolved));
  counter('xa_cache_sweep_unresolved_total', 'Log rows sweeps of this process left unresolved.', [], (c) => c.inc(runtime.sweeper.unresolved));
  gauge('xa_cache_pending_log_deletes', 'Promoted transactions whose log rows wait for lazy deletion.', [], (g) => g.set(runtime.cache.pendingLogDeletes));
  gauge('xa_cache_in_doubt_transactions', `Transaction log rows older than ${runtime.minAgeMs} ms, by database outcome.`, ['outcome'], async (g) => {
    try {
      for (const [outcome, n] of Object.entries((await runtime.inDoubt()).byOutcome)) g.set({ outcome }, n);
    } catch {
      // The database is unreachable: no sample, so the scrape still answers (as runtime.metrics() does).
    }
  });

  const histogram = (name: string, help: string, labelNames: string[]): PromClient.Histogram<string> => {
    names.push(name);
    return new prom.Histogram({ name, help, labelNames, buckets, registers });
  };
  const read = histogram('xa_cache_read_duration_seconds', 'Cache reads (one multi-key read, lease round included), by outcome.', ['outcome']);
  const fill = histogram('xa_cache_fill_duration_seconds', 'Fills after a miss, by outcome.', ['outcome']);
  const phase = histogram('xa_cache_phase_duration_seconds', 'Protocol phases around COMMIT, by phase and outcome.', ['phase', 'outcome']);
  const overhead = histogram('xa_cache_commit_overhead_seconds', 'What the cache added to one committed transaction: prepare + promote.', []);
  const sweep = histogram('xa_cache_sweep_duration_seconds', 'Recovery sweeps, by outcome.', ['outcome']);
  const remove = stats.observe({
    start(operation: CacheOperation) {
      const started = performance.now();
      return (result: ObservedAttributes) => {
        const seconds = (performance.now() - started) / 1000;
        const outcome = String(result.outcome ?? 'ok');
        if (operation === 'read') read.observe({ outcome }, seconds);
        else if (operation === 'fill') fill.observe({ outcome }, seconds);
        else if (operation === 'sweep') sweep.observe({ outcome }, seconds);
        else {
          phase.observe({ phase: operation, outcome }, seconds);
          if (operation === 'promote') overhead.observe(seconds + Number(result.prepare_ms ?? 0) / 1000);
        }
      };
    },
  });
  return {
    names,
    unregister() {
      remove();
      for (const name of names) registry.removeSingleMetric(name);
    },
  };
}

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
