import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { sharedServers } from '../support/global-servers.js';
import { Book, openBookstore, seedBookstore, type Bookstore } from '../support/bookstore.js';
import type { XaCacheAdapter } from '../../lib/mikro-orm/xa-cache-adapter.js';
import { startXaCache } from '../../lib/operations/start-xa-cache.js';
import { serveMetrics } from '../../lib/operations/metrics-server.js';
import { MemcachedStore } from '../../lib/store/memcached-store.js';
import { installWriteCapture } from '../../lib/mikro-orm/write-capture-setup.js';
import { CLI, cleanEnv, emptyDir, killWriterMidPromote, runTool } from './cli-harness.js';
import { startSaslMemcached } from './sasl-memcached.js';

const DIST_INDEX = new URL('../../lib/index.js', import.meta.url).href;

describe('the operator tool (mikro-orm-xa-cache)', function () {
  this.timeout(60_000);
  const namespace = `cli${randomUUID().slice(0, 6)}`;
  const logTable = `cli_log_${namespace}`;
  let b: Bookstore;
  let pool: pg.Pool;
  /** Flags naming the shared servers and this suite's namespace and log table. */
  let conn: string[];

  before(async () => {
    const s = sharedServers();
    b = await openBookstore(s.memcachedAddresses, s.db, { namespace, logTable });
    await seedBookstore(b.orm);
    pool = new pg.Pool({ connectionString: s.db, max: 2 });
    // The seed's last log row waits for the next transaction to delete it; delete it now.
    await (b.orm.config.getResultCacheAdapter() as XaCacheAdapter).xa.flushLogDeletes(pool);
    conn = ['--db', s.db, '--memcached', s.memcachedAddresses.join(','), '--namespace', namespace, '--log-table', logTable];
  });
  after(async () => {
    await b.close();
    await pool.end();
  });

  describe('--help, flags and configuration errors', () => {
    it('prints help for the tool and for every command, exit 0', async () => {
      const top = await runTool(['--help']);
      expect(top.code).to.equal(0);
      expect(top.stdout).to.match(/Usage: mikro-orm-xa-cache <command>/).and.match(/inspect/).and.match(/Exit status/);
      for (const command of ['inspect', 'sweep', 'stats', 'capture', 'invalidate', 'follow']) {
        const run = await runTool([command, '--help']);
        expect(run.code, command).to.equal(0);
        expect(run.stdout).to.include(`Usage: mikro-orm-xa-cache ${command}`);
        expect(run.stdout).to.include('--db URL');
      }
      expect((await runTool(['help', 'sweep'])).stdout).to.include('--watch');
    });

    it('follow: --max-lag must exceed --interval (exit 2), and it needs the MikroORM config (exit 3)', async () => {
      const lag = await runTool(['follow', '--interval', '1s', '--max-lag', '500ms', ...conn]);
      expect(lag.code, lag.stderr).to.equal(2);
      expect(lag.stderr).to.include('--max-lag must be longer than --interval');
      const noConfig = await runTool(['follow', '--no-config', ...conn]);
      expect(noConfig.code, noConfig.stderr).to.equal(3);
      expect(noConfig.stderr).to.include('follow needs the MikroORM config');
    });

    it('never prints a password: not the database one, not the memcached SASL one', async () => {
      const env = cleanEnv({ DATABASE_URL: 'postgres://app:db-pa55word-xyz@127.0.0.1:1/shop', MEMCACHED_SERVERS: '127.0.0.1:1', MEMCACHED_USERNAME: 'app', MEMCACHED_PASSWORD: 'mc-pa55word-xyz' });
      for (const command of ['inspect', 'sweep', 'stats']) {
        const run = await runTool([command], { env });
        expect(run.code, command).to.not.equal(0);
        expect(run.stdout + run.stderr, command).to.not.include('pa55word');
      }
    });

    it('refuses unknown commands, unknown flags and bad values with exit 2', async () => {
      const unknown = await runTool(['inspekt']);
      expect(unknown.code).to.equal(2);
      expect(unknown.stderr).to.include('unknown command "inspekt"');
      const flag = await runTool(['inspect', '--bogus']);
      expect(flag.code).to.equal(2);
      expect(flag.stderr).to.include("Unknown option '--bogus'").and.include('inspect --help');
      const duration = await runTool(['sweep', '--min-age', 'soon', ...conn]);
      expect(duration.code).to.equal(2);
      expect(duration.stderr).to.include('--min-age soon is not a duration');
      const count = await runTool(['inspect', '--limit', '0', ...conn]);
      expect(count.code).to.equal(2);
    });

    it('says what is missing when there is no configuration, exit 3', async () => {
      const none = await runTool(['inspect']);
      expect(none.code).to.equal(3);
      expect(none.stderr).to.include('no memcached servers').and.include('--memcached');
      const noDb = await runTool(['inspect', '--memcached', sharedServers().memcachedAddresses[0] as string]);
      expect(noDb.code).to.equal(3);
      expect(noDb.stderr).to.include('no database');
      const missing = await runTool(['inspect', '--config', 'nowhere/mikro-orm.config.js']);
      expect(missing.code).to.equal(3);
      expect(missing.stderr).to.match(/config file .*nowhere\/mikro-orm\.config\.js does not exist/);
      const noTable = await runTool(['inspect', ...conn, '--log-table', 'no_such_log']);
      expect(noTable.code).to.equal(3);
      expect(noTable.stderr).to.include('"no_such_log" does not exist');
    });

    it('says which server it cannot reach, exit 4', async () => {
      const s = sharedServers();
      const db = await runTool(['inspect', '--db', 'postgres://postgres@127.0.0.1:1/nothing', '--memcached', s.memcachedAddresses.join(',')]);
      expect(db.code).to.equal(4);
      expect(db.stderr).to.include('cannot reach PostgreSQL at 127.0.0.1:1/nothing').and.include('ECONNREFUSED');
      const mc = await runTool(['inspect', '--db', s.db, '--memcached', '127.0.0.1:1', '--log-table', logTable]);
      expect(mc.code).to.equal(4);
      expect(mc.stderr).to.include('cannot reach memcached at 127.0.0.1:1');
      const url = await runTool(['stats', '--url', 'http://127.0.0.1:1/metrics']);
      expect(url.code).to.equal(4);
      expect(url.stderr).to.include('cannot read metrics from http://127.0.0.1:1/metrics');
    });

    it('reads the database and memcached from the MikroORM config file, as the MikroORM CLI finds it', async () => {
      const s = sharedServers();
      const dir = emptyDir();
      writeFileSync(
        join(dir, 'mikro-orm.config.mjs'),
        `import { withXaCache } from '${DIST_INDEX}';
export default withXaCache({ entities: [], clientUrl: ${JSON.stringify(s.db)} }, { servers: ${JSON.stringify(s.memcachedAddresses)}, namespace: '${namespace}', logTable: '${logTable}' });\n`,
      );
      const found = await runTool(['inspect', '--json'], { cwd: dir });
      expect(found.code, found.stderr).to.equal(0);
      expect(JSON.parse(found.stdout)).to.include({ namespace, logTable, inDoubt: 0 });
      const named = await runTool(['inspect', '--json', '--config', join(dir, 'mikro-orm.config.mjs')]);
      expect(named.code, named.stderr).to.equal(0);
      const viaEnv = await runTool(['inspect', '--json'], { env: cleanEnv({ MIKRO_ORM_CLI_CONFIG: join(dir, 'mikro-orm.config.mjs') }) });
      expect(JSON.parse(viaEnv.stdout)).to.include({ namespace });
      // flags win over the file
      const overridden = await runTool(['inspect', '--json', '--namespace', 'other'], { cwd: dir });
      expect(JSON.parse(overridden.stdout)).to.include({ namespace: 'other' });
      writeFileSync(join(dir, 'broken.config.mjs'), 'throw new Error("boom");\n');
      const broken = await runTool(['inspect', '--config', 'broken.config.mjs'], { cwd: dir });
      expect(broken.code).to.equal(3);
      expect(broken.stderr).to.include('could not load the MikroORM config').and.include('boom');
    });
  });

  describe('flag values: each bad one is a usage error naming the flag (exit 2), checked before connecting', () => {
    /** Expects exit 2 and a first message line naming `flag`. */
    const usage = (run: { code: number | null; stderr: string }, flag: string, what: string): void => {
      expect(run.code, `${what}: ${run.stderr}`).to.equal(2);
      expect(run.stderr.split('\n')[0], what).to.include(flag);
      expect(run.stderr, what).to.match(/see: mikro-orm-xa-cache \w+ --help/);
    };

    it('a memcached server without a port, from MEMCACHED_SERVERS or --memcached', async () => {
      const db = sharedServers().db;
      usage(await runTool(['inspect'], { env: cleanEnv({ MEMCACHED_SERVERS: 'localhost', DATABASE_URL: db }) }), 'MEMCACHED_SERVERS', 'env');
      usage(await runTool(['inspect', '--db', db, '--memcached', 'localhost']), '--memcached', 'flag');
      usage(await runTool(['sweep', '--db', db, '--memcached', '127.0.0.1:11211,localhost']), '--memcached', 'second of a list');
    });

    it('an invalid namespace', async () => {
      usage(await runTool(['inspect', ...conn, '--namespace', 'a b']), '--namespace', 'space');
      usage(await runTool(['stats', ...conn, '--namespace', 'a:b']), '--namespace', 'colon');
    });

    it('--connect-timeout of 0, negative or not a number', async () => {
      for (const value of ['0', '-1', '-5s', 'soon', '0.2']) usage(await runTool(['inspect', ...conn, '--connect-timeout', value]), '--connect-timeout', value);
      usage(await runTool(['stats', '--url', 'http://127.0.0.1:1/metrics', '--connect-timeout', '0']), '--connect-timeout', 'with --url');
    });

    it('counts beyond a safe bound never reach SQL', async () => {
      for (const value of ['100000000000000000000', '9007199254740993', '1e3', '2.5', '-3']) {
        const run = await runTool(['inspect', ...conn, '--limit', value]);
        usage(run, '--limit', value);
        expect(run.stderr).to.not.include('bigint');
      }
      usage(await runTool(['sweep', ...conn, '--batch-size', '100000000000000000000']), '--batch-size', 'batch size');
    });

    it('a negative --min-age, written with a space or with =', async () => {
      for (const args of [['--min-age', '-5s'], ['--min-age=-5s'], ['--min-age', '-1']]) {
        const run = await runTool(['inspect', ...conn, ...args]);
        usage(run, '--min-age must be a non-negative duration', args.join(' '));
        expect(run.stderr).to.not.include('ambiguous');
      }
      usage(await runTool(['sweep', ...conn, '--min-age', '-5s']), '--min-age must be a non-negative duration', 'sweep');
      // A value given with = is still taken: --min-age=0 works as --min-age 0.
      const zero = await runTool(['inspect', ...conn, '--min-age=0']);
      expect(zero.code, zero.stderr).to.equal(0);
    });

    it('stats --url that is not an http(s) URL', async () => {
      usage(await runTool(['stats', '--url', 'not-a-url']), '--url', 'not a URL');
      usage(await runTool(['stats', '--url', 'ftp://127.0.0.1/metrics']), '--url', 'ftp');
    });

    it('sweep --watch --interval below 100ms', async () => {
      for (const value of ['0', '50ms', '-1s']) usage(await runTool(['sweep', ...conn, '--watch', '--interval', value]), '--interval', value);
    });

    it('--help (or -h) of each command prints that command\'s usage and exits 0, whatever else is on the line', async () => {
      const lines: Record<string, string[]> = {
        inspect: ['inspect', '--help', '--limit', '0'],
        sweep: ['sweep', '--watch', '--interval', '0', '--help'],
        stats: ['stats', '--url', 'not-a-url', '--bogus', '-h'],
      };
      for (const [command, args] of Object.entries(lines)) {
        const run = await runTool(args);
        expect(run.code, `${command}: ${run.stderr}`).to.equal(0);
        expect(run.stdout.startsWith(`Usage: mikro-orm-xa-cache ${command}`), command).to.equal(true);
        expect(run.stdout).to.include('--secrets-env NAME');
        expect(run.stderr).to.equal('');
      }
    });

    it('never prints the tool\'s name twice in one message', async () => {
      const dir = emptyDir();
      // withXaCache refuses an empty server list with its own "mikro-orm-xa-cache: " message.
      writeFileSync(join(dir, 'bad.config.mjs'), `import { withXaCache } from '${DIST_INDEX}';\nexport default withXaCache({ entities: [] }, { servers: [] });\n`);
      const runs = [
        await runTool(['inspect', ...conn, '--log-table', 'bad name']),
        await runTool(['inspect', '--config', 'bad.config.mjs'], { cwd: dir }),
        await runTool(['inspect', ...conn, '--limit', 'x']),
        await runTool(['inspekt']),
      ];
      expect(runs[0]?.code).to.equal(3);
      expect(runs[0]?.stderr).to.include('option "logTable"');
      expect(runs[1]?.code).to.equal(3);
      for (const run of runs) {
        expect(run.stderr).to.match(/^mikro-orm-xa-cache: /);
        expect(run.stderr.match(/mikro-orm-xa-cache:/g), run.stderr).to.have.length(1);
      }
    });
  });

  describe('memcached with SASL', () => {
    let sasl: { address: string; stop: () => void };
    before(async () => {
      sasl = await startSaslMemcached();
    });
    after(() => sasl?.stop());

    it('reports refused credentials and missing ones as authentication failures (exit 3), not as unreachable', async () => {
      const args = ['inspect', '--db', sharedServers().db, '--memcached', sasl.address, '--log-table', logTable, '--namespace', namespace];
      const refused = await runTool(args, { env: cleanEnv({ MEMCACHED_USERNAME: 'app', MEMCACHED_PASSWORD: 'wrong-pa55word-xyz' }) });
      expect(refused.code, refused.stderr).to.equal(3);
      expect(refused.stderr).to.include(`memcached at ${sasl.address} refused the SASL credentials (authentication failed)`).and.include('MEMCACHED_USERNAME');
      expect(refused.stderr).to.not.include('cannot reach').and.not.include('pa55word');
      const missing = await runTool(args);
      expect(missing.code, missing.stderr).to.equal(3);
      expect(missing.stderr).to.include(`memcached at ${sasl.address} requires SASL authentication`).and.not.include('cannot reach');
    });
  });

  describe('against a transaction left in doubt by a killed process', () => {
    it('inspect and sweep report nothing when nothing is in doubt (exit 0)', async () => {
      const inspect = await runTool(['inspect', '--min-age', '0', ...conn]);
      expect(inspect.code, inspect.stderr).to.equal(0);
      expect(inspect.stdout).to.include('Nothing in doubt').and.include(`namespace "${namespace}"`);
      const sweep = await runTool(['sweep', '--min-age', '0', ...conn]);
      expect(sweep.code, sweep.stderr).to.equal(0);
      expect(sweep.stdout).to.include('Nothing to sweep');
    });

    it('inspect shows it (exit 1), sweep resolves it (exit 0), and readers then see the committed value', async () => {
      const title = `renamed ${randomUUID().slice(0, 6)}`;
      // Warm the cache with the old row, so a stale value would show.
      expect((await b.orm.em.fork().findOneOrFail(Book, 3)).title).to.equal('Book 3');
      await killWriterMidPromote({ namespace, logTable, bookId: 3, title });
      const { rows } = await pool.query(`SELECT tx_id::text AS tx_id FROM ${logTable}`);
      expect(rows).to.have.length(1);
      const txId = (rows[0] as { tx_id: string }).tx_id;

      // Younger than the default --min-age (10s): counted, not listed, not "in doubt".
      const young = await runTool(['inspect', ...conn]);
      expect(young.code, young.stderr).to.equal(0);
      expect(young.stdout).to.include('Nothing in doubt (older than 10.0s); 1 younger row not shown');

      const table = await runTool(['inspect', '--min-age', '0', ...conn]);
      expect(table.code, table.stderr).to.equal(1);
      expect(table.stdout).to.include('1 transaction in doubt');
      expect(table.stdout).to.match(/TRANSACTION\s+AGE\s+DATABASE\s+KEY\s+STATE/);
      expect(table.stdout).to.include(txId).and.include('committed').and.include('e:public.book:3').and.include('locked by this transaction');
      expect(table.stdout).to.include('mikro-orm-xa-cache sweep');

      const json = await runTool(['inspect', '--min-age', '0', '--json', ...conn]);
      expect(json.code).to.equal(1);
      const report = JSON.parse(json.stdout) as { inDoubt: number; transactions: Array<{ txId: string; outcome: string; ageMs: number; keys: Array<{ key: string; state: string; region: boolean }> }> };
      expect(report.inDoubt).to.equal(1);
      const [tx] = report.transactions;
      expect(tx).to.include({ txId, outcome: 'committed' });
      expect(tx?.ageMs).to.be.a('number');
      expect(tx?.keys.map((k) => k.state)).to.include('locked-by-this');
      expect(tx?.keys.some((k) => k.region)).to.equal(true);

      // The row is committed, but its keys are locked: readers go to the database, never to the old value.
      expect((await b.orm.em.fork().findOneOrFail(Book, 3)).title).to.equal(title);

      const sweep = await runTool(['sweep', '--min-age', '0', ...conn]);
      expect(sweep.code, sweep.stderr).to.equal(0);
      expect(sweep.stdout).to.match(/Resolved 1 transaction \(\d+ keys\)/).and.include(txId).and.include('committed');

      const after = await runTool(['inspect', '--min-age', '0', '--json', ...conn]);
      expect(after.code).to.equal(0);
      expect(JSON.parse(after.stdout)).to.include({ inDoubt: 0, younger: 0 });
      expect((await pool.query(`SELECT count(*)::int AS n FROM ${logTable}`)).rows[0].n).to.equal(0);
      for (let i = 0; i < 2; i++) expect((await b.orm.em.fork().findOneOrFail(Book, 3)).title).to.equal(title);
    });

    it("reads the application's secrets: its authenticated entries are values, not foreign bytes", async () => {
      const secrets = [`new-${randomUUID()}`, `old-${randomUUID()}`];
      const ns = `${namespace}s`;
      const sealedLog = `${logTable}_s`;
      const s = sharedServers();
      const app = await openBookstore(s.memcachedAddresses, s.db, { namespace: ns, logTable: sealedLog, secrets });
      // Capture objects are named after the log table: this application's log needs its own triggers, or its
      // capture gate stops caching the tables (the triggers are dropped again below).
      const captured = await installWriteCapture(app.orm);
      try {
        // A running application, connected (a read before MikroORM's lazy first connect goes to the database and
        // fills nothing), with book 6 cached as it was.
        await app.orm.em.fork().findOneOrFail(Book, 6);
        await killWriterMidPromote({ namespace: ns, logTable: sealedLog, bookId: 6, title: 'sealed', secrets });
        // The application reads the book again: the key its promote evicted is filled with a sealed value.
        expect((await app.orm.em.fork().findOneOrFail(Book, 6)).title).to.equal('sealed');
        const args = ['inspect', '--min-age', '0', '--json', '--db', s.db, '--memcached', s.memcachedAddresses.join(','), '--namespace', ns, '--log-table', sealedLog];
        type Report = { authenticated: boolean; transactions: Array<{ keys: Array<{ key: string; state: string }> }> };
        const states = (run: { stdout: string }): string[] => (JSON.parse(run.stdout) as Report).transactions.flatMap((tx) => tx.keys.map((k) => k.state));

        const withEnv = await runTool(args, { env: cleanEnv({ XA_CACHE_SECRETS: secrets.join(',') }) });
        expect(withEnv.code, withEnv.stderr).to.equal(1);
        expect((JSON.parse(withEnv.stdout) as Report).authenticated).to.equal(true);
        expect(states(withEnv)).to.include('value').and.not.include('foreign');
        expect(withEnv.stdout + withEnv.stderr).to.not.include(secrets[0]).and.not.include(secrets[1]);

        const withFlag = await runTool([...args, '--secrets-env', 'APP_SECRETS'], { env: cleanEnv({ APP_SECRETS: secrets.join(', ') }) });
        expect(states(withFlag)).to.include('value').and.not.include('foreign');

        const dir = emptyDir();
        writeFileSync(
          join(dir, 'mikro-orm.config.mjs'),
          `import { withXaCache } from '${DIST_INDEX}';
export default withXaCache({ entities: [], clientUrl: ${JSON.stringify(s.db)} }, { servers: ${JSON.stringify(s.memcachedAddresses)}, namespace: '${ns}', logTable: '${sealedLog}', secrets: ${JSON.stringify(secrets)} });\n`,
        );
        const fromFile = await runTool(['inspect', '--min-age', '0', '--json'], { cwd: dir });
        expect(fromFile.code, fromFile.stderr).to.equal(1);
        expect(states(fromFile)).to.include('value').and.not.include('foreign');

        const without = await runTool(args);
        expect(without.code, without.stderr).to.equal(1);
        expect((JSON.parse(without.stdout) as Report).authenticated).to.equal(false);
        expect(states(without)).to.include('foreign').and.not.include('value');
        const text = await runTool(args.filter((a) => a !== '--json'));
        expect(text.stdout).to.include('foreign or unauthenticated').and.include('XA_CACHE_SECRETS');

        const bad = await runTool(args, { env: cleanEnv({ XA_CACHE_SECRETS: 'short' }) });
        expect(bad.code).to.equal(3);
        expect(bad.stderr).to.include('XA_CACHE_SECRETS must hold').and.not.include('short');

        const swept = await runTool(['sweep', '--min-age', '0', ...args.slice(3)], { env: cleanEnv({ XA_CACHE_SECRETS: secrets.join(',') }) });
        expect(swept.code, swept.stderr).to.equal(0);
      } finally {
        for (const target of captured) for (const sql of app.cache().xa.capture.dropTableDdl(target)) await pool.query(sql);
        await app.close();
      }
    });

    it('sweep --json reports what it resolved for scripts', async () => {
      await killWriterMidPromote({ namespace, logTable, bookId: 4, title: 'json sweep' });
      const run = await runTool(['sweep', '--min-age', '0', '--json', ...conn]);
      expect(run.code, run.stderr).to.equal(0);
      const parsed = JSON.parse(run.stdout) as { report: { resolved: number; unresolved: number }; resolvedTransactions: Array<{ outcome: string }> };
      expect(parsed.report).to.include({ resolved: 1, unresolved: 0 });
      expect(parsed.resolvedTransactions).to.have.length(1);
      expect(parsed.resolvedTransactions[0]).to.include({ outcome: 'committed' });
    });

    it('sweep --watch sweeps periodically until SIGTERM (exit 0)', async () => {
      const child = spawn(process.execPath, [CLI, 'sweep', '--watch', '--interval', '200ms', '--min-age', '0', ...conn], { cwd: emptyDir(), env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      const deadline = Date.now() + 20_000;
      while ((stdout.match(/Nothing to sweep/g) ?? []).length < 2) {
        if (Date.now() > deadline) throw new Error(`watch did not sweep twice: ${stdout}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      child.kill('SIGTERM');
      expect(await exited).to.equal(0);
      expect(stdout).to.match(/^\d{4}-\d\d-\d\dT.* Nothing to sweep/m);
    });
  });

  describe('stats', () => {
    it('probes memcached and the log when no application is named (exit 0)', async () => {
      const run = await runTool(['stats', ...conn]);
      expect(run.code, run.stderr).to.equal(0);
      expect(run.stdout).to.match(/SERVER\s+REACHABLE\s+RTT\s+ITEMS/);
      for (const server of sharedServers().memcachedAddresses) expect(run.stdout).to.match(new RegExp(`${server.replace('.', '\\.')}\\s+yes`));
      expect(run.stdout).to.include('in doubt (older than 10.0s): 0');
      const json = JSON.parse((await runTool(['stats', '--json', ...conn])).stdout) as { memcached: Array<{ reachable: boolean; items: number }>; log: { inDoubt: { total: number } } };
      expect(json.memcached.every((m) => m.reachable && typeof m.items === 'number')).to.equal(true);
      expect(json.log.inDoubt.total).to.equal(0);
      expect(run.stdout).to.match(/outside changes \S+_changes\n\s+(nothing waiting|[\d,]+ changes? waiting)/);
    });

    it('reads the counters of a running application from its metrics endpoint', async () => {
      const runtime = await startXaCache(b.orm);
      const server = await serveMetrics(runtime, { port: 0 });
      try {
        for (let i = 0; i < 3; i++) await b.orm.em.fork().findOneOrFail(Book, 5);
        const run = await runTool(['stats', '--url', server.url]);
        expect(run.code, run.stderr).to.equal(0);
        expect(run.stdout).to.match(/hit ratio \d+\.\d%/);
        expect(run.stdout).to.match(/hits_total\s+\S*\s+[1-9]/);
        expect(run.stdout).to.match(/rows:public\.book\s+[1-9]/);
        const json = JSON.parse((await runTool(['stats', '--url', server.url, '--json'])).stdout) as { hitRatio: number; samples: Array<{ name: string }> };
        expect(json.hitRatio).to.be.greaterThan(0);
        expect(json.samples.map((s) => s.name)).to.include.members(['xa_cache_misses_total', 'xa_cache_in_doubt_transactions', 'xa_cache_sweeps_total', 'xa_cache_outside_feed_leader', 'xa_cache_outside_feed_suspended']);
      } finally {
        await server.close();
        await runtime.stop();
      }
    });
  });

  describe('capture', () => {
    // A schema of its own: the shared database's public schema belongs to the bookstore of every suite.
    const schema = `cap_${namespace}`;
    const capLog = `${schema}.cap_log`;
    const changes = `${capLog}_changes`;
    /** The database only: capture needs no memcached. */
    let dbOnly: string[];
    const captured = async (table: string): Promise<number> =>
      (await pool.query(`SELECT count(*)::int AS n FROM ${changes} WHERE schema_name = $1 AND table_name = $2`, [schema, table])).rows[0].n as number;

    before(async () => {
      dbOnly = ['--db', sharedServers().db, '--log-table', capLog];
      await pool.query(`CREATE SCHEMA ${schema}`);
      await pool.query(`CREATE TABLE ${schema}.widget (id int PRIMARY KEY, name text)`);
      await pool.query(`CREATE TABLE ${schema}.event (id int, at date NOT NULL) PARTITION BY RANGE (at)`);
      await pool.query(`CREATE TABLE ${schema}.event_2026 PARTITION OF ${schema}.event FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`);
      // Stands for the log table the application would create: the cache's own tables are never captured.
      await pool.query(`CREATE TABLE ${capLog} (tx_id uuid)`);
    });
    after(async () => {
      await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    });

    it('prints the DDL for every table of a schema, partitions tagged with their root, without memcached or applying it', async () => {
      const run = await runTool(['capture', '--schema', schema, ...dbOnly]);
      expect(run.code, run.stderr).to.equal(0);
      expect(run.stdout).to.include(`CREATE TABLE IF NOT EXISTS ${changes}`).and.include('BEGIN;').and.include('COMMIT;');
      expect(run.stdout).to.include(`CREATE TRIGGER "cap_log_ins" AFTER INSERT ON "${schema}"."widget" REFERENCING NEW TABLE AS xa_new`);
      expect(run.stdout).to.include(`ON "${schema}"."event" `).and.include(`ON "${schema}"."event_2026" `).and.include(`${capLog}_capture('event')`);
      expect(run.stdout).to.not.include(`ON "${schema}"."cap_log"`);
      expect((await pool.query('SELECT to_regclass($1) AS t', [changes])).rows[0].t).to.equal(null);
      const json = JSON.parse((await runTool(['capture', '--json', '--table', `${schema}.event`, ...dbOnly])).stdout) as { applied: boolean; tables: Array<{ table: string; logicalTable?: string }> };
      expect(json.applied).to.equal(false);
      expect(json.tables).to.deep.equal([
        { schema, table: 'event' },
        { schema, table: 'event_2026', logicalTable: 'event' },
      ]);
    });

    it('--apply installs it: a write by a plain pg client is recorded; --drop --apply removes it', async () => {
      const run = await runTool(['capture', '--apply', '--schema', schema, ...dbOnly]);
      expect(run.code, run.stderr).to.equal(0);
      expect(run.stdout).to.include(`Installed the write capture (change table ${changes}) on 3 tables`).and.include(`${schema}.event_2026 (partition of event)`);
      await pool.query(`INSERT INTO ${schema}.widget VALUES (1, 'one')`);
      await pool.query(`INSERT INTO ${schema}.event_2026 VALUES (1, '2026-05-01')`);
      expect(await captured('widget')).to.equal(1);
      expect(await captured('event')).to.equal(1);
      const row = (await pool.query(`SELECT op, new_rows FROM ${changes} WHERE table_name = 'widget'`)).rows[0] as { op: string; new_rows: unknown };
      expect(row).to.deep.equal({ op: 'INSERT', new_rows: [{ id: 1, name: 'one' }] });
      // Run again: idempotent, and the change table it created is still left out.
      const again = await runTool(['capture', '--apply', '--json', '--schema', schema, ...dbOnly]);
      expect(again.code, again.stderr).to.equal(0);
      expect((JSON.parse(again.stdout) as { tables: Array<{ table: string }> }).tables.map((t) => t.table)).to.deep.equal(['event', 'event_2026', 'widget']);

      const drop = await runTool(['capture', '--drop', '--apply', '--table', `${schema}.widget`, ...dbOnly]);
      expect(drop.code, drop.stderr).to.equal(0);
      expect(drop.stdout).to.include('Removed the write capture from 1 table');
      await pool.query(`UPDATE ${schema}.widget SET name = 'uno'`);
      await pool.query(`UPDATE ${schema}.event SET id = 2`);
      expect(await captured('widget')).to.equal(1);
      expect(await captured('event')).to.equal(2);
    });

    it('refuses tables that do not exist (exit 3) and the cache\'s own tables (exit 2)', async () => {
      const missing = await runTool(['capture', '--table', `${schema}.nope`, ...dbOnly]);
      expect(missing.code).to.equal(3);
      expect(missing.stderr).to.include(`no table ${schema}.nope`);
      const own = await runTool(['capture', '--table', capLog, ...dbOnly]);
      expect(own.code).to.equal(2);
      expect(own.stderr).to.include("the cache's own table");
    });
  });

  describe('invalidate', () => {
    let store: MemcachedStore;
    before(() => {
      store = new MemcachedStore({ servers: sharedServers().memcachedAddresses, namespace });
      // The application's keys are scoped to its database's identity (`namespace/<identity>:`): read them there.
      const identity = b.cache().identity;
      if (identity === undefined) throw new Error('the bookstore has not connected');
      store.scopeTo(identity);
    });
    after(async () => {
      await store.close();
    });

    it('--table --id evicts the row an ORM cached: the next read is a miss, then a hit again', async () => {
      const stats = b.cache().xa.stats;
      await b.orm.em.fork().findOneOrFail(Book, 1);
      expect((await store.get('e:public.book:1')).status).to.equal('hit');
      const hits = stats.hits;
      await b.orm.em.fork().findOneOrFail(Book, 1);
      expect(stats.hits).to.be.greaterThan(hits);

      const run = await runTool(['invalidate', '--table', 'public.book', '--id', '1', '--json', ...conn]);
      expect(run.code, run.stderr).to.equal(0);
      expect(JSON.parse(run.stdout)).to.deep.equal({ namespace, keys: ['e:public.book:1'], regions: ['t:public.book', 'coll:public.book'], unreached: [] });
      expect((await store.get('e:public.book:1')).status).to.equal('not_found');

      const misses = stats.misses;
      expect((await b.orm.em.fork().findOneOrFail(Book, 1)).title).to.equal('Book 1');
      expect(stats.misses).to.be.greaterThan(misses);
      expect((await store.get('e:public.book:1')).status).to.equal('hit');
    });

    it('--table alone renews the table\'s regions; --key evicts raw keys (r:REGION a region)', async () => {
      const table = await runTool(['invalidate', '--table', 'public.book', ...conn]);
      expect(table.code, table.stderr).to.equal(0);
      expect(table.stdout).to.include('Invalidated 0 items and renewed 3 regions').and.include('r:rows:public.book  renewed');
      await b.orm.em.fork().findOneOrFail(Book, 2);
      expect((await store.get('e:public.book:2')).status).to.equal('hit');
      const keys = await runTool(['invalidate', '--key', 'e:public.book:2', '--key', 'r:t:public.author', '--json', ...conn]);
      expect(keys.code, keys.stderr).to.equal(0);
      expect(JSON.parse(keys.stdout)).to.deep.include({ keys: ['e:public.book:2'], regions: ['t:public.author'], unreached: [] });
      expect((await store.get('e:public.book:2')).status).to.equal('not_found');
    });

    it('exits 4 and names the keys it could not reach', async () => {
      const s = sharedServers();
      const args = ['invalidate', '--json', '--db', s.db, '--memcached', `${s.memcachedAddresses[0]},127.0.0.1:1`, '--namespace', namespace];
      for (let i = 0; i < 16; i++) args.push('--key', `cli-unreached:${i}`);
      const run = await runTool(args);
      expect(run.code, run.stderr).to.equal(4);
      const report = JSON.parse(run.stdout) as { keys: string[]; unreached: string[] };
      expect(report.unreached.length).to.be.greaterThan(0).and.lessThan(16);
    });

    it('bad command lines are usage errors (exit 2), for capture as for invalidate', async () => {
      const lines = [
        ['capture', '--table', 'nodot'],
        ['capture', '--schema', 'public', '--table', 'public.book'],
        ['capture', '--id', '1'],
        ['invalidate'],
        ['invalidate', '--id', '1'],
        ['invalidate', '--table', 'public.book', '--key', 'x'],
        ['invalidate', '--table', 'public.book', '--table', 'public.author'],
        ['invalidate', '--key', 'a b'],
        ['invalidate', '--table', 'book'],
        ['invalidate', '--key', 'x', '--apply'],
      ];
      for (const args of lines) {
        const run = await runTool([...args, ...conn]);
        expect(run.code, `${args.join(' ')}: ${run.stderr}`).to.equal(2);
        expect(run.stderr, args.join(' ')).to.match(new RegExp(`see: mikro-orm-xa-cache ${args[0]} --help`));
      }
    });
  });

  it('re-runs itself with the project Node when started by an older node', async function () {
    const old = ['/usr/bin/node', '/usr/local/bin/node'].find((candidate) => existsSync(candidate) && Number(execFileSync(candidate, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' }).trim()) < 22);
    if (!old) this.skip();
    // A long min-age: rows of commits that other tests just made may still await their lazy deletion.
    const run = await runTool(['inspect', '--min-age', '10m', ...conn], { node: old, cwd: emptyDir() });
    expect(run.code, run.stderr).to.equal(0);
    expect(run.stdout).to.include('Nothing in doubt');
  });
});
