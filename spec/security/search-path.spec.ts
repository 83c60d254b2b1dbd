import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { sql as kyselySql } from 'kysely';
import { MikroORM, defineEntity, p } from '@mikro-orm/postgresql';
import { sharedServers } from '../support/global-servers.js';
import { createDatabase } from '../support/postgres-cluster.js';
import { withXaCache } from '../../lib/mikro-orm/with-xa-cache.js';
import type { XaCacheAdapter } from '../../lib/mikro-orm/xa-cache-adapter.js';
import { installWriteCapture } from '../../lib/mikro-orm/write-capture-setup.js';

/**
 * G14 for `search_path` tenants: where the schema an unqualified table resolves to is not known, the cache is not
 * used (counted), never guessed. Schemas `public`, `tenant_a`, `tenant_b` each hold `sp_item` with the same ids.
 */
const SpItem = defineEntity({ name: 'SpItem', tableName: 'sp_item', xaCache: true, properties: { id: p.integer().primary(), name: p.string() } });

async function sql(url: string, statements: string[]): Promise<Array<Record<string, unknown>>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    let rows: Array<Record<string, unknown>> = [];
    for (const statement of statements) rows = (await client.query(statement)).rows;
    return rows;
  } finally {
    await client.end();
  }
}

describe('search_path: unqualified tables are cached only where their schema is known', function () {
  this.timeout(60_000);
  let url: string;
  before(async function () {
    const admin = sharedServers().postgres?.url;
    if (!admin) return this.skip();
    url = await createDatabase(admin, 'xa_search_path');
    const statements: string[] = [];
    for (const schema of ['public', 'tenant_a', 'tenant_b']) {
      statements.push(`CREATE SCHEMA IF NOT EXISTS ${schema}`, `CREATE TABLE ${schema}.sp_item (id int PRIMARY KEY, name text NOT NULL)`);
      statements.push(`INSERT INTO ${schema}.sp_item VALUES (1, '${schema} 1'), (2, '${schema} 2')`);
    }
    await sql(url, statements);
  });

  // The log table is qualified: an unqualified one is itself resolved through search_path (see docs/security.md).
  const open = async (clientUrl: string): Promise<{ orm: MikroORM; cache: XaCacheAdapter }> => {
    const orm = await MikroORM.init(withXaCache({ entities: [SpItem], clientUrl, pool: { min: 1, max: 1 } }, { servers: sharedServers().memcachedAddresses, namespace: `p${randomUUID().slice(0, 8)}`, logTable: 'public.xa_cache_log' }));
    await orm.connect();
    await installWriteCapture(orm);
    return { orm, cache: orm.config.getResultCacheAdapter() as XaCacheAdapter };
  };

  it('a SET search_path sent by the application stops the cache for unqualified tables: reads and writes follow the database', async () => {
    const { orm, cache } = await open(url);
    try {
      const name = async (): Promise<string> => (await orm.em.fork().findOneOrFail(SpItem, 1)).name;
      expect(await name()).to.equal('public 1');
      expect(await name()).to.equal('public 1');
      expect(cache.xa.stats.hits, 'cached while the schema is known').to.equal(1);
      await orm.em.fork().execute('SET search_path TO tenant_b');
      const bypasses = cache.xa.stats.searchPathBypasses;
      for (let i = 0; i < 3; i++) expect(await name()).to.equal('tenant_b 1');
      expect(cache.xa.stats.searchPathBypasses - bypasses).to.be.at.least(3);
      expect(await orm.em.fork().find(SpItem, {}, { cache: 60_000, orderBy: { id: 'asc' } }).then((r) => r.map((i) => i.name))).to.deep.equal(['tenant_b 1', 'tenant_b 2']);
      const em = orm.em.fork();
      (await em.findOneOrFail(SpItem, 2)).name = 'renamed';
      await em.flush();
      const rows = await sql(url, ["SELECT (SELECT name FROM public.sp_item WHERE id = 2) AS p, (SELECT name FROM tenant_b.sp_item WHERE id = 2) AS b, (SELECT name FROM tenant_a.sp_item WHERE id = 2) AS a"]);
      expect(rows[0]).to.deep.equal({ p: 'public 2', a: 'tenant_a 2', b: 'renamed' });
      // An explicit schema is still known, and still cached.
      const hits = cache.xa.stats.hits;
      for (let i = 0; i < 2; i++) expect((await orm.em.fork({ schema: 'tenant_a' }).findOneOrFail(SpItem, 1)).name).to.equal('tenant_a 1');
      expect(cache.xa.stats.hits - hits).to.equal(1);
    } finally {
      await orm.close(true);
    }
  });

  it('the same SET sent through Kysely (em.getKysely(), in its own transaction or not): the cache stops for unqualified tables', async () => {
    for (const send of ['autocommit', 'transaction'] as const) {
      const { orm, cache } = await open(url);
      try {
        const name = async (): Promise<string> => (await orm.em.fork().findOneOrFail(SpItem, 1)).name;
        expect(await name()).to.equal('public 1');
        expect(await name()).to.equal('public 1');
        const db = orm.em.fork().getKysely();
        if (send === 'autocommit') await kyselySql`SET search_path TO tenant_b`.execute(db);
        else await db.transaction().execute((trx) => kyselySql`SET search_path TO tenant_b`.execute(trx));
        const bypasses = cache.xa.stats.searchPathBypasses;
        // One pooled connection: the ORM's next read runs where the SET ran.
        for (let i = 0; i < 3; i++) expect(await name(), send).to.equal('tenant_b 1');
        expect(cache.xa.stats.searchPathBypasses - bypasses, send).to.be.at.least(3);
      } finally {
        await orm.close(true);
      }
    }
  });

  it('a database default search_path resolving elsewhere than the default schema is not cached, and says so', async () => {
    await sql(url, ['ALTER DATABASE xa_search_path SET search_path = tenant_a']);
    const { orm, cache } = await open(url);
    try {
      for (let i = 0; i < 3; i++) expect((await orm.em.fork().findOneOrFail(SpItem, 1)).name).to.equal('tenant_a 1');
      expect(cache.xa.stats.hits).to.equal(0);
      expect(cache.xa.stats.searchPathBypasses).to.be.at.least(3);
    } finally {
      await orm.close(true);
      await sql(url, ['ALTER DATABASE xa_search_path RESET search_path']);
    }
  });
});
