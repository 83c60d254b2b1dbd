import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { MemcachedStore } from '../../lib/store/memcached-store.js';
import type { MemcachedStoreOptions } from '../../lib/store/memcached-store-options.js';
import { XaCache } from '../../lib/protocol/xa-cache.js';
import { readDataIdentity } from '../../lib/protocol/data-identity.js';
import type { ProtocolOptions } from '../../lib/protocol/protocol-options.js';
import type { CacheTransaction } from '../../lib/protocol/cache-transaction.js';

/**
 * One "process" of the protocol for tests: an XaCache over its own store connections and its own pool, with a
 * namespace of its own so tests never see each other's keys, and a `kv` table to read and write.
 */
export class ProtocolFixture {
  private constructor(
    readonly cache: XaCache,
    readonly store: MemcachedStore,
    readonly pool: pg.Pool,
    readonly table: string,
  ) {}

  static async create(
    servers: readonly string[],
    databaseUrl: string,
    options: {
      protocol?: ProtocolOptions;
      store?: Partial<MemcachedStoreOptions>;
      namespace?: string;
      table?: string;
      logTable?: string;
      /** Scope keys and entries to the database's identity, as the MikroORM layer (and the CLI) do. */
      scopeToDatabase?: boolean;
    } = {},
  ): Promise<ProtocolFixture> {
    const namespace = options.namespace ?? `t${randomUUID().slice(0, 8)}`;
    const store = new MemcachedStore({ servers, namespace, ...options.store });
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 20 });
    const table = options.table ?? `kv_${namespace}`;
    const cache = new XaCache(store, { logTable: options.logTable ?? `log_${namespace}`, ...options.protocol });
    if (options.scopeToDatabase) {
      const identity = await readDataIdentity(pool);
      store.scopeTo(identity);
      cache.scopeTo(identity);
    }
    await cache.ensureLogTable(pool);
    await pool.query(`CREATE TABLE IF NOT EXISTS ${table} (id int PRIMARY KEY, v int NOT NULL, token text NOT NULL)`);
    return new ProtocolFixture(cache, store, pool, table);
  }

  /** Another process over the same namespace, table and log: its own connections. */
  async sibling(servers: readonly string[], databaseUrl: string, protocol: ProtocolOptions = {}): Promise<ProtocolFixture> {
    return ProtocolFixture.create(servers, databaseUrl, {
      namespace: this.namespace,
      table: this.table,
      logTable: this.cache.options.logTable,
      protocol,
    });
  }

  get namespace(): string {
    return this.table.slice(3);
  }

  /** Seeds rows `id -> v` with version 1. */
  async seed(ids: number[]): Promise<void> {
    for (const id of ids) await this.pool.query(`INSERT INTO ${this.table} (id, v, token) VALUES ($1, 1, 'seed') ON CONFLICT (id) DO UPDATE SET v = 1, token = 'seed'`, [id]);
  }

  /** Reads a row straight from the database. */
  async dbRow(id: number): Promise<{ v: number; token: string }> {
    const { rows } = await this.pool.query(`SELECT v, token FROM ${this.table} WHERE id = $1`, [id]);
    return rows[0] as { v: number; token: string };
  }

  /** Read-through of a row by key `kv:<id>`. */
  async read(id: number, loadDelayMs = 0): Promise<{ v: number; token: string }> {
    const payload = await this.cache.reader.fetch(`kv:${id}`, async () => {
      const row = await this.dbRow(id);
      // A slow database answer widens the window between the read and the fill, where stale fills happen.
      if (loadDelayMs > 0) await new Promise((r) => setTimeout(r, loadDelayMs));
      return Buffer.from(JSON.stringify(row));
    });
    return JSON.parse((payload as Buffer).toString()) as { v: number; token: string };
  }

  /**
   * Runs a writing transaction on rows, step by step: `at` is awaited at each phase so tests can interleave
   * readers, kill processes or stop.
   */
  async write(
    ids: number[],
    options: { rollback?: boolean; token?: string; putValues?: boolean; regions?: string[]; at?: (phase: 'updated' | 'prepared' | 'committed', tx: CacheTransaction) => Promise<void> | void } = {},
  ): Promise<{ token: string; versions: Map<number, number>; tx: CacheTransaction }> {
    const token = options.token ?? randomUUID();
    const client = await this.pool.connect();
    const tx = this.cache.begin();
    const versions = new Map<number, number>();
    try {
      await client.query('BEGIN');
      for (const id of ids) {
        const { rows } = await client.query(`UPDATE ${this.table} SET v = v + 1, token = $2 WHERE id = $1 RETURNING v`, [id, token]);
        const v = (rows[0] as { v: number }).v;
        versions.set(id, v);
        if (options.putValues) tx.put(`kv:${id}`, Buffer.from(JSON.stringify({ v, token })));
        else tx.invalidate([`kv:${id}`]);
      }
      tx.touchRegions(options.regions ?? []);
      await options.at?.('updated', tx);
      await tx.prepare(client);
      await options.at?.('prepared', tx);
      if (options.rollback) {
        await client.query('ROLLBACK');
        await tx.release();
      } else {
        await client.query('COMMIT');
        await options.at?.('committed', tx);
        await tx.promote();
      }
      return { token, versions, tx };
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      await tx.release().catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  /**
   * A transaction that touches cache keys only (no row of its own), prepared and waiting for the test to commit
   * or roll it back: it models a second writer of the same keys without row-lock waits between the two.
   */
  async prepared(keys: string[], put?: Buffer): Promise<{ tx: CacheTransaction; commit(): Promise<void>; rollback(): Promise<void> }> {
    const client = await this.pool.connect();
    const tx = this.cache.begin();
    if (put) for (const key of keys) tx.put(key, put);
    else tx.invalidate(keys);
    await client.query('BEGIN');
    await tx.prepare(client);
    return {
      tx,
      commit: async () => {
        await client.query('COMMIT');
        client.release();
        await tx.promote();
      },
      rollback: async () => {
        await client.query('ROLLBACK');
        client.release();
        await tx.release();
      },
    };
  }

  async close(): Promise<void> {
    await this.store.close();
    await this.pool.end();
  }
}
