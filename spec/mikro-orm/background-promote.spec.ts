import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { sharedServers } from '../support/global-servers.js';
import { keys, regions } from '../../lib/mikro-orm/cache-keys.js';
import { regionKey } from '../../lib/protocol/protocol-context.js';
import { Author, Book, Tag, openBookstore, seedBookstore, type Bookstore } from '../support/bookstore.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Promote runs after the commit call returned (docs/protocol.md, "Writes", step 3): the keys are still locked by
 * the prepare, so G2 and G3 hold meanwhile, and a clean shutdown waits for it.
 */
describe('promote in the background', () => {
  let reader: Bookstore;
  let namespace: string;
  before(async () => {
    const s = sharedServers();
    namespace = `p${randomUUID().slice(0, 8)}`;
    reader = await openBookstore(s.memcachedAddresses, s.db, { namespace });
    await seedBookstore(reader.orm);
    await reader.orm.em.fork().findOne(Tag, 1); // connected, capture gate checked
  });
  after(async () => reader?.close());

  /** A writer ORM on the reader's namespace whose promotes stop half-way until `hold` resolves. */
  async function writer(hold: () => Promise<void>): Promise<Bookstore & { inPromote: () => boolean }> {
    const s = sharedServers();
    let inPromote = false;
    const b = await openBookstore(s.memcachedAddresses, s.db, {
      namespace,
      midPromoteHook: async () => {
        inPromote = true;
        await hold();
        inPromote = false;
      },
    });
    return Object.assign(b, { inPromote: () => inPromote });
  }

  it('returns from flush before promote finished, and another ORM reads the new values at once (G2)', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const w = await writer(() => gate);
    try {
      const readBook = async (): Promise<string> => (await reader.orm.em.fork().findOneOrFail(Book, 5)).title;
      const readBooks = async (): Promise<number[]> => (await reader.orm.em.fork().findOneOrFail(Author, 2, { populate: ['books'] })).books.getItems().map((x) => x.id);
      const readResult = async (): Promise<string[]> => (await reader.orm.em.fork().find(Book, { price: { $gt: 14 } }, { cache: 60_000, orderBy: { id: 'asc' } })).map((x) => x.title);
      // Warm, and served from the cache.
      for (let i = 0; i < 2; i++) await Promise.all([readBook(), readBooks(), readResult()]);
      reader.takeSql();
      await Promise.all([readBook(), readBooks(), readResult()]);
      expect(reader.takeSql()).to.deep.equal([]);

      const em = w.orm.em.fork();
      const book = await em.findOneOrFail(Book, 5);
      book.title = 'Five, after';
      book.author = em.getReference(Author, 2);
      const flushed = await Promise.race([em.flush().then(() => 'flushed'), sleep(10_000).then(() => 'still in flush')]);
      expect(flushed, 'the commit call waited for promote').to.equal('flushed');
      expect(w.cache().promotes.size, 'promote is still running').to.equal(1);

      // Right after the commit returned, every key is locked: every read is the committed state.
      expect(await readBook()).to.equal('Five, after');
      while (!w.inPromote()) await sleep(5);
      // Half the keys are still locked, half promoted: still the committed state.
      expect(await readBook()).to.equal('Five, after');
      expect(await readBooks()).to.deep.equal([2, 5, 6, 10]);
      expect(await readResult()).to.include('Five, after');

      release();
      await w.cache().promotes.settle();
      expect(w.inPromote()).to.equal(false);
      expect(await readBook()).to.equal('Five, after');
      expect(await readBooks()).to.deep.equal([2, 5, 6, 10]);
    } finally {
      release();
      await w.close();
    }
  });

  it('waits for in-flight promotes on orm.close(): no lock is left behind', async () => {
    const w = await writer(() => sleep(300));
    const em = w.orm.em.fork();
    const book = await em.findOneOrFail(Book, 7);
    book.title = 'Seven, closing';
    await em.flush();
    expect(w.cache().promotes.size, 'a promote is in flight when close starts').to.equal(1);
    await w.close();
    expect(w.cache().promotes.size).to.equal(0);
    const touched = [keys.row('public.book', '7'), regionKey(regions.query('public.book')), regionKey(regions.rows('public.book'))];
    expect([...(await reader.cache().xa.lockHolders(touched)).keys()]).to.deep.equal([]);
    expect((await reader.orm.em.fork().findOneOrFail(Book, 7)).title).to.equal('Seven, closing');
  });
});
