import type pg from 'pg';
import { MemcachedStore } from '../store/memcached-store.js';
import { XaCache } from '../protocol/xa-cache.js';
import { readDataIdentity } from '../protocol/data-identity.js';
import type { SqlRunner } from '../protocol/sql-runner.js';
import type { CliConfig } from './cli-config.js';
import { CliError, describe } from './cli-errors.js';
import { openDatabase } from './cli-database.js';
import { authFailure, type AuthFailure } from './memcached-auth.js';

/**
 * The connections of one command: a small pg pool and a memcached store in the application's namespace, and an
 * {@link XaCache} over them with the application's log table (the same protocol code the application runs).
 */
export class CliSession {
  private constructor(
    readonly config: CliConfig,
    readonly pool: pg.Pool,
    readonly store: MemcachedStore,
    readonly cache: XaCache,
  ) {}

  /** Opens and checks the database (reachable, log table present); memcached is checked by {@link probeMemcached}. */
  static async open(config: CliConfig, connectTimeoutMs: number, options: { needLogTable?: boolean } = {}): Promise<CliSession> {
    const pool = await openDatabase(config, connectTimeoutMs);
    const store = new MemcachedStore({ timeoutMs: 1000, connectTimeoutMs: connectTimeoutMs, retryAfterMs: 0, ...config.store, servers: config.memcached, namespace: config.namespace });
    let cache: XaCache;
    try {
      // The application's secrets, so its authenticated entries read as what they are and not as foreign bytes.
      const sealing = config.secrets.length > 0 ? { secrets: config.secrets, encryptValues: config.encryptValues } : {};
      cache = new XaCache(store, { logTable: config.logTable, logNamespace: config.namespace, ...sealing });
    } catch (error) {
      await Promise.all([store.close(), pool.end()]);
      throw CliError.config(describe(error));
    }
    // The application's keys are scoped to its database's identity (see data-identity.ts): so are ours, or the
    // sweeper would miss every key and the inspector read every value as foreign.
    try {
      const identity = await readDataIdentity(pool);
      store.scopeTo(identity);
      cache.scopeTo(identity);
    } catch (error) {
      await Promise.all([store.close(), pool.end()]);
      throw CliError.unreachableDatabase(config.dbLabel, error);
    }
    const session = new CliSession(config, pool, store, cache);
    if (options.needLogTable ?? true) {
      const { rows } = await pool.query('SELECT to_regclass($1) IS NOT NULL AS present', [config.logTable]);
      if (!(rows[0] as { present: boolean }).present) {
        await session.close();
        throw CliError.noLogTable(config.logTable, config.dbLabel);
      }
    }
    return session;
  }

  get db(): SqlRunner {
    return this.pool;
  }

  /**
   * Probes each memcached server with a get of a key that maps to it: those that answer, those that do not, and
   * those that answered by refusing authentication (not counted as unreachable).
   */
  async probeMemcached(): Promise<{ reachable: string[]; unreachable: string[]; authFailed: Map<string, AuthFailure>; rttMs: Map<string, number> }> {
    const keyFor = new Map<string, string>();
    for (let i = 0; keyFor.size < this.config.memcached.length && i < 10_000; i++) {
      const key = `cli-probe:${i}`;
      const server = this.store.serverFor(key);
      if (!keyFor.has(server)) keyFor.set(server, key);
    }
    const rttMs = new Map<string, number>();
    const unreachable: string[] = [];
    const reachable: string[] = [];
    const authFailed = new Map<string, AuthFailure>();
    await Promise.all(
      [...keyFor].map(async ([server, key]) => {
        const started = performance.now();
        const result = await this.store.get(key);
        const refused = result.status === 'error' ? authFailure(result.error) : undefined;
        if (refused) authFailed.set(server, refused);
        else if (result.status === 'error') unreachable.push(server);
        else {
          reachable.push(server);
          rttMs.set(server, performance.now() - started);
        }
      }),
    );
    return { reachable: reachable.sort(), unreachable: unreachable.sort(), authFailed, rttMs };
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.store.close(), this.pool.end()]);
  }
}
