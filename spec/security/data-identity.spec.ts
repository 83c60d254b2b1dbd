import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { MikroORM, defineEntity, p } from '@mikro-orm/postgresql';
import { sharedServers } from '../support/global-servers.js';
import { PostgresCluster, createDatabase } from '../support/postgres-cluster.js';
import { withXaCache } from '../../lib/mikro-orm/with-xa-cache.js';
import type { XaCacheAdapter } from '../../lib/mikro-orm/xa-cache-adapter.js';
import { installWriteCapture } from '../../lib/mikro-orm/write-capture-setup.js';

/**
 * G14 / issue 13: two databases with identical tables and primary keys, two ORMs sharing one memcached and one
 * namespace. Every row, collection and query result each reads is checked to be its own database's.
 */
const Di = {
  Shelf: defineEntity({
    name: 'DiShelf',
    tableName: 'di_shelf',
    xaCache: true,
    properties: { id: p.integer().primary(), items: () => p.oneToMany(Di.Item).mappedBy('shelf') },
  }),
  Item: defineEntity({
    name: 'DiItem',
    tableName: 'di_item',
    xaCache: true,
    properties: { id: p.integer().primary(), name: p.string(), shelf: () => p.manyToOne(Di.Shelf) },
  }),
};
const ITEMS = 8;

interface App {
  readonly label: string;
  readonly url: string;
  readonly orm: MikroORM;
  readonly cache: XaCacheAdapter;
}

async function openApp(label: string, url: string, namespace: string, extra: { connect?: boolean } = {}): Promise<App> {
  const orm = await MikroORM.init(withXaCache({ entities: [Di.Shelf, Di.Item], clientUrl: url, ...extra }, { servers: sharedServers().memcachedAddresses, namespace }));
  return { label, url, orm, cache: orm.config.getResultCacheAdapter() as XaCacheAdapter };
}

async function seed(app: App): Promise<void> {
  await app.orm.schema.refresh();
  await installWriteCapture(app.orm);
  const em = app.orm.em.fork();
  // Each database has both shelves, with the items on different shelves: a collection served across databases
  // would show the other database's members.
  const shelves = [1, 2].map((id) => em.create(Di.Shelf, { id }));
  for (let id = 1; id <= ITEMS; id++) em.create(Di.Item, { id, name: `${app.label} ${id}`, shelf: shelves[(id + (app.label === 'A' ? 0 : 1)) % 2]! });
  await em.flush();
}

async function dbRows(url: string): Promise<Array<{ id: number; name: string; shelf_id: number }>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query('SELECT id, name, shelf_id FROM di_item ORDER BY id')).rows;
  } finally {
    await client.end();
  }
}

/** Reads every row, both collections and a named query result through the ORM and compares with the database. */
async function checkOwnData(app: App): Promise<void> {
  const truth = await dbRows(app.url);
  for (const row of truth) {
    const item = await app.orm.em.fork().findOneOrFail(Di.Item, row.id);
    expect(item.name, `${app.label} row ${row.id}`).to.equal(row.name);
  }
  for (const shelf of [1, 2]) {
    const loaded = await app.orm.em.fork().findOneOrFail(Di.Shelf, shelf, { populate: ['items'] });
    const expected = truth.filter((r) => r.shelf_id === shelf).map((r) => r.id);
    expect(loaded.items.getItems().map((i) => i.id).sort((a, b) => a - b), `${app.label} shelf ${shelf}`).to.deep.equal(expected);
  }
  const listed = await app.orm.em.fork().find(Di.Item, {}, { cache: ['di-all-items', 60_000], orderBy: { id: 'asc' } });
  expect(listed.map((i) => i.name), `${app.label} query result`).to.deep.equal(truth.map((r) => r.name));
}

