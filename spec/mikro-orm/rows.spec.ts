import { expect } from 'chai';
import { wrap } from '@mikro-orm/core';
import { useSeededBookstore } from '../support/bookstore-hooks.js';
import { Author, Book, type Bookstore } from '../support/bookstore.js';

const selects = (sql: string[]): string[] => sql.filter((q) => /^\s*select/i.test(q));

describe('entities by primary key', () => {
  const bookstore = useSeededBookstore();
  let b: Bookstore;
  beforeEach(() => (b = bookstore()));

  it('serves findOne by primary key from the cache with zero SQL on a hit', async () => {
    const first = await b.orm.em.fork().findOneOrFail(Book, 1);
    expect(selects(b.takeSql())).to.have.length(1);
    const second = await b.orm.em.fork().findOneOrFail(Book, 1);
    expect(b.takeSql()).to.deep.equal([]);
    expect(wrap(second).toObject()).to.deep.equal(wrap(first).toObject());
    expect(b.cache().xa.stats.hits).to.be.greaterThan(0);
  });

  it('serves find({ id: [...] }) with one multi-get, loading only the missing rows', async () => {
    await b.orm.em.fork().findOneOrFail(Book, 2);
    b.takeSql();
    const books = await b.orm.em.fork().find(Book, { id: [3, 2, 4] });
    expect(books.map((x) => x.id)).to.have.members([3, 2, 4]);
    const sql = b.takeSql();
    expect(sql).to.have.length(1);
    expect(sql[0]).to.match(/in \(\?, \?\)/); // only 3 and 4 came from the database
    await b.orm.em.fork().find(Book, { id: [2, 3, 4] });
    expect(b.takeSql()).to.deep.equal([]);
  });

  it('does not mark a hit dirty: no UPDATE on the next flush', async () => {
    await b.orm.em.fork().findOneOrFail(Author, 1);
    const em = b.orm.em.fork();
    const author = await em.findOneOrFail(Author, 1);
    expect(author.born).to.be.instanceOf(Date);
    await em.flush();
    expect(b.takeSql().filter((q) => /^update/i.test(q))).to.deep.equal([]);
  });

  it('respects the fields asked for on a hit', async () => {
    await b.orm.em.fork().findOneOrFail(Book, 5);
    b.takeSql();
    const em = b.orm.em.fork();
    const partial = await em.findOneOrFail(Book, 5, { fields: ['title'] });
    expect(b.takeSql()).to.deep.equal([]);
    expect(partial.title).to.equal('Book 5');
    expect((partial as { price?: number }).price).to.equal(undefined);
  });

  it('loads select-in populated references through the row cache', async () => {
    const em = b.orm.em.fork();
    await em.findOneOrFail(Book, 6, { populate: ['author'], strategy: 'select-in' });
    b.takeSql();
    const again = await b.orm.em.fork().findOneOrFail(Book, 6, { populate: ['author'], strategy: 'select-in' });
    expect(b.takeSql()).to.deep.equal([]);
    expect(again.author.name).to.equal('Author 2');
  });

  it('changes per row: updating one book leaves another cached, and the updated one holds its new row', async () => {
    await b.orm.em.fork().find(Book, { id: [7, 8] });
    const em = b.orm.em.fork();
    const book = await em.findOneOrFail(Book, 7);
    book.title = 'Seven, revised';
    await em.flush();
    await b.cache().promotes.settle();
    b.takeSql();
    expect((await b.orm.em.fork().findOneOrFail(Book, 8)).title).to.equal('Book 8');
    expect(b.takeSql()).to.deep.equal([]);
    // Written through (spec/mikro-orm/write-through.spec.ts): a hit, no SELECT.
    expect((await b.orm.em.fork().findOneOrFail(Book, 7)).title).to.equal('Seven, revised');
    expect(selects(b.takeSql())).to.deep.equal([]);
  });

  it('returns null for a deleted row, and never caches a missing one', async () => {
    const em = b.orm.em.fork();
    const review = em.create(Book, { id: 99, title: 'Gone soon', price: 1, author: 1 });
    await em.flush();
    await b.orm.em.fork().findOneOrFail(Book, 99);
    em.remove(review);
    await em.flush();
    expect(await b.orm.em.fork().findOne(Book, 99)).to.equal(null);
    expect(await b.orm.em.fork().findOne(Book, 12345)).to.equal(null);
    const em2 = b.orm.em.fork();
    em2.create(Book, { id: 12345, title: 'Late', price: 1, author: 1 });
    await em2.flush();
    expect((await b.orm.em.fork().findOneOrFail(Book, 12345)).title).to.equal('Late');
  });

  it('lets concurrent missers of one row wait for the first one instead of all reading the database', async () => {
    const misses = await Promise.all(Array.from({ length: 10 }, () => b.orm.em.fork().findOneOrFail(Book, 10)));
    expect(misses.every((book) => book.title === 'Book 10')).to.equal(true);
    expect(selects(b.takeSql()).length).to.be.lessThan(10);
    expect(b.cache().xa.stats.leaseWaits).to.be.greaterThan(0);
  });

  it('bypasses the cache for a user refresh and for pessimistic locks', async () => {
    await b.orm.em.fork().findOneOrFail(Book, 9);
    b.takeSql();
    await b.orm.em.fork().findOneOrFail(Book, 9, { refresh: true });
    expect(selects(b.takeSql())).to.have.length(1);
    await b.orm.em.fork().transactional((em) => em.findOneOrFail(Book, 9, { lockMode: 4 /* PESSIMISTIC_WRITE */ }));
    expect(selects(b.takeSql())).to.have.length(1);
  });
});
