import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { MikroORM, defineEntity, p, type EntityManager, type EntityName, type Options } from '@mikro-orm/postgresql';
import { sharedServers } from '../support/global-servers.js';
import { PostgresCluster, createDatabase } from '../support/postgres-cluster.js';
import { withXaCache } from '../../lib/mikro-orm/with-xa-cache.js';
import type { XaCacheAdapter } from '../../lib/mikro-orm/xa-cache-adapter.js';
import { installWriteCapture } from '../../lib/mikro-orm/write-capture-setup.js';

/**
 * Issue 13: tenants sharing ONE memcached set and ONE namespace, with identical tables and equal primary keys,
 * write and read concurrently (each tenant runs {@link WORKERS} loops of random flushes, `nativeUpdate`s, row
 * reads and query results for {@link RUN_MS}). Every value read carries its tenant and id (`<tenant>:<id>:<version>`),
 * so a read from another tenant is seen the moment it happens; afterwards every row each tenant reads through the
 * cache is compared with its own database or schema, and every table (including a `public` decoy that no tenant
 * should ever touch) is checked to hold only its own tenant's writes, exactly the last ones each worker made.
 */
interface Item {
  id: number;
  name: string;
}
const props = { id: p.integer().primary(), name: p.string() };
/** Unqualified: where it lives is the database's (or `search_path`'s) business. */
const MtItem = defineEntity({ name: 'MtItem', tableName: 'mt_item', xaCache: true, properties: props });
/** One definition for every tenant schema (`em.fork({ schema })`). */
const MtWild = defineEntity({ name: 'MtWild', tableName: 'mt_item', schema: '*', xaCache: true, properties: props });
/** Two definitions of the same table name, each pinned to its schema. */
const MtA = defineEntity({ name: 'MtA', tableName: 'mt_item', schema: 'tenant_a', xaCache: true, properties: props });
const MtB = defineEntity({ name: 'MtB', tableName: 'mt_item', schema: 'tenant_b', xaCache: true, properties: props });

const ROWS = 24;
const WORKERS = 2;
const RUN_MS = 3_000;
const SCHEMAS = ['public', 'tenant_a', 'tenant_b'] as const;

interface Tenant {
  readonly label: string;
  /** An admin URL of its database, and its table there (qualified where it is not `public`). */
  readonly truthUrl: string;
  readonly table: string;
  readonly entity: EntityName<Item>;
  readonly cache: XaCacheAdapter;
  /** Runs one operation with a fresh entity manager, as the tenant's application would. */
  run<T>(fn: (em: EntityManager) => Promise<T>): Promise<T>;
}

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

const seedRows = (label: string): string => Array.from({ length: ROWS }, (_, i) => `(${i + 1}, '${label}:${i + 1}:0')`).join(', ');

async function truth(url: string, table: string): Promise<Map<number, string>> {
  const rows = (await sql(url, [`SELECT id, name FROM ${table} ORDER BY id`])) as unknown as Item[];
  return new Map(rows.map((r) => [r.id, r.name]));
}

const xaOptions = (namespace: string): Parameters<typeof withXaCache>[1] => ({ servers: sharedServers().memcachedAddresses, namespace, logTable: 'public.xa_cache_log' });

async function openOrm(options: Options, namespace: string): Promise<MikroORM> {
  const orm = await MikroORM.init(withXaCache(options, xaOptions(namespace)));
  await orm.connect();
  return orm;
}

const cacheOf = (orm: MikroORM): XaCacheAdapter => orm.config.getResultCacheAdapter() as XaCacheAdapter;

interface Outcome {
  /** Reads (rows and query results) served from the cache, and reads bypassed for search_path, per tenant. */
  readonly hits: number[];
  readonly bypasses: number[];
  readonly operations: number;
}

/**
 * The concurrent run and the checks after it. Ids are split between a tenant's workers for writing (so the last
 * value each wrote is known exactly); every worker reads every id.
 */
