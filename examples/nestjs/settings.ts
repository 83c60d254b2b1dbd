/** What the example application needs to know about its surroundings. */
export interface ExampleSettings {
  /** PostgreSQL connection URL. */
  readonly databaseUrl: string;
  /** memcached servers, `host:port` each. */
  readonly memcachedServers: readonly string[];
  /** Prefix of the cache's keys (default the library's); instances sharing a cache must share it. */
  readonly namespace?: string;
  /** Recovery sweep interval in milliseconds (default 30000). */
  readonly sweepIntervalMs?: number;
}

/** Reads `DATABASE_URL` and `MEMCACHED_SERVERS` (comma-separated `host:port`); throws naming what is missing. */
export function settingsFromEnv(env: NodeJS.ProcessEnv = process.env): ExampleSettings {
  const databaseUrl = env.DATABASE_URL;
  const memcachedServers = (env.MEMCACHED_SERVERS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const missing = [...(databaseUrl ? [] : ['DATABASE_URL (postgres://user@host:5432/db)']), ...(memcachedServers.length > 0 ? [] : ['MEMCACHED_SERVERS (host:port,host:port)'])];
  if (!databaseUrl || missing.length > 0) throw new Error(`examples/nestjs: set ${missing.join(' and ')}`);
  return { databaseUrl, memcachedServers, ...(env.XA_CACHE_NAMESPACE ? { namespace: env.XA_CACHE_NAMESPACE } : {}) };
}
