import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import pg from 'pg';
import type { MikroORM, EntityManager } from '@mikro-orm/postgresql';
import { Servers } from '../support/servers.js';
import { requireBinary } from '../support/binaries.js';
import { onProcessExit } from '../support/exit-cleanup.js';
import { installWriteCapture } from '../../lib/mikro-orm/write-capture-setup.js';
import { invalidateAll } from '../../lib/mikro-orm/invalidation.js';
import { startXaCache, type StartXaCacheOptions } from '../../lib/operations/start-xa-cache.js';
import type { XaCacheRuntime } from '../../lib/operations/xa-cache-runtime.js';
import type { XaCacheAdapter } from '../../lib/mikro-orm/xa-cache-adapter.js';
import { parsePrometheusText } from '../../lib/operations/prometheus-text.js';
import { keys } from '../../lib/mikro-orm/cache-keys.js';
import { encodeValue } from '../../lib/mikro-orm/value-codec.js';
import { Member, NOTE_TRIGGER, Team, openCached, openPlain, type MemberT, type ModelServers } from './outside-model.js';

/**
 * G13 with real outside writers: psql, a plain pg client, a MikroORM without the cache, COPY, a trigger fired
 * from outside, a long transaction, a burst of 10,000 row changes, followers killed, racing and outliving a
 * PostgreSQL restart. Each test ends with every cached entry equal to the database: every row, collection and a
 * query result read through the cache (twice: the second pass is served from it) and compared with SQL.
 *
 * The servers are owned (the restart test restarts PostgreSQL). The application's fallback poll is long
 * (5 s) where the test is about latency, so what is measured is the NOTIFY path.
 */
const MEMBERS = 300;
const TEAMS = 10;
const CLI = fileURLToPath(new URL('../../lib/cli/main.js', import.meta.url));
const FOLLOW_CONFIG = fileURLToPath(new URL('./follow-config.js', import.meta.url));

