/**
 * Operating the cache: the startup (and periodic) recovery sweep, statistics with their Prometheus export and a
 * small metrics endpoint, and logging through MikroORM's logger. Imports `../protocol`, `../store` types and the
 * XA driver of `../mikro-orm`; the command-line tool (`../cli`) is built on it.
 *
 * @packageDocumentation
 */
export { startXaCache, type StartXaCacheOptions } from './start-xa-cache.js';
export { OutsideChangesFollower, type FollowerOptions } from './outside-changes-follower.js';
export type { OutsideFeedHealth } from './feed-health.js';
export { XaCacheRuntime, type RuntimeSweepOptions } from './xa-cache-runtime.js';
export { prometheusText, parsePrometheusText, type MetricsSource, type SweeperCounters, type PrometheusSample } from './prometheus-text.js';
export { serveMetrics, type MetricsProvider, type MetricsServer, type MetricsServerOptions } from './metrics-server.js';
export { countInDoubt, type InDoubtCounts } from './in-doubt-counts.js';
export { ormProtocolLogger, XA_CACHE_LOG_NAMESPACE } from '../mikro-orm/orm-protocol-logger.js';
export { OperationsError } from './operations-error.js';
export { registerXaCacheMetrics, type XaCacheMetrics, type XaCacheMetricsOptions } from './prom-client-metrics.js';
export { traceXaCache, type XaCacheTracingOptions } from './open-telemetry.js';
