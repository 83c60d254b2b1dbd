import { chownSync, mkdtempSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';

const execFileAsync = promisify(execFile);
import { freePort } from './free-port.js';
import { isRoot, requireBinary, runAsPostgres } from './binaries.js';
import { onProcessExit } from './exit-cleanup.js';

/**
 * A throwaway PostgreSQL cluster: `initdb` into a temporary directory, started with `pg_ctl` on a free port with
 * fsync off. As root, both run as the `postgres` user, which owns the data directory.
 */
export class PostgresCluster {
  #stopped = false;

  private constructor(
    readonly dataDir: string,
    readonly port: number,
  ) {}

  /** Creates and starts a cluster; resolves when it accepts connections. */
  static async start(): Promise<PostgresCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'xa-cache-pg-'));
    if (isRoot()) {
      const { uid, gid } = postgresIds();
      chownSync(dir, uid, gid);
    }
    const port = await freePort();
    const cluster = new PostgresCluster(dir, port);
    runAsPostgres(requireBinary('initdb'), ['-D', join(dir, 'data'), '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync', '--no-instructions']);
    cluster.#pgCtl('start');
    onProcessExit(() => cluster.#stopNow());
    return cluster;
  }

  #pgCtl(action: 'start' | 'stop'): void {
    if (action === 'start') pgCtlStart(this.dataDir, this.port);
    else pgCtlStop(this.dataDir);
  }

  /**
   * Starts a streaming replica of this cluster: `pg_basebackup -R -X stream` into a temporary directory, then
   * `pg_ctl start` on a free port with `hot_standby=on`. Resolves when it accepts read-only connections.
   * Stopped on process exit like the primary.
   */
  async startReplica(): Promise<PostgresReplica> {
    if (this.#stopped) throw new Error('the primary cluster is stopped');
    return PostgresReplica.start(this);
  }

  /** Connection URL of the `postgres` database. */
  get url(): string {
    return this.urlFor('postgres');
  }

  /** Connection URL of another database in this cluster. */
  urlFor(database: string): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  #stopNow(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    try {
      this.#pgCtl('stop');
    } catch {
      // already gone
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /**
   * `pg_ctl stop -m fast` then `pg_ctl start` on the same port and data: every connection is closed (a fast
   * shutdown rolls back open transactions), committed data stays. Resolves when it accepts connections again.
   */
  async restart(): Promise<void> {
    if (this.#stopped) throw new Error('the cluster is stopped');
    // Asynchronously, unlike start/stop: the clients in this process keep running through the restart.
    const pgCtl = requireBinary('pg_ctl');
    const run = (args: string[]): Promise<unknown> =>
      isRoot() ? execFileAsync('runuser', ['-u', 'postgres', '--', pgCtl, ...args], { cwd: '/tmp' }) : execFileAsync(pgCtl, args);
    await run(['restart', '-D', join(this.dataDir, 'data'), '-m', 'fast', '-w', '-t', '60', '-l', join(this.dataDir, 'server.log')]);
  }

  /** Stops the server and removes its files. */
  async stop(): Promise<void> {
    this.#stopNow();
  }
}

/**
 * A streaming replica (hot standby) of a {@link PostgresCluster}, made by `pg_basebackup -R -X stream`. Its
 * replay can be paused, so a test can be certain it lags behind a commit on the primary.
 */
export class PostgresReplica {
  #stopped = false;
  readonly #unregister: () => void;

  private constructor(
    readonly primary: PostgresCluster,
    readonly dataDir: string,
    readonly port: number,
  ) {
    this.#unregister = onProcessExit(() => this.#stopNow());
  }

  /** @internal use {@link PostgresCluster.startReplica}. */
  static async start(primary: PostgresCluster): Promise<PostgresReplica> {
    const dir = mkdtempSync(join(tmpdir(), 'xa-cache-pg-replica-'));
    if (isRoot()) {
      const { uid, gid } = postgresIds();
      chownSync(dir, uid, gid);
    }
    const port = await freePort();
    const replica = new PostgresReplica(primary, dir, port);
    try {
      runAsPostgres(requireBinary('pg_basebackup'), ['-D', join(dir, 'data'), '-R', '-X', 'stream', '-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres', '--checkpoint=fast', '--no-sync']);
      pgCtlStart(dir, port, ['-c hot_standby=on']);
    } catch (error) {
      replica.#stopNow();
      throw error;
    }
    return replica;
  }

  /** Connection URL of the `postgres` database on the replica. */
  get url(): string {
    return this.urlFor('postgres');
  }

  /** Connection URL of another database on the replica (databases are those of the primary). */
  urlFor(database: string): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  /** Pauses WAL replay (`pg_wal_replay_pause()`); resolves once replay has actually stopped. */
  async pauseReplay(): Promise<void> {
    await withClient(this.url, async (client) => {
      await client.query('SELECT pg_wal_replay_pause()');
      for (let i = 0; i < 500; i++) {
        const { rows } = await client.query<{ state: string }>('SELECT pg_get_wal_replay_pause_state() AS state');
        if (rows[0]?.state === 'paused') return;
        await sleep(10);
      }
      throw new Error('WAL replay on the replica did not pause within 5 s');
    });
  }

  /** Resumes WAL replay (`pg_wal_replay_resume()`). */
  async resumeReplay(): Promise<void> {
    await withClient(this.url, (client) => client.query('SELECT pg_wal_replay_resume()'));
  }

  /** Whether the replica's replay is paused. */
  async isReplayPaused(): Promise<boolean> {
    return withClient(this.url, async (client) => (await client.query<{ paused: boolean }>('SELECT pg_is_wal_replay_paused() AS paused')).rows[0]?.paused === true);
  }

  /**
   * Resolves once the replica has replayed everything the primary had committed when this was called
   * (`pg_last_wal_replay_lsn()` of the replica reaches the primary's WAL position, taken first); rejects after
   * `timeoutMs`. Replay must not be paused.
   */
  async waitForReplay(timeoutMs = 15_000): Promise<void> {
    const target = await withClient(this.primary.url, async (client) => {
      // The harness runs with synchronous_commit=off, so recent commits may still sit in WAL buffers, which are not
      // streamed. A synchronously committed transaction that writes WAL flushes them (one that only takes an xid,
      // like txid_current(), commits asynchronously anyway): then the flush position covers them all.
      await client.query('SET synchronous_commit = on');
      await client.query("SELECT pg_logical_emit_message(true, 'xa-cache-harness', 'flush')");
      return (await client.query<{ lsn: string }>('SELECT pg_current_wal_flush_lsn()::text AS lsn')).rows[0]?.lsn;
    });
    if (!target) throw new Error('could not read the primary WAL position');
    await withClient(this.url, async (client) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const { rows } = await client.query<{ caught_up: boolean | null; replayed: string | null }>(
          'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS caught_up, pg_last_wal_replay_lsn()::text AS replayed',
          [target],
        );
        if (rows[0]?.caught_up) return;
        if (Date.now() > deadline) throw new Error(`the replica did not replay up to ${target} within ${timeoutMs} ms (at ${rows[0]?.replayed ?? 'nothing'})`);
        await sleep(20);
      }
    });
  }

  #stopNow(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    try {
      pgCtlStop(this.dataDir);
    } catch {
      // never started, or already gone
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** Stops the replica and removes its files (the primary keeps running). */
  async stop(): Promise<void> {
    this.#stopNow();
    this.#unregister();
  }
}

