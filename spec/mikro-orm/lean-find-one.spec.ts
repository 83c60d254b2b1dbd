import { expect } from 'chai';
import { EntityManager, wrap, type EventArgs, type EventSubscriber } from '@mikro-orm/core';
import { sharedServers } from '../support/global-servers.js';
import { useSeededBookstore } from '../support/bookstore-hooks.js';
import { Author, Book, openBookstore, type Bookstore } from '../support/bookstore.js';

const selects = (sql: string[]): string[] => sql.filter((q) => /^\s*select/i.test(q));

/**
 * `em.findOne(Entity, id)` without options takes a lean path (lib/mikro-orm/lean-find-one.ts) that skips the entity
 * manager's general query preparation. What a user can observe must be what MikroORM's own `findOne` does.
 */
describe('findOne(Entity, id): the lean path behaves as MikroORM\'s findOne', () => {
  const bookstore = useSeededBookstore();
  let b: Bookstore;
  beforeEach(() => (b = bookstore()));

  /** Calls of the general preparation (filters, populate hints) during `work`: 0 when the lean path served it. */
  const preparations = async (work: () => Promise<unknown>): Promise<number> => {
    const proto = EntityManager.prototype as unknown as { processWhere: (...args: unknown[]) => unknown };
    const original = proto.processWhere;
    let calls = 0;
    proto.processWhere = function (this: unknown, ...args: unknown[]) {
      calls++;
      return original.apply(this, args);
    };
    try {
      await work();
    } finally {
      proto.processWhere = original;
    }
    return calls;
  };

  it('is taken for a cached entity by id, and returns what MikroORM\'s path returns', async () => {
    const em1 = b.orm.em.fork();
    const viaMikroOrm = await em1.findOneOrFail(Book, { id: 5 }, { populate: [] as never[] }); // an option: the general path
    const em2 = b.orm.em.fork();
    let lean: InstanceType<typeof Book.class> | null = null;
    expect(await preparations(async () => (lean = await em2.findOne(Book, 5)))).to.equal(0);
    expect(wrap(lean!).toObject()).to.deep.equal(wrap(viaMikroOrm).toObject());
    expect(wrap(lean!).isInitialized()).to.equal(true);
    expect(wrap(lean!.author).isInitialized(), 'relations are references, as without the cache').to.equal(false);
    expect(await preparations(() => b.orm.em.fork().findOne(Book, { id: 5 })), 'the { id } form').to.equal(0);
  });

  it('keeps the identity map: the same instance within a fork, merged into the fork', async () => {
    const em = b.orm.em.fork();
    const first = await em.findOneOrFail(Book, 3);
    const again = await em.findOneOrFail(Book, 3);
    expect(again).to.equal(first);
    expect(em.getUnitOfWork().getById(Book, 3)).to.equal(first);
    first.title = 'changed in memory';
    b.takeSql();
    expect((await em.findOneOrFail(Book, 3)).title, 'an identity-map hit, not reloaded').to.equal('changed in memory');
    expect(b.takeSql()).to.deep.equal([]);
  });

  it('initialises a reference already in the identity map (MikroORM\'s path)', async () => {
    const em = b.orm.em.fork();
    const reference = em.getReference(Book, 4);
    expect(wrap(reference).isInitialized()).to.equal(false);
    const found = await em.findOneOrFail(Book, 4);
    expect(found).to.equal(reference);
    expect(wrap(found).isInitialized()).to.equal(true);
    expect(found.title).to.equal('Book 4');
  });

  it('flushes first when the fork has a pending persist of the entity (auto flush)', async () => {
    const em = b.orm.em.fork();
    em.create(Book, { id: 500, title: 'Pending', price: 1, author: 1 });
    b.takeSql();
    await em.findOne(Book, 9);
    expect(b.takeSql().some((q) => /^insert/i.test(q)), 'the pending INSERT was flushed first').to.equal(true);
    await b.orm.em.fork().nativeDelete(Book, { id: 500 });
  });

  it('returns null for a row that does not exist; findOneOrFail throws', async () => {
    expect(await b.orm.em.fork().findOne(Book, 9999)).to.equal(null);
    const error = await b.orm.em
      .fork()
      .findOneOrFail(Book, 9999)
      .then(
        () => undefined,
        (e: Error) => e,
      );
    expect(error?.message).to.match(/Book not found/);
  });

  it('fires onLoad for entities it loads, as MikroORM does', async () => {
    const loaded: number[] = [];
    const subscriber: EventSubscriber = {
      getSubscribedEntities: () => [Book],
      onLoad: (args: EventArgs<object>) => void loaded.push((args.entity as { id: number }).id),
    };
    b.orm.em.getEventManager().registerSubscriber(subscriber);
    try {
      await b.orm.em.fork().findOne(Book, 6); // filled or hit
      await b.orm.em.fork().findOne(Book, 6); // a hit
      expect(loaded).to.deep.equal([6, 6]);
    } finally {
      const subscribers = b.orm.em.getEventManager().getSubscribers() as Set<EventSubscriber>;
      subscribers.delete(subscriber);
    }
  });

  it('is not taken inside a transaction: the database answers there', async () => {
    await b.orm.em.fork().findOne(Book, 7);
    b.takeSql();
    await b.orm.em.fork().transactional(async (em) => {
      expect(await em.findOne(Book, 7)).to.not.equal(null);
    });
    expect(selects(b.takeSql())).to.have.length(1);
  });

  it('refuses the global entity manager as MikroORM does', async () => {
    const error = await Promise.resolve()
      .then(() => b.orm.em.findOne(Book, 1))
      .then(
        () => undefined,
        (e: Error) => e,
      );
    expect(error?.message).to.match(/global EntityManager/);
  });
});

describe('findOne(Entity, id) with filters: the filter applies, as without the cache', function () {
  this.timeout(60_000);

  const open = async (filters: Record<string, unknown>): Promise<Bookstore> => {
    const s = sharedServers();
    const store = await openBookstore(s.memcachedAddresses, s.db, {}, { filters } as never);
    return store;
  };

  it('a global filter (config)', async () => {
    const store = await open({ cheap: { cond: { price: { $lt: 0 } }, entity: ['Book'], default: true } });
    try {
      await store.orm.em.fork().findOne(Book, 1, { filters: false }); // fills the row cache
      expect(await store.orm.em.fork().findOne(Book, 1, { filters: false })).to.not.equal(null);
      expect(await store.orm.em.fork().findOne(Book, 1), 'excluded by the filter').to.equal(null);
    } finally {
      await store.close();
    }
  });

  it('a filter added to an entity manager, and so to its forks', async () => {
    const store = await open({});
    try {
      expect(await store.orm.em.fork().findOne(Author, 2)).to.not.equal(null);
      const em = store.orm.em.fork();
      em.addFilter({ name: 'none', cond: { id: { $lt: 0 } }, entity: Author });
      expect(await em.findOne(Author, 2), 'excluded by the filter').to.equal(null);
      expect(await em.fork().findOne(Author, 2), 'a fork has its parent\'s filters').to.equal(null);
    } finally {
      await store.close();
    }
  });
});
