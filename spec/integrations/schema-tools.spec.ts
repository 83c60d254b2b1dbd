import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { MikroORM } from '@mikro-orm/postgresql';
import { Migrator } from '@mikro-orm/migrations';
import { sharedServers } from '../support/global-servers.js';
import { createDatabase } from '../support/postgres-cluster.js';
import { entities, Book } from '../support/bookstore.js';
import { withXaCache } from '../../lib/mikro-orm/with-xa-cache.js';
import { installWriteCapture, verifyWriteCapture } from '../../lib/mikro-orm/write-capture-setup.js';
import { createXaCacheMigration } from '../../lib/mikro-orm/xa-cache-migration.js';

const run = promisify(execFile);
const LOG = 'xa_cache_log';
const ENTITY_TABLES = ['author', 'book', 'book_tags', 'publisher', 'review', 'tag'];

/** The library's objects as the catalog shows them. */
async function objects(pool: pg.Pool): Promise<{ tables: string[]; functions: string[]; triggers: Record<string, string[]> }> {
  const tables = await pool.query(`SELECT relname FROM pg_class WHERE relname = ANY($1) AND relkind = 'r' ORDER BY 1`, [[LOG, `${LOG}_changes`]]);
  const functions = await pool.query(`SELECT proname FROM pg_proc WHERE proname = $1`, [`${LOG}_capture`]);
  const triggers = await pool.query(
    `SELECT c.relname, array_agg(t.tgname::text ORDER BY t.tgname) AS names FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
      WHERE NOT t.tgisinternal GROUP BY c.relname`,
  );
  return {
    tables: tables.rows.map((r) => r.relname as string),
    functions: functions.rows.map((r) => r.proname as string),
    triggers: Object.fromEntries(triggers.rows.map((r) => [r.relname as string, r.names as string[]])),
  };
}

const CAPTURED = [`${LOG}_del`, `${LOG}_ins`, `${LOG}_trunc`, `${LOG}_upd`];
const everyTableCaptured = Object.fromEntries(ENTITY_TABLES.map((t) => [t, CAPTURED]));

