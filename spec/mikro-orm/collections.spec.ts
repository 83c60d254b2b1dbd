import { expect } from 'chai';
import { useSeededBookstore } from '../support/bookstore-hooks.js';
import { Author, Book, Tag, openBookstore, type Bookstore } from '../support/bookstore.js';
import { sharedServers } from '../support/global-servers.js';

describe('collections', () => {
  const bookstore = useSeededBookstore();
  let b: Bookstore;
  beforeEach(() => (b = bookstore()));

  const books = async (authorId: number): Promise<number[]> => (await b.orm.em.fork().findOneOrFail(Author, authorId, { populate: ['books'] })).books.getItems().map((x) => x.id);
  const tags = async (bookId: number): Promise<number[]> => (await b.orm.em.fork().findOneOrFail(Book, bookId, { populate: ['tags'] })).tags.getItems().map((x) => x.id).sort();
  const tagBooks = async (tagId: number): Promise<number[]> => (await b.orm.em.fork().findOneOrFail(Tag, tagId, { populate: ['books'] })).books.getItems().map((x) => x.id).sort((x, y) => x - y);

  it('iterates a 1:m collection again without touching the database', async () => {
    expect(await books(1)).to.deep.equal([1, 5, 9]);
    b.takeSql();
    expect(await books(1)).to.deep.equal([1, 5, 9]);
    expect(b.takeSql()).to.deep.equal([]);
  });

  it('reads the members of several owners with one multi-get round trip per server', async () => {
    const em = b.orm.em.fork();
    await em.find(Author, { id: [1, 2, 3, 4] }, { populate: ['books'] });
    const store = b.cache().xa.store;
    const before = store.counters.roundTrips;
    b.takeSql();
    await b.orm.em.fork().find(Author, { id: [1, 2, 3, 4] }, { populate: ['books'] });
    expect(b.takeSql()).to.deep.equal([]);
    // rows of the authors, then their collections, then the books: three reads, each one round trip per server
    expect(store.counters.roundTrips - before).to.be.at.most(3 * 3);
  });

  it('findOne with populate of a cached 1:m collection: owner row and member ids in one round trip, member rows in a second', async () => {
    // One memcached server, so a round trip is a round trip (with several, one per server).
    const s = sharedServers();
    const one = await openBookstore([s.memcachedAddresses[0] as string], s.db);
    try {
      const read = async (): Promise<number[]> => (await one.orm.em.fork().findOneOrFail(Author, 2, { populate: ['books'] })).books.getItems().map((x) => x.id);
      expect(await read()).to.deep.equal([2, 6, 10]);
      expect(await read()).to.deep.equal([2, 6, 10]);
      const store = one.cache().xa.store;
      const stats = one.cache().xa.stats;
      const before = store.counters.roundTrips;
      const [hits, misses] = [stats.hits, stats.misses];
      one.takeSql();
      expect(await read()).to.deep.equal([2, 6, 10]);
      expect(one.takeSql()).to.deep.equal([]);
      expect(store.counters.roundTrips - before).to.equal(2);
      expect([stats.hits - hits, stats.misses - misses], 'counted once: the owner, its collection, 3 books').to.deep.equal([5, 0]);
      // A member moved away: the prefetched ids are those of after the commit, never the old ones.
      const em = one.orm.em.fork();
      (await em.findOneOrFail(Book, 6)).author = em.getReference(Author, 1);
      await em.flush();
      expect(await read()).to.deep.equal([2, 10]);
      expect(await read()).to.deep.equal([2, 10]);
      const back = one.orm.em.fork();
      (await back.findOneOrFail(Book, 6)).author = back.getReference(Author, 2);
      await back.flush();
      expect(await read()).to.deep.equal([2, 6, 10]);
    } finally {
      await one.close();
    }
  });

  it('invalidates exactly the affected owners when a member is added, moved or removed', async () => {
    await Promise.all([books(1), books(2), books(3)]);
    const em = b.orm.em.fork();
    em.create(Book, { id: 50, title: 'New', price: 1, author: 1 });
    await em.flush();
    b.takeSql();
    expect(await books(3)).to.deep.equal([3, 7, 11]);
    expect(b.takeSql(), 'author 3 is untouched').to.deep.equal([]);
    expect(await books(1)).to.deep.equal([1, 5, 9, 50]);

    const em2 = b.orm.em.fork();
    const moved = await em2.findOneOrFail(Book, 50);
    moved.author = em2.getReference(Author, 2);
    await em2.flush();
    expect(await books(1)).to.deep.equal([1, 5, 9]);
    expect(await books(2)).to.deep.equal([2, 6, 10, 50]);

    const em3 = b.orm.em.fork();
    em3.remove(em3.getReference(Book, 50));
    await em3.flush();
    expect(await books(2)).to.deep.equal([2, 6, 10]);
  });

  it('caches m:n collections on both sides and invalidates both when the pivot changes', async () => {
    expect(await tags(1)).to.deep.equal([1, 2]);
    expect(await tagBooks(3)).to.deep.equal([2, 3, 6, 7, 10, 11]);
    b.takeSql();
    expect(await tags(1)).to.deep.equal([1, 2]);
    expect(await tagBooks(3)).to.deep.equal([2, 3, 6, 7, 10, 11]);
    expect(b.takeSql()).to.deep.equal([]);
    const em = b.orm.em.fork();
    const book = await em.findOneOrFail(Book, 1, { populate: ['tags'] });
    book.tags.add(em.getReference(Tag, 3));
    await em.flush();
    expect(await tags(1)).to.deep.equal([1, 2, 3]);
    expect(await tagBooks(3)).to.deep.equal([1, 2, 3, 6, 7, 10, 11]);
  });

  it('invalidates collections when a native write moves a member', async () => {
    await books(4);
    await b.orm.em.fork().nativeUpdate(Book, { id: 4 }, { author: 1 });
    expect(await books(4)).to.deep.equal([8, 12]);
    expect(await books(1)).to.include(4);
  });
});
