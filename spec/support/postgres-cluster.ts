import { chownSync, mkdtempSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
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
    const data = join(this.dataDir, 'data');
    if (action === 'start') {
      const options = [
        `-p ${this.port}`,
        `-k ${this.dataDir}`,
        "-c listen_addresses=127.0.0.1",
        '-c fsync=off',
        '-c synchronous_commit=off',
        '-c full_page_writes=off',
        '-c max_connections=300',
        '-c wal_level=replica',
        '-c max_wal_senders=4',
      ].join(' ');
      try {
        runAsPostgres(requireBinary('pg_ctl'), ['start', '-D', data, '-w', '-t', '60', '-l', join(this.dataDir, 'server.log'), '-o', options]);
      } catch (error) {
        const log = existsSync(join(this.dataDir, 'server.log')) ? readFileSync(join(this.dataDir, 'server.log'), 'utf8') : '';
        throw new Error(`pg_ctl start failed: ${String(error)}\n${log}`);
      }
    } else {
      runAsPostgres(requireBinary('pg_ctl'), ['stop', '-D', data, '-m', 'immediate', '-w']);
    }
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

  /** Stops the server and removes its files. */
  async stop(): Promise<void> {
    this.#stopNow();
  }
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