async function crossCheck(a: App, b: App): Promise<void> {
  await seed(a);
  await seed(b);
  for (let round = 0; round < 3; round++) {
    await checkOwnData(a);
    await checkOwnData(b);
  }
  expect(a.cache.xa.stats.hits, 'A used the cache').to.be.greaterThan(ITEMS);
  expect(b.cache.xa.stats.hits, 'B used the cache').to.be.greaterThan(ITEMS);
  // Writes through each: load, change, flush; the other database's rows stay as they were.
  const emA = a.orm.em.fork();
  (await emA.findOneOrFail(Di.Item, 1)).name = 'A renamed 1';
  await emA.flush();
  const emB = b.orm.em.fork();
  (await emB.findOneOrFail(Di.Item, 2)).name = 'B renamed 2';
  await emB.flush();
  expect((await dbRows(a.url)).map((r) => r.name)).to.deep.equal(Array.from({ length: ITEMS }, (_, i) => (i === 0 ? 'A renamed 1' : `A ${i + 1}`)));
  expect((await dbRows(b.url)).map((r) => r.name)).to.deep.equal(Array.from({ length: ITEMS }, (_, i) => (i === 1 ? 'B renamed 2' : `B ${i + 1}`)));
  await checkOwnData(a);
  await checkOwnData(b);
}

describe('data identity: databases sharing memcached and a namespace never serve each other', function () {
  this.timeout(120_000);
  const adminUrl = (): string | undefined => sharedServers().postgres?.url;

  it('two databases of one server, identical tables and primary keys', async function () {
    const admin = adminUrl();
    if (!admin) this.skip(); // needs the owned cluster to create databases
    const namespace = `d${randomUUID().slice(0, 8)}`;
    const a = await openApp('A', await createDatabase(admin!, 'xa_identity_a'), namespace);
    const b = await openApp('B', await createDatabase(admin!, 'xa_identity_b'), namespace);
    try {
      await crossCheck(a, b);
      expect(a.cache.identity).to.be.a('string').and.not.equal(b.cache.identity);
    } finally {
      await Promise.all([a.orm.close(true), b.orm.close(true)]);
    }
  });

  it('two servers, databases of the same name', async function () {
    const admin = adminUrl();
    if (!admin) this.skip();
    const other = await PostgresCluster.start();
    const namespace = `d${randomUUID().slice(0, 8)}`;
    try {
      const a = await openApp('A', await createDatabase(admin!, 'xa_identity_same'), namespace);
      const b = await openApp('B', await createDatabase(other.url, 'xa_identity_same'), namespace);
      try {
        await crossCheck(a, b);
        expect(a.cache.identity?.split('.')[1]).to.equal('xa_identity_same').and.equal(b.cache.identity?.split('.')[1]);
        expect(a.cache.identity).to.not.equal(b.cache.identity);
      } finally {
        await Promise.all([a.orm.close(true), b.orm.close(true)]);
      }
    } finally {
      await other.stop();
    }
  });

  it('reads before the first connect go to the database, and the cache is used once connected', async function () {
    const admin = adminUrl();
    if (!admin) this.skip();
    const url = await createDatabase(admin!, 'xa_identity_lazy');
    const seeded = await openApp('A', url, `d${randomUUID().slice(0, 8)}`);
    await seed(seeded);
    await seeded.orm.close(true);
    const lazy = await openApp('A', url, `d${randomUUID().slice(0, 8)}`, { connect: false });
    try {
      expect(lazy.cache.identity).to.equal(undefined);
      const stats = lazy.cache.xa.stats;
      expect((await lazy.orm.em.fork().findOneOrFail(Di.Item, 1)).name).to.equal('A 1');
      expect(stats.hits + stats.misses, 'the first read did not consult the cache').to.equal(0);
      expect(lazy.cache.identity).to.be.a('string');
      await lazy.orm.em.fork().findOneOrFail(Di.Item, 1);
      expect((await lazy.orm.em.fork().findOneOrFail(Di.Item, 1)).name).to.equal('A 1');
      expect(stats.hits).to.equal(1);
    } finally {
      await lazy.orm.close(true);
    }
  });
});
