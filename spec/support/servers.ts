import { MemcachedProcess, type MemcachedOptions } from './memcached-process.js';
import { PostgresCluster, createDatabase } from './postgres-cluster.js';

/** What {@link startServers} should provide. */
export interface ServerRequest {
  /** How many memcached servers. Default 1. */
  memcached?: number;
  /** Options for each memcached the harness starts. */
  memcachedOptions?: MemcachedOptions;
  /** Whether a PostgreSQL database is needed. Default true. */
  postgres?: boolean;
  /** Ignore `DATABASE_URL` / `MEMCACHED_SERVERS` and always start owned servers (fault tests need to kill them). */
  owned?: boolean;
}

/**
 * Servers for tests, the demo and the benchmarks: throwaway ones started from the installed binaries, or the
 * ones named by `DATABASE_URL` and `MEMCACHED_SERVERS` (comma-separated `host:port`).
 */
export class Servers {
  private constructor(
    /** `host:port` of each memcached. */
    readonly memcachedAddresses: string[],
    /** Owned memcached processes, in the order of `memcachedAddresses` (empty when given by the environment). */
    readonly memcached: MemcachedProcess[],
    /** URL of the PostgreSQL database to use, if one was asked for. */
    readonly databaseUrl: string | undefined,
    /** The owned PostgreSQL cluster, if the harness started one. */
    readonly postgres: PostgresCluster | undefined,
  ) {}

  static async start(request: ServerRequest = {}): Promise<Servers> {
    const count = request.memcached ?? 1;
    let addresses: string[] = [];
    const processes: MemcachedProcess[] = [];
    const fromEnv = !request.owned && process.env.MEMCACHED_SERVERS;
    if (fromEnv) {
      addresses = fromEnv.split(',').map((s) => s.trim()).filter(Boolean).slice(0, Math.max(count, 1));
    } else {
      const started = await Promise.all(Array.from({ length: count }, () => MemcachedProcess.start(request.memcachedOptions)));
      processes.push(...started);
      addresses = started.map((p) => p.address);
    }
    let databaseUrl: string | undefined;
    let cluster: PostgresCluster | undefined;
    if (request.postgres ?? true) {
      if (!request.owned && process.env.DATABASE_URL) {
        databaseUrl = process.env.DATABASE_URL;
      } else {
        cluster = await PostgresCluster.start();
        databaseUrl = await createDatabase(cluster.url, 'xa_cache');
      }
    }
    return new Servers(addresses, processes, databaseUrl, cluster);
  }

  /** The database URL, or an error saying that none was requested. */
  get db(): string {
    if (!this.databaseUrl) throw new Error('no PostgreSQL was requested from the harness');
    return this.databaseUrl;
  }

  /** Stops whatever the harness started. */
  async stop(): Promise<void> {
    await Promise.all(this.memcached.map((m) => m.stop()));
    await this.postgres?.stop();
  }
}
