import { expect } from 'chai';
import pg from 'pg';
import { Servers } from '../support/servers.js';
import type { PostgresReplica } from '../support/postgres-cluster.js';
import { Author, Book, openBookstore, seedBookstore, type Bookstore } from '../support/bookstore.js';
import { invalidate } from '../../lib/mikro-orm/invalidation.js';

/**
 * MikroORM's `replicas`: plain reads go to a replica (`preferReadReplicas` defaults to true), which may not have
 * replayed a commit yet. A cache fill must never store what such a replica returns: fills read from the primary.
 * A real streaming replica (`pg_basebackup`) of an owned cluster, with replay paused, makes the lag certain.
 */
describe('read replicas', function () {
  this.timeout(60_000);
  let servers: Servers;
  let replica: PostgresReplica;
  let b: Bookstore;
  let replicaUrl: string;

  before(async function () {
    this.timeout(120_000);
    servers = await Servers.start({ memcached: 1, owned: true });
    replica = await servers.postgres!.startReplica();
    replicaUrl = replica.urlFor(new URL(servers.db).pathname.slice(1));
    b = await openBookstore(servers.memcachedAddresses, servers.db, {}, { replicas: [{ name: 'replica', clientUrl: replicaUrl }] });
    await seedBookstore(b.orm);
    await replica.waitForReplay();
  });

  after(async function () {
    this.timeout(60_000);
    if (replica) await replica.resumeReplay().catch(() => undefined);
    await b?.close();
    await replica?.stop();
    await servers?.stop();
  });

  beforeEach(async () => {
    await replica.resumeReplay();
    await replica.waitForReplay();
    b.takeSql();
  });
  afterEach(async () => replica.resumeReplay());

  /** Reads straight from the replica, bypassing the ORM. */
  async function onReplica<R extends object>(sql: string, params: unknown[] = []): Promise<R[]> {
    const client = new pg.Client({ connectionString: replicaUrl });
    await client.connect();
    try {
      return (await client.query<R>(sql, params)).rows;
    } finally {
      await client.end();
    }
  }

  const fork = () => b.orm.em.fork();
  const pricedFrom20 = () => fork().find(Book, { price: { $gte: 20 } }, { cache: 60_000, orderBy: { id: 'asc' } });
  const cheapCount = () => fork().count(Book, { price: { $gt: 50 } }, { cache: 60_000 });
  const byTitle = (title: string) => fork().findOne(Book, { title }, { cache: 60_000 });
  const qbPricedFrom20 = () => fork().createQueryBuilder(Book, 'b').select(['id', 'price']).where({ price: { $gte: 20 } }).orderBy({ id: 'asc' }).cache(60_000).getResultList();

  it('is really a lagging replica: the ORM reads it for uncached queries, and it misses a commit while paused', async () => {
    expect(await replica.isReplayPaused()).to.equal(false);
    expect((await fork().find(Book, { title: { $like: 'Book%' } })).length).to.equal(12);
    await replica.pauseReplay();
    const em = fork();
    (await em.findOneOrFail(Book, 12)).title = 'Written while replay was paused';
    await em.flush();
    expect((await onReplica<{ title: string }>('SELECT title FROM book WHERE id = 12'))[0]?.title).to.equal('Book 12');
    // An uncached, non-key query: MikroORM sends it to the replica, which has not replayed the commit.
    expect(await fork().find(Book, { title: 'Written while replay was paused' })).to.have.length(0);
    await replica.resumeReplay();
    await replica.waitForReplay();
    expect(await fork().find(Book, { title: 'Written while replay was paused' })).to.have.length(1);
  });

  it('fills a row and cached query results invalidated by a commit from the primary, not the lagging replica', async () => {
    // Warm the row cache and the result cache while the replica is in sync.
    expect((await fork().findOneOrFail(Book, 1)).price).to.equal(11);
    b.takeSql();
    expect((await fork().findOneOrFail(Book, 1)).price).to.equal(11);
    expect(b.takeSql(), 'row cached').to.deep.equal([]);
    expect((await pricedFrom20()).map((x) => x.id)).to.deep.equal([10, 11, 12]);
    expect(await cheapCount()).to.equal(0);
    expect(await byTitle('Book 1')).to.not.equal(null);
    expect((await qbPricedFrom20()).map((x) => x.id)).to.deep.equal([10, 11, 12]);
    b.takeSql();
    expect((await pricedFrom20()).map((x) => x.id)).to.deep.equal([10, 11, 12]);
    expect(await cheapCount()).to.equal(0);
    expect(b.takeSql(), 'results cached').to.deep.equal([]);

    await replica.pauseReplay();
    const em = fork();
    const book = await em.findOneOrFail(Book, 1);
    book.price = 99;
    book.title = 'Book 1, new edition';
    await em.flush();
    const [old] = await onReplica<{ title: string; price: number }>('SELECT title, price FROM book WHERE id = 1');
    expect(old, 'the replica has not replayed the update').to.deep.equal({ title: 'Book 1', price: 11 });
    b.takeSql();

    // The row: written through from the committing transaction, which ran on the primary: a hit with the new row.
    await b.cache().promotes.settle();
    const written = await fork().findOneOrFail(Book, 1);
    expect({ title: written.title, price: written.price }).to.deep.equal({ title: 'Book 1, new edition', price: 99 });
    expect(b.takeSql(), 'written through: a hit').to.deep.equal([]);
    // Evicted, it is a miss, filled from the primary.
    await invalidate(fork(), Book, [1]);
    b.takeSql();
    const row = await fork().findOneOrFail(Book, 1);
    expect({ title: row.title, price: row.price }).to.deep.equal({ title: 'Book 1, new edition', price: 99 });
    expect(b.takeSql(), 'the invalidated row was read from the database').to.have.length.greaterThan(0);
    const again = await fork().findOneOrFail(Book, 1);
    expect({ title: again.title, price: again.price }).to.deep.equal({ title: 'Book 1, new edition', price: 99 });
    expect(b.takeSql(), 'and cached: the second read is a hit').to.deep.equal([]);

    // Query results of em.find, em.count, em.findOne and QueryBuilder.cache(): re-run, then hits with the new data.
    const checks: Array<[string, () => Promise<unknown>, unknown]> = [
      ['em.find', async () => (await pricedFrom20()).map((x) => `${x.id}:${x.price}`), ['1:99', '10:20', '11:21', '12:22']],
      ['em.count', cheapCount, 1],
      ['em.findOne (new title)', async () => (await byTitle('Book 1, new edition'))?.price ?? null, 99],
      ['em.findOne (old title)', async () => (await byTitle('Book 1'))?.id ?? null, null],
      ['QueryBuilder', async () => (await qbPricedFrom20()).map((x) => `${x.id}:${x.price}`), ['1:99', '10:20', '11:21', '12:22']],
    ];
    const failures: string[] = [];
    for (const [name, run, expected] of checks) {
      b.takeSql();
      const first = await run();
      const ranSql = b.takeSql().length > 0;
      const second = await run();
      const hit = b.takeSql().length === 0;
      if (JSON.stringify(first) !== JSON.stringify(expected)) failures.push(`${name}: first read ${JSON.stringify(first)}, expected ${JSON.stringify(expected)}`);
      if (!ranSql) failures.push(`${name}: first read after the commit was served from the cache`);
      if (JSON.stringify(second) !== JSON.stringify(expected)) failures.push(`${name}: second read (cache) ${JSON.stringify(second)}, expected ${JSON.stringify(expected)}`);
      if (!hit) failures.push(`${name}: second read was not a cache hit`);
    }
    expect(failures).to.deep.equal([]);
    expect((await onReplica<{ price: number }>('SELECT price FROM book WHERE id = 1'))[0]?.price, 'still behind after all reads').to.equal(11);
  });

  it('fills a 1:m collection invalidated by a move from the primary, not the lagging replica', async () => {
    const books = async (authorId: number): Promise<number[]> => (await fork().findOneOrFail(Author, authorId, { populate: ['books'] })).books.getItems().map((x) => x.id);
    expect(await books(1)).to.deep.equal([1, 5, 9]);
    expect(await books(2)).to.deep.equal([2, 6, 10]);
    b.takeSql();
    expect(await books(1)).to.deep.equal([1, 5, 9]);
    expect(b.takeSql(), 'collections cached').to.deep.equal([]);

    await replica.pauseReplay();
    const em = fork();
    const moved = await em.findOneOrFail(Book, 5);
    moved.author = em.getReference(Author, 2);
    await em.flush();
    expect((await onReplica<{ author_id: number }>('SELECT author_id FROM book WHERE id = 5'))[0]?.author_id, 'the replica has not replayed the move').to.equal(1);
    b.takeSql();

    expect(await books(1)).to.deep.equal([1, 9]);
    expect(await books(2)).to.deep.equal([2, 5, 6, 10]);
    expect(b.takeSql(), 'both collections were read from the database').to.have.length.greaterThan(0);
    expect(await books(1)).to.deep.equal([1, 9]);
    expect(await books(2)).to.deep.equal([2, 5, 6, 10]);
    expect(b.takeSql(), 'and cached with the new members').to.deep.equal([]);
    expect((await fork().findOneOrFail(Book, 5)).author.id).to.equal(2);
  });
});
