import { expect } from 'chai';
import { sharedServers } from '../support/global-servers.js';
import { Author, Book, openBookstore, seedBookstore, type Bookstore } from '../support/bookstore.js';

describe('smoke', () => {
  let b: Bookstore;
  before(async () => {
    const s = sharedServers();
    b = await openBookstore(s.memcachedAddresses, s.db);
    await seedBookstore(b.orm);
  });
  after(async () => b.close());

  it('reads a row twice, the second time from the cache', async () => {
    b.takeSql();
    const first = await b.orm.em.fork().findOne(Book, 1);
    console.log(b.takeSql());
    const second = await b.orm.em.fork().findOne(Book, 1);
    console.log(b.takeSql());
    expect(second?.title).to.equal(first?.title);
    const em = b.orm.em.fork();
    const book = await em.findOneOrFail(Book, 1);
    book.title = 'changed';
    await em.flush();
    console.log(b.takeSql());
    const third = await b.orm.em.fork().findOne(Book, 1);
    console.log(b.takeSql(), third?.title);
    const a = await b.orm.em.fork().findOneOrFail(Author, 1, { populate: ['books'] });
    console.log(b.takeSql(), a.books.length);
    const a2 = await b.orm.em.fork().findOneOrFail(Author, 1, { populate: ['books'] });
    console.log(b.takeSql(), a2.books.length);
    const r = await b.orm.em.fork().find(Book, { price: { $gt: 12 } }, { cache: 10_000 });
    console.log(b.takeSql(), r.length);
    const r2 = await b.orm.em.fork().find(Book, { price: { $gt: 12 } }, { cache: 10_000 });
    console.log(b.takeSql(), r2.length);
  });
});