async function runTenants(tenants: Tenant[], decoys: Array<{ url: string; table: string; label: string }> = []): Promise<Outcome> {
  const before = tenants.map((t) => ({ hits: t.cache.xa.stats.hits, bypasses: t.cache.xa.stats.searchPathBypasses }));
  const expected = tenants.map((t) => new Map(Array.from({ length: ROWS }, (_, i) => [i + 1, `${t.label}:${i + 1}:0`])));
  const wrong: string[] = [];
  const check = (t: Tenant, id: number, name: string | undefined, what: string): void => {
    if (!name?.startsWith(`${t.label}:${id}:`)) wrong.push(`${t.label} ${what} of id ${id} read "${name}"`);
  };
  let operations = 0;
  const until = Date.now() + RUN_MS;
  const worker = async (ti: number, w: number): Promise<void> => {
    const t = tenants[ti]!;
    let version = 0;
    while (Date.now() < until) {
      const id = 1 + Math.floor(Math.random() * ROWS);
      const mine = id % WORKERS === w;
      const dice = Math.random();
      operations++;
      if (mine && dice < 0.2) {
        const name = `${t.label}:${id}:${w}.${++version}`;
        await t.run(async (em) => {
          const item = await em.findOneOrFail(t.entity, id);
          check(t, id, item.name, 'row loaded to flush');
          item.name = name;
          await em.flush();
        });
        expected[ti]!.set(id, name);
      } else if (mine && dice < 0.4) {
        const name = `${t.label}:${id}:${w}.${++version}`;
        const changed = await t.run((em) => em.nativeUpdate(t.entity, { id }, { name }));
        if (changed !== 1) wrong.push(`${t.label} nativeUpdate of id ${id} changed ${changed} rows`);
        expected[ti]!.set(id, name);
      } else if (dice < 0.5) {
        // MikroORM's computed key, or a name the application gives (the same name in every tenant).
        const cache: number | [string, number] = dice < 0.45 ? 60_000 : ['mt-all', 60_000];
        const rows = await t.run((em) => em.find(t.entity, {}, { cache, orderBy: { id: 'asc' } }));
        if (rows.length !== ROWS) wrong.push(`${t.label} query result has ${rows.length} rows`);
        for (const row of rows) check(t, row.id, row.name, 'query result row');
      } else {
        const item = await t.run((em) => em.findOneOrFail(t.entity, id));
        check(t, id, item.name, 'row');
        // This worker wrote it last: the read must be exactly that (no stale entry either).
        if (mine && item.name !== expected[ti]!.get(id)) wrong.push(`${t.label} row ${id} read "${item.name}", last written "${expected[ti]!.get(id)}"`);
      }
    }
  };
  await Promise.all(tenants.flatMap((_, ti) => Array.from({ length: WORKERS }, (__, w) => worker(ti, w))));
  expect(wrong.length, `cross-tenant or stale reads during the run: ${wrong.slice(0, 8).join('; ')}`).to.equal(0);

  // Row by row: what each tenant reads through the cache (twice: the second may be a hit) is its own database's,
  // and its database holds exactly its own last writes (no write of another tenant landed in it).
  for (const [ti, t] of tenants.entries()) {
    const rows = await truth(t.truthUrl, t.table);
    expect(Object.fromEntries(rows), `${t.label}'s table holds exactly its own last writes`).to.deep.equal(Object.fromEntries(expected[ti]!));
    for (let round = 0; round < 2; round++) {
      for (const [id, name] of rows) expect((await t.run((em) => em.findOneOrFail(t.entity, id))).name, `${t.label} row ${id}, round ${round}`).to.equal(name);
      const listed = await t.run((em) => em.find(t.entity, {}, { cache: 60_000, orderBy: { id: 'asc' } }));
      expect(listed.map((i) => i.name), `${t.label} query result, round ${round}`).to.deep.equal([...rows.values()]);
      const named = await t.run((em) => em.find(t.entity, {}, { cache: ['mt-all', 60_000], orderBy: { id: 'asc' } }));
      expect(named.map((i) => i.name), `${t.label} named query result, round ${round}`).to.deep.equal([...rows.values()]);
    }
  }
  for (const decoy of decoys) {
    const rows = await truth(decoy.url, decoy.table);
    expect([...rows.values()], `${decoy.label} untouched`).to.deep.equal(Array.from({ length: ROWS }, (_, i) => `${decoy.label}:${i + 1}:0`));
  }
  return {
    hits: tenants.map((t, i) => t.cache.xa.stats.hits - before[i]!.hits),
    bypasses: tenants.map((t, i) => t.cache.xa.stats.searchPathBypasses - before[i]!.bypasses),
    operations,
  };
}