/** `pg_ctl start` of the cluster in `<dir>/data`, on `port`, with the harness settings (plus `extra`). */
function pgCtlStart(dir: string, port: number, extra: string[] = []): void {
  const options = [
    `-p ${port}`,
    `-k ${dir}`,
    "-c listen_addresses=127.0.0.1",
    '-c fsync=off',
    '-c synchronous_commit=off',
    '-c full_page_writes=off',
    // A hot standby needs at least the primary's max_connections (and max_wal_senders etc.): keep them equal.
    '-c max_connections=300',
    '-c wal_level=replica',
    '-c max_wal_senders=4',
    ...extra,
  ].join(' ');
  try {
    runAsPostgres(requireBinary('pg_ctl'), ['start', '-D', join(dir, 'data'), '-w', '-t', '60', '-l', join(dir, 'server.log'), '-o', options]);
  } catch (error) {
    const log = existsSync(join(dir, 'server.log')) ? readFileSync(join(dir, 'server.log'), 'utf8') : '';
    throw new Error(`pg_ctl start failed: ${String(error)}\n${log}`);
  }
}

function pgCtlStop(dir: string): void {
  runAsPostgres(requireBinary('pg_ctl'), ['stop', '-D', join(dir, 'data'), '-m', 'immediate', '-w']);
}

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function postgresIds(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root needs a "postgres" user to own the PostgreSQL data directory (apt-get install -y postgresql creates it)');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** Creates a fresh database (dropping one of the same name) and returns its URL. */
export async function createDatabase(adminUrl: string, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await client.query(`CREATE DATABASE "${name}"`);
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * Terminates PostgreSQL backends of a database (all but the caller's own), as `pg_terminate_backend` does when an
 * operator kills a session or a connection is lost. Returns how many were terminated.
 */
export async function terminateBackends(url: string, filter: { applicationName?: string } = {}): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const params: unknown[] = [];
    let where = 'datname = current_database() AND pid <> pg_backend_pid()';
    if (filter.applicationName !== undefined) {
      params.push(filter.applicationName);
      where += ` AND application_name = $${params.length}`;
    }
    const result = await client.query(`SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE ${where}`, params);
    return result.rows.filter((r: { ok: boolean }) => r.ok).length;
  } finally {
    await client.end();
  }
}