describe('writes from outside the application are invalidated within a bound (G13)', function () {
  this.timeout(180_000);
  let servers: Servers;
  let model: ModelServers;
  let app: MikroORM;
  let admin: pg.Client;
  const runtimes: XaCacheRuntime[] = [];
  const children: ChildProcess[] = [];

  before(async () => {
    servers = await Servers.start({ owned: true, memcached: 1 });
    model = { db: servers.db, memcached: servers.memcachedAddresses, namespace: `ow${randomUUID().slice(0, 8)}` };
    app = await openCached(model);
    admin = await connectAdmin();
  });
  after(async () => {
    await admin?.end().catch(() => undefined);
    await app?.close(true);
    await servers?.stop();
  });

  beforeEach(async () => {
    await app.schema.refresh();
    await admin.query(NOTE_TRIGGER);
    await installWriteCapture(app);
    await admin.query(`TRUNCATE xa_cache_log_changes`); // the seed below is the starting point, not a change to follow
    await admin.query(`INSERT INTO ow_team (id, name) SELECT i, 't' || i FROM generate_series(1, ${TEAMS}) i;
      INSERT INTO ow_member (id, name, team_id) SELECT i, 'm' || i, 1 + i % ${TEAMS} FROM generate_series(1, ${MEMBERS}) i;
      DELETE FROM xa_cache_log_changes;`);
    // Tables were dropped and re-created: DDL is no write the capture reports, so what earlier tests cached is
    // invalidated by hand, as an application does after such a migration.
    await invalidateAll(app.em.fork());
  });
  afterEach(async () => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
    await Promise.all(runtimes.splice(0).map((r) => r.stop().catch(() => undefined)));
    adapterOf(app).servingSuspended = undefined;
  });

  const connectAdmin = async (): Promise<pg.Client> => {
    const client = new pg.Client({ connectionString: servers.db });
    client.on('error', () => undefined); // the restart test kills it; queries report it
    await client.connect();
    return client;
  };
  const adapterOf = (orm: MikroORM): XaCacheAdapter => orm.config.getResultCacheAdapter() as XaCacheAdapter;
  const start = async (orm: MikroORM, options: StartXaCacheOptions = {}): Promise<XaCacheRuntime> => {
    const runtime = await startXaCache(orm, { outsideChangesIntervalMs: 5000, ...options });
    runtimes.push(runtime);
    return runtime;
  };
  const fresh = (orm: MikroORM = app): EntityManager => orm.em.fork() as EntityManager;
  const memberName = async (id: number, orm: MikroORM = app): Promise<string | undefined> => ((await fresh(orm).findOne(Member, id)) as MemberT | null)?.name;
  /** ms until `check` holds, polling every 2 ms; fails after `timeoutMs`. */
  const until = async (check: () => Promise<boolean>, timeoutMs = 10_000): Promise<number> => {
    const started = performance.now();
    while (!(await check())) {
      if (performance.now() - started > timeoutMs) throw new Error(`not within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 2));
    }
    return performance.now() - started;
  };
  const pending = async (): Promise<number> => Number((await admin.query('SELECT count(*) AS n FROM xa_cache_log_changes')).rows[0].n);
  /** Runs SQL in a psql process: one `-c` command (with `input` on its stdin), or a script (`-f -`, each statement its own transaction). */
  const psql = (sql: string, input?: string, asScript = false): Promise<void> =>
    new Promise((resolve, reject) => {
      const args = asScript ? ['-f', '-'] : ['-c', sql];
      const stdin = asScript ? sql : input;
      const child = spawn(requireBinary('psql'), [servers.db, '-v', 'ON_ERROR_STOP=1', '-q', ...args], { stdio: [stdin === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      if (stdin !== undefined) child.stdin?.end(stdin);
      child.once('error', reject);
      child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`psql exited ${code}: ${stderr}`))));
    });

  /** Every row, every team's collection and a query result, read through the cache twice, equal the database. */
  const expectCacheMatchesDatabase = async (orm: MikroORM = app): Promise<void> => {
    const { rows: dbMembers } = await admin.query<{ id: number; name: string; team_id: number | null }>('SELECT id, name, team_id FROM ow_member');
    const { rows: dbTeams } = await admin.query<{ id: number; name: string }>('SELECT id, name FROM ow_team');
    const maxId = Math.max(MEMBERS, ...dbMembers.map((m) => m.id)) + 5; // and a few that never existed
    const wantMembers = new Map(dbMembers.map((m) => [m.id, `${m.name}/${m.team_id ?? '-'}`]));
    const wantTeams = new Map(dbTeams.map((t) => [t.id, `${t.name}:${dbMembers.filter((m) => m.team_id === t.id).map((m) => m.id).sort((a, b) => a - b).join(',')}`]));
    const stats = adapterOf(orm).xa.stats;
    for (let pass = 0; pass < 2; pass++) {
      const hitsBefore = stats.hits;
      const em = fresh(orm);
      const ids = Array.from({ length: maxId }, (_, i) => i + 1);
      const members = (await em.find(Member, { id: { $in: ids } })) as MemberT[];
      const got = new Map(members.map((m) => [m.id, `${m.name}/${(m.team as unknown as { id: number } | null)?.id ?? '-'}`]));
      expect(got, `rows, pass ${pass + 1}`).to.deep.equal(wantMembers);
      const teams = await fresh(orm).find(Team, { id: { $in: Array.from({ length: TEAMS + 2 }, (_, i) => i + 1) } }, { populate: ['members'] });
      const gotTeams = new Map(teams.map((t) => [t.id, `${t.name}:${t.members.getItems().map((m) => m.id).sort((a, b) => a - b).join(',')}`]));
      expect(gotTeams, `collections, pass ${pass + 1}`).to.deep.equal(wantTeams);
      expect(await fresh(orm).count(Member, { name: { $ne: '' } }, { cache: 60_000 }), `query result, pass ${pass + 1}`).to.equal(dbMembers.length);
      if (pass === 1) expect(stats.hits - hitsBefore, 'the second pass is served from the cache').to.be.greaterThan(members.length);
    }
  };
  const warm = (orm: MikroORM = app): Promise<void> => expectCacheMatchesDatabase(orm);

  describe('each kind of outside writer, applied at once on its commit (NOTIFY; the poll is 5 s)', () => {
    const latency = async (write: () => Promise<unknown>, id: number, name: string): Promise<number> => {
      await warm();
      expect(await memberName(id)).to.not.equal(name);
      const started = performance.now();
      await write();
      await until(async () => (await memberName(id)) === name, 4000);
      return performance.now() - started;
    };

    it('a psql process', async () => {
      await start(app);
      const ms = await latency(() => psql(`UPDATE ow_member SET name = 'by psql' WHERE id = 7`), 7, 'by psql');
      expect(ms).to.be.lessThan(2000); // psql's own start-up is most of it
      await expectCacheMatchesDatabase();
    });

    it('a plain pg client: updates, inserts, deletes, moves between collections', async () => {
      await start(app);
      const ms = await latency(() => admin.query(`UPDATE ow_member SET name = 'by pg' WHERE id = 8`), 8, 'by pg');
      expect(ms).to.be.lessThan(1000);
      await admin.query(`INSERT INTO ow_member (id, name, team_id) VALUES (${MEMBERS + 1}, 'new', 3); DELETE FROM ow_member WHERE id = 9; UPDATE ow_member SET team_id = 5 WHERE id = 10`);
      await until(async () => (await pending()) === 0);
      await expectCacheMatchesDatabase();
    });

    it('a second MikroORM without the cache (unit of work and native update)', async () => {
      await start(app);
      const other = await openPlain(servers.db);
      try {
        const em = other.em.fork();
        const m = await em.findOneOrFail(Member, 11);
        m.name = 'by another orm';
        await latency(() => em.flush(), 11, 'by another orm');
        await other.em.fork().nativeUpdate(Member, { id: { $lte: 20 } }, { name: 'bulk' });
        await until(async () => (await pending()) === 0);
        await expectCacheMatchesDatabase();
      } finally {
        await other.close(true);
      }
    });

    it('COPY … FROM STDIN (psql), and a trigger fired from outside', async () => {
      await start(app);
      await warm();
      const rows = Array.from({ length: 50 }, (_, i) => `${MEMBERS + 1 + i}\tcopied ${i}\t${1 + (i % TEAMS)}`).join('\n');
      await psql('COPY ow_member (id, name, team_id) FROM STDIN', `${rows}\n\\.\n`);
      await until(async () => (await pending()) === 0);
      // An insert into an uncached table whose trigger renames a cached row.
      await latency(() => admin.query(`INSERT INTO ow_note (id, member_id, name) VALUES (1, 12, 'by a trigger')`), 12, 'by a trigger');
      await expectCacheMatchesDatabase();
    });

    it('a long transaction: nothing changes while it runs, everything right after its commit', async () => {
      await start(app);
      await warm();
      const long = await connectAdmin();
      try {
        await long.query('BEGIN');
        await long.query(`UPDATE ow_member SET name = 'long' WHERE id <= 30`);
        await new Promise((r) => setTimeout(r, 1500));
        expect(await memberName(13)).to.equal('m13'); // not committed: the cache still serves the committed value
        const started = performance.now();
        await long.query('COMMIT');
        await until(async () => (await memberName(13)) === 'long', 2000);
        expect(performance.now() - started).to.be.lessThan(1000);
      } finally {
        await long.end();
      }
      await until(async () => (await pending()) === 0);
      await expectCacheMatchesDatabase();
    });

    it('a reader holding a lease from before the commit cannot fill the old value after the invalidation', async () => {
      await start(app);
      const xa = adapterOf(app).xa;
      const key = keys.row('public.ow_member', '14');
      await xa.invalidateNow([key], []); // nothing cached: the next read takes a lease
      const read = await xa.reader.read(key, { regions: ['rows:public.ow_member'] });
      const ticket = read.status === 'miss' ? read.ticket : undefined;
      expect(ticket, 'a fill lease').to.not.equal(undefined);
      const { rows } = await admin.query('SELECT id, name, team_id FROM ow_member WHERE id = 14'); // what the reader loaded
      await admin.query(`UPDATE ow_member SET name = 'after the lease' WHERE id = 14`);
      await until(async () => (await pending()) === 0);
      expect(await xa.reader.fill(ticket!, encodeValue(rows[0]), 60), 'the fill is refused').to.equal(false);
      expect(await memberName(14)).to.equal('after the lease');
      await expectCacheMatchesDatabase();
    });
  });

  it('a burst of 10,000 outside row changes (10,000 transactions from psql) ends consistent, quickly', async () => {
    await start(app);
    await warm();
    const script = Array.from({ length: 10_000 }, (_, i) => `UPDATE ow_member SET name = 'b${i}' WHERE id = ${1 + (i % MEMBERS)};`).join('\n');
    const started = performance.now();
    await psql(script, undefined, true);
    const written = performance.now() - started;
    const drained = await until(async () => (await pending()) === 0, 60_000);
    await expectCacheMatchesDatabase();
    expect(drained, `drained ${Math.round(drained)} ms after psql's ${Math.round(written)} ms`).to.be.lessThan(10_000);
  });

  describe('who follows', () => {
    const followerBackends = async (): Promise<number[]> =>
      (await admin.query(`SELECT pid FROM pg_stat_activity WHERE application_name = 'mikro-orm-xa-cache follower' AND datname = current_database()`)).rows.map((r: { pid: number }) => r.pid);
    const spawnFollower = (env: Record<string, string> = {}): { child: ChildProcess; lines: string[]; following: Promise<void>; stderr: () => string } => {
      const child = spawn(process.execPath, [CLI, 'follow', '--config', FOLLOW_CONFIG, '--interval', '200ms', '--max-lag', '5s'], {
        cwd: mkdtempSync(join(tmpdir(), 'ow-follow-')),
        env: { ...process.env, DATABASE_URL: servers.db, MEMCACHED_SERVERS: model.memcached.join(','), XA_CACHE_NAMESPACE: model.namespace, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      onProcessExit(() => child.kill('SIGKILL'));
      const lines: string[] = [];
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const following = new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (d: Buffer) => {
          lines.push(...d.toString().split('\n').filter(Boolean));
          if (lines.some((l) => l.includes('following (holds the follower lock)'))) resolve();
        });
        child.once('exit', (code) => reject(new Error(`follow exited ${code}: ${stderr}`)));
      });
      return { child, lines, following, stderr: () => stderr };
    };

    it('the follower process (mikro-orm-xa-cache follow) killed during a burst and restarted: nothing is lost', async () => {
      // The application follows nothing itself: the sidecar does.
      await start(app, { outsideChangesFollower: 'none' });
      await warm();
      const first = spawnFollower();
      await first.following;
      const script = Array.from({ length: 4000 }, (_, i) => `UPDATE ow_member SET name = 'k${i}' WHERE id = ${1 + ((i * 7) % MEMBERS)};`).join(' ');
      const burst = psql(script, undefined, true);
      await until(async () => (await pending()) > 0 || first.child.exitCode !== null, 20_000).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 300));
      first.child.kill('SIGKILL');
      await burst;
      // The changes the dead follower had claimed are released by its successor when it takes the lock.
      const second = spawnFollower();
      await second.following;
      await until(async () => (await pending()) === 0, 20_000); // well before the dead follower's claims (30 s) expire
      await expectCacheMatchesDatabase();
      second.child.kill('SIGTERM');
    });

    it('follow catching up on a backlog draws its progress on stderr (XA_CACHE_PROGRESS=always), then erases it', async () => {
      await start(app, { outsideChangesFollower: 'none' });
      await warm();
      // 600 statements, each its own transaction, while nobody follows: a backlog of 600 changes.
      await psql(Array.from({ length: 600 }, (_, i) => `UPDATE ow_member SET name = 'b${i}' WHERE id = ${1 + (i % MEMBERS)};`).join(' '), undefined, true);
      const backlog = await pending();
      expect(backlog).to.equal(600);
      const follower = spawnFollower({ XA_CACHE_PROGRESS: 'always' });
      await follower.following;
      expect(await pending()).to.equal(0); // the first apply ends before the follower reports its role
      await expectCacheMatchesDatabase();
      const stderr = follower.stderr();
      // Drawn at once, before the first change is applied; erased before the role line.
      expect(stderr.startsWith('\rcatching up on outside changes: 0 of 600 applied\u001b[K'), JSON.stringify(stderr)).to.equal(true);
      expect(stderr).to.include('\r\u001b[K');
      expect(follower.lines.join('\n')).not.to.match(/[\r\u001b]/);
      follower.child.kill('SIGTERM');
    });

    it('two followers race: exactly one holds the lock; when its session dies the other takes over', async () => {
      const other = await openCached(model);
      try {
        const a = await start(app, { outsideChangesIntervalMs: 200 });
        const b = await start(other, { outsideChangesIntervalMs: 200 });
        expect([a.follower?.leading, b.follower?.leading].filter(Boolean)).to.have.length(1);
        await warm(app);
        await warm(other);
        await admin.query(`UPDATE ow_member SET name = 'race 1' WHERE id <= 40`);
        await until(async () => (await memberName(15)) === 'race 1' && (await memberName(15, other)) === 'race 1');
        // The leader's session dies (its process lives on): the lock is free, both race for it, one wins.
        await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid IN (SELECT pid FROM pg_locks WHERE locktype = $2 AND granted)', ['mikro-orm-xa-cache follower', 'advisory']);
        await until(async () => [a, b].filter((r) => r.follower?.leading).length === 1, 5000);
        await admin.query(`UPDATE ow_member SET name = 'race 2' WHERE id <= 40`);
        await until(async () => (await pending()) === 0);
        // The leading process goes away: the other takes over.
        const leader = a.follower?.leading ? a : b;
        const standby = leader === a ? b : a;
        await leader.stop();
        await until(async () => standby.follower?.leading === true, 5000);
        await admin.query(`UPDATE ow_member SET name = 'race 3' WHERE id <= 40`);
        await until(async () => (await pending()) === 0);
        await expectCacheMatchesDatabase(app);
        await expectCacheMatchesDatabase(other);
        expect((await followerBackends()).length).to.be.at.most(2);
      } finally {
        await Promise.all(runtimes.splice(0).map((r) => r.stop()));
        await other.close(true);
      }
    });
  });

  it('PostgreSQL restarted: the follower reconnects, takes the lock again and applies what committed since', async () => {
    const runtime = await start(app, { outsideChangesIntervalMs: 200 });
    await warm();
    expect(runtime.follower?.leading).to.equal(true);
    await servers.postgres!.restart();
    await admin.end().catch(() => undefined);
    admin = await connectAdmin();
    await admin.query(`UPDATE ow_member SET name = 'after restart' WHERE id <= 25`);
    await until(async () => runtime.follower?.leading === true && (await pending()) === 0, 15_000);
    await until(async () => (await memberName(16).catch(() => undefined)) === 'after restart', 5000);
    await expectCacheMatchesDatabase();
  });

  it('changes that may have been missed (the change table truncated) renew every cached table', async () => {
    await warm();
    await admin.query(`UPDATE ow_member SET name = 'lost' WHERE id = 17`); // nobody follows yet
    await admin.query('TRUNCATE xa_cache_log_changes'); // … and the change is lost
    expect(await memberName(17)).to.equal('m17'); // stale: no process could know
    const runtime = await start(app);
    expect(runtime.follower?.health.renewals).to.be.greaterThan(0);
    expect(await memberName(17)).to.equal('lost');
    await expectCacheMatchesDatabase();
  });

  it('the feed down past outsideChangesMaxLagMs stops serving (reads go to the database), and serving resumes', async () => {
    // Another session holds the follower lock and follows nothing: changes wait.
    await (await start(app)).stop(); // a follower renews after this test's fresh change table, then leaves
    const squatter = await connectAdmin();
    try {
      await squatter.query(`SELECT pg_advisory_lock(hashtext('mikro-orm-xa-cache follower'), hashtext('xa_cache_log_changes'))`);
      const runtime = await start(app, { outsideChangesIntervalMs: 100, outsideChangesMaxLagMs: 800 });
      expect(runtime.follower?.leading).to.equal(false);
      await warm();
      await admin.query(`UPDATE ow_member SET name = 'unapplied' WHERE id = 18`);
      expect(await memberName(18)).to.equal('m18'); // within the bound: still served
      await until(async () => adapterOf(app).servingSuspended !== undefined, 3000);
      expect(await memberName(18)).to.equal('unapplied'); // from the database
      const metrics = parsePrometheusText(await runtime.metrics());
      expect(metrics.find((s) => s.name === 'xa_cache_outside_feed_suspended')?.value).to.equal(1);
      expect(metrics.find((s) => s.name === 'xa_cache_outside_feed_lag_seconds')?.value).to.be.greaterThan(0.8);
      await squatter.query(`SELECT pg_advisory_unlock_all()`);
      await until(async () => adapterOf(app).servingSuspended === undefined, 3000);
      expect(runtime.follower?.leading).to.equal(true);
      await expectCacheMatchesDatabase();
    } finally {
      await squatter.end();
    }
  });

  it('a cached table whose capture is dropped is not served until the capture is back; the others are', async () => {
    await start(app, { outsideChangesIntervalMs: 100 });
    await warm();
    await admin.query('DROP TRIGGER xa_cache_log_upd ON ow_team');
    await until(async () => !adapterOf(app).isCacheable('public.ow_team'), 3000);
    await admin.query(`UPDATE ow_team SET name = 'uncaptured' WHERE id = 2`); // no change row: nobody is told
    expect((await fresh().findOneOrFail(Team, 2)).name).to.equal('uncaptured'); // from the database
    expect(adapterOf(app).isCacheable('public.ow_member')).to.equal(true);
    await installWriteCapture(app); // back (and the triggers changed: every table is renewed)
    await until(async () => adapterOf(app).isCacheable('public.ow_team'), 3000);
    await until(async () => (await pending()) === 0);
    await expectCacheMatchesDatabase();
  });

  it('capture v2 lets a role with no grant on the change table write (SECURITY DEFINER), and notifies', async () => {
    await admin.query(`DROP ROLE IF EXISTS ow_writer; CREATE ROLE ow_writer LOGIN; GRANT UPDATE, SELECT ON ow_member TO ow_writer`);
    await start(app);
    await warm();
    const url = new URL(servers.db);
    url.username = 'ow_writer';
    const writer = new pg.Client({ connectionString: url.toString() });
    await writer.connect();
    try {
      const denied = await writer.query('SELECT count(*) FROM xa_cache_log_changes').then(() => undefined, (e: Error) => e.message);
      expect(denied).to.match(/permission denied/);
      await writer.query(`UPDATE ow_member SET name = 'least privilege' WHERE id = 19`);
      await until(async () => (await memberName(19)) === 'least privilege', 2000);
    } finally {
      await writer.end();
      await admin.query(`REVOKE ALL ON ow_member FROM ow_writer; DROP ROLE ow_writer`);
    }
    await expectCacheMatchesDatabase();
  });
});
