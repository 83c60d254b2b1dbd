import { expect } from 'chai';
import { sharedServers } from '../support/global-servers.js';
import { Author, Book, Publisher, openBookstore, seedBookstore, type Bookstore } from '../support/bookstore.js';

/**
 * Every write path invalidates what it touches (G8): the unit of work, and writes that bypass it — nativeUpdate,
 * nativeDelete, insertMany, QueryBuilder insert/update/delete and raw SQL through em.execute.
 */
describe('every write path invalidates', () => {
  let b: Bookstore;
  before(async () => {
    const s = sharedServers();
    b = await openBookstore(s.memcachedAddresses, s.db);
  });
  beforeEach(async () => {
    await seedBookstore(b.orm);
    // Warm: a row, a query result and a collection that each write below must invalidate.
    await title(1);
    await cheapCount();
    await bookIds(1);
  });
  after(async () => b.close());

  const title = async (id: number): Promise<string | undefined> => (await b.orm.em.fork().findOne(Book, id))?.title;
  const cheapCount = (): Promise<number> => b.orm.em.fork().count(Book, { price: { $lt: 100 } }, { cache: 60_000 });
  const bookIds = async (authorId: number): Promise<number[]> => (await b.orm.em.fork().findOneOrFail(Author, authorId, { populate: ['books'] })).books.getItems().map((x) => x.id);

  it('unit of work: update', async () => {
    const em = b.orm.em.fork();
    (await em.findOneOrFail(Book, 1)).title = 'uow';
    await em.flush();
    expect(await title(1)).to.equal('uow');
  });

  it('unit of work: delete with cascade to the collection', async () => {
    const em = b.orm.em.fork();
    em.remove(em.getReference(Book, 1));
    await em.flush();
    expect(await title(1)).to.equal(undefined);
    expect(await bookIds(1)).to.deep.equal([5, 9]);
    expect(await cheapCount()).to.equal(11);
  });

  it('unit of work: orphan removal through a collection', async () => {
    const em = b.orm.em.fork();
    const author = await em.findOneOrFail(Author, 1, { populate: ['books'] });
    const first = author.books.getItems()[0] as InstanceType<typeof Book.class>;
    first.author = em.getReference(Author, 2);
    await em.flush();
    expect(await bookIds(1)).to.deep.equal([5, 9]);
    expect(await bookIds(2)).to.include(1);
  });

  it('nativeUpdate by primary key', async () => {
    await b.orm.em.fork().nativeUpdate(Book, { id: 1 }, { title: 'native' });
    expect(await title(1)).to.equal('native');
  });

  it('nativeUpdate by any condition', async () => {
    await b.orm.em.fork().nativeUpdate(Book, { price: { $lt: 12 } }, { title: 'bulk' });
    expect(await title(1)).to.equal('bulk');
  });

  it('nativeDelete', async () => {
    await b.orm.em.fork().nativeDelete(Book, { author: 1 });
    expect(await title(1)).to.equal(undefined);
    expect(await bookIds(1)).to.deep.equal([]);
    expect(await cheapCount()).to.equal(9);
  });

  it('insertMany', async () => {
    await b.orm.em.fork().insertMany(Book, [
      { id: 100, title: 'A', price: 1, author: 1 },
      { id: 101, title: 'B', price: 2, author: 1 },
    ]);
    expect(await cheapCount()).to.equal(14);
    expect(await bookIds(1)).to.deep.equal([1, 5, 9, 100, 101]);
  });

  it('QueryBuilder update, insert and delete', async () => {
    await b.orm.em.fork().createQueryBuilder(Book).update({ title: 'qb' }).where({ id: 1 }).execute();
    expect(await title(1)).to.equal('qb');
    await b.orm.em.fork().createQueryBuilder(Book).insert({ id: 200, title: 'qb-new', price: 5, author: 1 }).execute();
    expect(await cheapCount()).to.equal(13);
    expect(await bookIds(1)).to.include(200);
    await b.orm.em.fork().createQueryBuilder(Book).delete().where({ id: 200 }).execute();
    expect(await cheapCount()).to.equal(12);
  });

  it('raw SQL through em.execute', async () => {
    await b.orm.em.fork().execute(`update book set title = 'raw' where id = 1`);
    expect(await title(1)).to.equal('raw');
    await b.orm.em.fork().execute(`delete from book where id = 5`);
    expect(await bookIds(1)).to.deep.equal([1, 9]);
    expect(await cheapCount()).to.equal(11);
  });

  it('raw SQL inside a transaction, applied only at its commit', async () => {
    await b.orm.em.fork().transactional(async (em) => {
      await em.execute(`update publisher set name = 'raw-tx' where id = 1`);
      expect((await b.orm.em.fork().findOneOrFail(Publisher, 1)).name, 'others see the committed name meanwhile').to.equal('Publisher 1');
    });
    expect((await b.orm.em.fork().findOneOrFail(Publisher, 1)).name).to.equal('raw-tx');
  });
});

describe('writes the database makes on its own', () => {
  it('a cascading delete invalidates results of the child table', async () => {
    const s = sharedServers();
    const b = await openBookstore(s.memcachedAddresses, s.db);
    try {
      await seedBookstore(b.orm);
      const { Review } = await import('../support/bookstore.js');
      const reviews = (): Promise<number> => b.orm.em.fork().count(Review, {}, { cache: 60_000 });
      expect(await reviews()).to.equal(12);
      const em = b.orm.em.fork();
      em.remove(em.getReference(Book, 1));
      await em.flush();
      expect(await reviews()).to.equal(11);
    } finally {
      await b.close();
    }
  });
});