describe("integrations: MikroORM's schema and migration commands keep the cache's database objects", function () {
  this.timeout(120_000);
  let db: string;
  let dbName: string;
  let pool: pg.Pool;
  let migrations: string;
  let env: NodeJS.ProcessEnv;

  /** Runs the real `mikro-orm` CLI with the spec's config. */
  async function cli(...args: string[]): Promise<string> {
    const { stdout, stderr } = await run(process.execPath, ['node_modules/@mikro-orm/cli/cli.js', ...args, '--config', 'dist/spec/integrations/cli-orm-config.js'], { env, timeout: 60_000 });
    return stdout + stderr;
  }

  before(async () => {
    const s = sharedServers();
    dbName = `xa_schema_${randomUUID().slice(0, 8)}`;
    db = await createDatabase(s.db, dbName);
    pool = new pg.Pool({ connectionString: db, max: 2 });
    // Inside the package, so the generated CommonJS files resolve @mikro-orm/migrations.
    migrations = await mkdtemp(join('dist', 'spec', 'integrations', 'migrations-'));
    env = { ...process.env, XA_SPEC_DB: db, XA_SPEC_MEMCACHED: s.memcachedAddresses.join(','), XA_SPEC_MIGRATIONS: migrations, MIKRO_ORM_CLI_PREFER_TS: 'false' };
  });
  after(async () => {
    await pool.end();
    await rm(migrations, { recursive: true, force: true });
    // The database may be on a server the environment named (DATABASE_URL): leave nothing behind.
    const admin = new pg.Client({ connectionString: sharedServers().db });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).finally(() => admin.end());
  });

  it('schema:fresh creates the tables with their capture; schema:update then has nothing to change', async () => {
    await cli('schema:fresh', '--run');
    const after = await objects(pool);
    expect(after.tables).to.deep.equal([LOG, `${LOG}_changes`]);
    expect(after.functions).to.deep.equal([`${LOG}_capture`]);
    expect(after.triggers).to.deep.equal(everyTableCaptured);
    const dump = await cli('schema:update', '--dump');
    expect(dump).to.not.match(/drop (table|trigger|function)/i);
    expect(dump).to.not.include(LOG);
    await cli('schema:update', '--run');
    expect(await objects(pool)).to.deep.equal(after);
  });

  it('schema:update re-installs the capture of a table it re-creates, and never drops the library tables', async () => {
    await pool.query('DROP TABLE review');
    await pool.query(`INSERT INTO ${LOG} (tx_id, keys, regions) VALUES ($1, '{}', '{}')`, [randomUUID()]);
    await cli('schema:update', '--run');
    const after = await objects(pool);
    expect(after.triggers).to.deep.equal(everyTableCaptured);
    expect((await pool.query(`SELECT count(*)::int AS n FROM ${LOG}`)).rows[0].n).to.equal(1, 'the log rows survive');
    await pool.query(`DELETE FROM ${LOG}`);
  });

  it('schema:drop drops the entity tables (their triggers with them) and keeps the log, the change table and the function', async () => {
    await cli('schema:drop', '--run');
    const after = await objects(pool);
    expect(after.tables).to.deep.equal([LOG, `${LOG}_changes`]);
    expect(after.functions).to.deep.equal([`${LOG}_capture`]);
    expect(after.triggers).to.deep.equal({});
  });

  it('migration:create does not drop the library objects; the generated xa-cache migration installs them', async () => {
    await pool.query(`DROP TABLE ${LOG}, ${LOG}_changes; DROP FUNCTION ${LOG}_capture()`);
    // The entity tables come from MikroORM's initial migration, the library's objects from its own migration.
    await cli('migration:create', '--initial');
    const orm = await MikroORM.init(
      withXaCache(
        { entities, clientUrl: db, extensions: [Migrator], migrations: { path: migrations, emit: 'cjs', snapshot: false } },
        { servers: sharedServers().memcachedAddresses, namespace: 'schema-tools', logTable: LOG },
      ),
    );
    try {
      const { fileName, code } = await createXaCacheMigration(orm);
      expect(fileName).to.match(/xa_cache\.cjs$/);
      expect(code).to.match(/CREATE TRIGGER "?xa_cache_log_ins"? AFTER INSERT ON "public"."book_tags"/);
      expect((await readdir(migrations)).filter((f) => f.endsWith('.cjs'))).to.have.length(2);
      await cli('migration:up');
      const after = await objects(pool);
      expect(after.tables).to.deep.equal([LOG, `${LOG}_changes`]);
      expect(after.triggers).to.deep.equal(everyTableCaptured);
      expect(await verifyWriteCapture(orm)).to.deep.equal([]);
      // Now in sync: migration:create finds nothing, so it writes no migration dropping the cache's objects.
      const created = await cli('migration:create');
      expect(created).to.match(/no changes/i);
      expect((await readdir(migrations)).filter((f) => f.endsWith('.cjs'))).to.have.length(2);
      // A write through the ORM is captured by the migrated triggers and taken by its own prepare.
      const em = orm.em.fork();
      await em.getConnection().execute(`INSERT INTO author (id, name) VALUES (1, 'a')`);
      await em.getConnection().execute(`INSERT INTO book (id, title, price, author_id) VALUES (1, 'b', 1, 1)`);
      expect((await orm.em.fork().findOneOrFail(Book, 1)).title).to.equal('b');
      expect((await pool.query(`SELECT count(*)::int AS n FROM ${LOG}_changes`)).rows[0].n).to.equal(0);
      // orm.schema is the same generator as the CLI's: refresh keeps the capture too.
      await orm.schema.refresh();
      expect((await objects(pool)).triggers).to.deep.equal(everyTableCaptured);
      await installWriteCapture(orm);
    } finally {
      await orm.close(true);
    }
  });
});