/** A tenant that is a whole database: its own ORM, unqualified tables. */
async function databaseTenant(label: string, url: string, namespace: string): Promise<{ tenant: Tenant; orm: MikroORM }> {
  const orm = await openOrm({ entities: [MtItem], clientUrl: url }, namespace);
  await orm.schema.refresh();
  await installWriteCapture(orm);
  await sql(url, [`INSERT INTO mt_item (id, name) VALUES ${seedRows(label)}`]);
  const tenant: Tenant = { label, truthUrl: url, table: 'mt_item', entity: MtItem, cache: cacheOf(orm), run: (fn) => fn(orm.em.fork()) };
  return { tenant, orm };
}

describe('multi-tenant: tenants sharing one memcached set and one namespace, writing and reading concurrently', function () {
  this.timeout(180_000);
  const admin = (): string | undefined => sharedServers().postgres?.url;
  const namespace = (): string => `mt${randomUUID().slice(0, 8)}`;

  describe('a database per tenant', () => {
    it('two databases of one server', async function () {
      if (!admin()) return this.skip();
      const ns = namespace();
      const a = await databaseTenant('A', await createDatabase(admin()!, 'xa_mt_a'), ns);
      const b = await databaseTenant('B', await createDatabase(admin()!, 'xa_mt_b'), ns);
      try {
        const outcome = await runTenants([a.tenant, b.tenant]);
        expect(outcome.hits[0], 'A used the cache').to.be.greaterThan(ROWS);
        expect(outcome.hits[1], 'B used the cache').to.be.greaterThan(ROWS);
      } finally {
        await Promise.all([a.orm.close(true), b.orm.close(true)]);
      }
    });

    it('two servers, databases of the same name', async function () {
      if (!admin()) return this.skip();
      const other = await PostgresCluster.start();
      try {
        const ns = namespace();
        const a = await databaseTenant('A', await createDatabase(admin()!, 'xa_mt_same'), ns);
        const b = await databaseTenant('B', await createDatabase(other.url, 'xa_mt_same'), ns);
        try {
          expect(a.tenant.cache.identity?.split('.')[1]).to.equal(b.tenant.cache.identity?.split('.')[1]);
          const outcome = await runTenants([a.tenant, b.tenant]);
          expect(outcome.hits[0], 'A used the cache').to.be.greaterThan(ROWS);
          expect(outcome.hits[1], 'B used the cache').to.be.greaterThan(ROWS);
        } finally {
          await Promise.all([a.orm.close(true), b.orm.close(true)]);
        }
      } finally {
        await other.stop();
      }
    });
  });

  describe('a schema per tenant (public holds a decoy table with the same ids)', () => {
    let url: string;
    const decoys = (): Array<{ url: string; table: string; label: string }> => [{ url, table: 'public.mt_item', label: 'public' }];
    const tenantTable = (schema: string): string => `${schema}.mt_item`;
    const labelOf = (schema: string): string => schema;

    before(async function () {
      if (!admin()) return this.skip();
      url = await createDatabase(admin()!, 'xa_mt_schemas');
      const statements: string[] = [];
      for (const schema of SCHEMAS) statements.push(`CREATE SCHEMA IF NOT EXISTS ${schema}`, `CREATE TABLE ${schema}.mt_item (id int PRIMARY KEY, name text NOT NULL)`);
      await sql(url, statements);
      // The capture on every tenant table, installed by the owner (the tenants' roles below cannot create triggers).
      const installer = await openOrm({ entities: [MtWild], clientUrl: url }, namespace());
      try {
        await installWriteCapture(installer, { schemas: [...SCHEMAS] });
      } finally {
        await installer.close(true);
      }
    });

    beforeEach(async function () {
      if (!url) return this.skip();
      await sql(url, SCHEMAS.flatMap((schema) => [`TRUNCATE ${schema}.mt_item`, `INSERT INTO ${schema}.mt_item (id, name) VALUES ${seedRows(labelOf(schema))}`]));
    });

    /** A tenant of an ORM whose calls name no schema: `search_path` decides. */
    const unqualified = (orm: MikroORM, schema: string, run?: Tenant['run']): Tenant => ({
      label: labelOf(schema),
      truthUrl: url,
      table: tenantTable(schema),
      entity: MtItem,
      cache: cacheOf(orm),
      run: run ?? ((fn) => fn(orm.em.fork())),
    });

    it('search_path set by SQL: SET search_path on each tenant\'s connection (em.execute)', async () => {
      const ns = namespace();
      const orms = await Promise.all(['tenant_a', 'tenant_b'].map((schema) => openOrm({ entities: [MtItem], clientUrl: url, pool: { min: 1, max: 1 } }, ns)));
      try {
        for (const [i, schema] of ['tenant_a', 'tenant_b'].entries()) await orms[i]!.em.fork().execute(`SET search_path TO ${schema}`);
        const outcome = await runTenants(
          ['tenant_a', 'tenant_b'].map((schema, i) => unqualified(orms[i]!, schema)),
          decoys(),
        );
        expect(outcome.hits, 'nothing unqualified is served from the cache').to.deep.equal([0, 0]);
        for (const bypasses of outcome.bypasses) expect(bypasses).to.be.greaterThan(ROWS);
      } finally {
        await Promise.all(orms.map((orm) => orm.close(true)));
      }
    });

    it('search_path set by SQL: one ORM, SET LOCAL search_path in each tenant\'s transaction', async () => {
      const orm = await openOrm({ entities: [MtItem], clientUrl: url }, namespace());
      try {
        const tenants = ['tenant_a', 'tenant_b'].map((schema) =>
          unqualified(orm, schema, (fn) =>
            orm.em.fork().transactional(async (em) => {
              await em.execute(`SET LOCAL search_path TO ${schema}`);
              return fn(em);
            }),
          ),
        );
        const outcome = await runTenants(tenants, decoys());
        expect(outcome.hits[0], 'nothing unqualified is served from the cache').to.equal(0);
        expect(outcome.bypasses[0]).to.be.greaterThan(ROWS);
      } finally {
        await orm.close(true);
      }
    });

    it('search_path per connection (pg option `-c search_path=…` through driverOptions)', async () => {
      const ns = namespace();
      const orms = await Promise.all(
        ['tenant_a', 'tenant_b'].map((schema) => openOrm({ entities: [MtItem], clientUrl: url, driverOptions: { options: `-c search_path=${schema}` } }, ns)),
      );
      try {
        // The connection really resolves there (MikroORM 7 drops `?options=` from clientUrl: only driverOptions reach pg).
        expect(await orms[0]!.em.fork().execute('SELECT current_schema() AS s')).to.deep.equal([{ s: 'tenant_a' }]);
        const outcome = await runTenants(
          ['tenant_a', 'tenant_b'].map((schema, i) => unqualified(orms[i]!, schema)),
          decoys(),
        );
        expect(outcome.hits, 'misresolved at connect: not cached').to.deep.equal([0, 0]);
        for (const bypasses of outcome.bypasses) expect(bypasses).to.be.greaterThan(ROWS);
      } finally {
        await Promise.all(orms.map((orm) => orm.close(true)));
      }
    });

    it('search_path per connection with MikroORM\'s schema option: cached under the schema it resolves to', async () => {
      const ns = namespace();
      const orms = await Promise.all(
        ['tenant_a', 'tenant_b'].map((schema) => openOrm({ entities: [MtItem], clientUrl: url, schema, driverOptions: { options: `-c search_path=${schema}` } }, ns)),
      );
      try {
        const outcome = await runTenants(
          ['tenant_a', 'tenant_b'].map((schema, i) => unqualified(orms[i]!, schema)),
          decoys(),
        );
        for (const hits of outcome.hits) expect(hits).to.be.greaterThan(ROWS);
        expect(outcome.bypasses).to.deep.equal([0, 0]);
      } finally {
        await Promise.all(orms.map((orm) => orm.close(true)));
      }
    });

    it('search_path per role (ALTER ROLE … SET search_path, each tenant connects as its role)', async () => {
      const statements: string[] = [];
      for (const role of ['tenant_a', 'tenant_b']) {
        statements.push(
          `DO $$ BEGIN CREATE ROLE ${role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
          `ALTER ROLE ${role} SET search_path = ${role}`,
          // Both tenant schemas are open to both roles: only search_path keeps them apart, not privileges.
          `GRANT USAGE ON SCHEMA public, tenant_a, tenant_b TO ${role}`,
          `GRANT CREATE ON SCHEMA public TO ${role}`, // the library's CREATE TABLE IF NOT EXISTS of its log
          `GRANT ALL ON ALL TABLES IN SCHEMA public, tenant_a, tenant_b TO ${role}`,
          `GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO ${role}`,
        );
      }
      // The library (re)applies its log DDL at connect, which needs the owner: a group role both tenants are in.
      statements.push(
        `DO $$ BEGIN CREATE ROLE xa_cache_owner NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
        'GRANT CREATE ON SCHEMA public TO xa_cache_owner',
        'GRANT xa_cache_owner TO tenant_a, tenant_b',
        'ALTER TABLE public.xa_cache_log OWNER TO xa_cache_owner',
        'ALTER TABLE public.xa_cache_log_changes OWNER TO xa_cache_owner',
        'ALTER FUNCTION public.xa_cache_log_capture() OWNER TO xa_cache_owner',
        'ALTER FUNCTION public.xa_cache_log_take() OWNER TO xa_cache_owner',
      );
      await sql(url, statements);
      const ns = namespace();
      const roleUrl = (role: string): string => {
        const u = new URL(url);
        u.username = role;
        return u.toString();
      };
      const orms: MikroORM[] = [];
      try {
        for (const role of ['tenant_a', 'tenant_b']) orms.push(await openOrm({ entities: [MtItem], clientUrl: roleUrl(role) }, ns));
        expect(await orms[1]!.em.fork().execute('SELECT current_user AS u, current_schema() AS s')).to.deep.equal([{ u: 'tenant_b', s: 'tenant_b' }]);
        const outcome = await runTenants(
          ['tenant_a', 'tenant_b'].map((schema, i) => unqualified(orms[i]!, schema)),
          decoys(),
        );
        expect(outcome.hits, 'misresolved at connect: not cached').to.deep.equal([0, 0]);
        for (const bypasses of outcome.bypasses) expect(bypasses).to.be.greaterThan(ROWS);
      } finally {
        await Promise.all(orms.map((orm) => orm.close(true)));
      }
    });

    it('em.fork({ schema }) on one ORM (`schema: \'*\'` entity)', async () => {
      const orm = await openOrm({ entities: [MtWild], clientUrl: url }, namespace());
      try {
        const tenants = ['tenant_a', 'tenant_b'].map(
          (schema): Tenant => ({ label: labelOf(schema), truthUrl: url, table: tenantTable(schema), entity: MtWild, cache: cacheOf(orm), run: (fn) => fn(orm.em.fork({ schema })) }),
        );
        const outcome = await runTenants(tenants, decoys());
        expect(outcome.hits[0], 'both tenants (one ORM, one counter) used the cache').to.be.greaterThan(2 * ROWS);
      } finally {
        await orm.close(true);
      }
    });

    it('entity schema: two entity definitions of one table name, `schema: \'tenant_a\'` and `schema: \'tenant_b\'`', async () => {
      const orm = await openOrm({ entities: [MtA, MtB], clientUrl: url }, namespace());
      try {
        const tenants = (
          [
            ['tenant_a', MtA],
            ['tenant_b', MtB],
          ] as const
        ).map(([schema, entity]): Tenant => ({ label: labelOf(schema), truthUrl: url, table: tenantTable(schema), entity, cache: cacheOf(orm), run: (fn) => fn(orm.em.fork()) }));
        const outcome = await runTenants(tenants, decoys());
        expect(outcome.hits[0], 'both tenants (one ORM, one counter) used the cache').to.be.greaterThan(2 * ROWS);
      } finally {
        await orm.close(true);
      }
    });
  });
});
