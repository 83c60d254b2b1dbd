import { expect } from 'chai';
import { IsolationLevel } from '@mikro-orm/core';
import { sharedServers } from '../support/global-servers.js';
import { Author, Book, openBookstore, seedBookstore, type Bookstore } from '../support/bookstore.js';
import { decodeEntry } from '../../lib/protocol/entry-codec.js';

describe('transactions', () => {
  let b: Bookstore;
  before(async () => {
    const s = sharedServers();
    b = await openBookstore(s.memcachedAddresses, s.db);
  });
  beforeEach(async () => seedBookstore(b.orm));
  after(async () => b.close());

  const title = async (id: number): Promise<string | undefined> => (await b.orm.em.fork().findOne(Book, id))?.title;
  const lockedOrValue = async (id: number): Promise<string> => {
    const r = await b.cache().xa.store.get(`e:public.book:${id}`);
    return r.status === 'hit' ? decodeEntry(r.item.value).kind : r.status;
  };

  it('em.transactional: others see the old value until the commit, the new one after it returns', async () => {
    await title(1);
    await b.orm.em.fork().transactional(async (em) => {
      (await em.findOneOrFail(Book, 1)).title = 'committed';
      await em.flush();
      expect(await title(1)).to.equal('Book 1');
    });
    expect(await title(1)).to.equal('committed');
  });

  it('begin / commit / rollback by hand', async () => {
    await title(2);
    const em = b.orm.em.fork();
    await em.begin();
    (await em.findOneOrFail(Book, 2)).title = 'manual';
    await em.commit();
    expect(await title(2)).to.equal('manual');
    const em2 = b.orm.em.fork();
    await em2.begin();
    (await em2.findOneOrFail(Book, 2)).title = 'rolled back';
    await em2.flush();
    await em2.rollback();
    expect(await title(2)).to.equal('manual');
  });

  it('a rollback leaves no trace: no lock, no log row, the committed value is served', async () => {
    await title(3);
    await b.orm.em
      .fork()
      .transactional(async (em) => {
        (await em.findOneOrFail(Book, 3)).title = 'never';
        await em.flush();
        throw new Error('abort');
      })
      .catch(() => undefined);
    expect(['value', 'not_found']).to.include(await lockedOrValue(3));
    expect(await title(3)).to.equal('Book 3');
    const pool = await (b.orm.em.getDriver() as unknown as { xaConnection: { sqlRunner(): Promise<{ query(s: string): Promise<{ rows: object[] }> }> } }).xaConnection.sqlRunner();
    const { rows } = await pool.query('SELECT count(*)::int AS n FROM xa_cache_log');
    expect((rows[0] as { n: number }).n).to.be.at.most(1); // at most the last committed transaction's row, awaiting lazy deletion
  });

  it('reads its own writes inside a transaction (G4), though the row is cached', async () => {
    await title(4);
    await b.orm.em.fork().transactional(async (em) => {
      await em.nativeUpdate(Book, { id: 4 }, { title: 'mine' });
      em.clear(); // same transaction, empty identity map: the read goes to the driver
      expect((await em.findOneOrFail(Book, 4)).title).to.equal('mine');
    });
  });

  it('a savepoint rolled back inside a committed transaction: its writes are not served, the others are', async () => {
    await title(5);
    await title(6);
    await b.orm.em.fork().transactional(async (em) => {
      (await em.findOneOrFail(Book, 5)).title = 'outer';
      await em.flush();
      await em
        .transactional(async (inner) => {
          (await inner.findOneOrFail(Book, 6)).title = 'inner';
          await inner.flush();
          throw new Error('roll back the savepoint');
        })
        .catch(() => undefined);
    });
    expect(await title(5)).to.equal('outer');
    expect(await title(6)).to.equal('Book 6');
  });

  for (const isolationLevel of [IsolationLevel.REPEATABLE_READ, IsolationLevel.SERIALIZABLE]) {
    it(`serves nothing newer than the snapshot in a ${isolationLevel} transaction (G5)`, async () => {
      await title(7);
      await b.orm.em.fork().transactional(
        async (em) => {
          expect((await em.findOneOrFail(Book, 7)).title).to.equal('Book 7'); // takes the snapshot
          em.clear();
          const other = b.orm.em.fork();
          (await other.findOneOrFail(Book, 7)).title = 'newer';
          await other.flush();
          await title(7); // the cache now holds the newer row
          expect((await em.findOneOrFail(Book, 7)).title).to.equal('Book 7');
        },
        { isolationLevel },
      );
    });
  }

  it('the implicit transaction of a flush: prepared, committed, promoted', async () => {
    await title(8);
    const em = b.orm.em.fork();
    (await em.findOneOrFail(Book, 8)).title = 'implicit';
    await em.flush();
    expect(await title(8)).to.equal('implicit');
  });

  it('forks share one adapter, and each call finds its own transaction', async () => {
    const adapter = b.cache();
    const a = b.orm.em.fork();
    const c = b.orm.em.fork();
    expect(a.config.getResultCacheAdapter()).to.equal(adapter);
    await Promise.all([
      a.transactional(async (em) => {
        (await em.findOneOrFail(Author, 1)).name = 'A';
      }),
      c.transactional(async (em) => {
        (await em.findOneOrFail(Author, 2)).name = 'C';
        throw new Error('abort C');
      }).catch(() => undefined),
    ]);
    expect((await b.orm.em.fork().findOneOrFail(Author, 1)).name).to.equal('A');
    expect((await b.orm.em.fork().findOneOrFail(Author, 2)).name).to.equal('Author 2');
  });
});
