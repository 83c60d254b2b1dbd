import { expect } from 'chai';
import pg from 'pg';
import type { FilterQuery, InferEntity } from '@mikro-orm/core';
import { sharedServers } from '../support/global-servers.js';
import { installWriteCapture } from '../../lib/mikro-orm/write-capture-setup.js';
import { schemeKey } from '../../lib/protocol/conjunction-schemes.js';
import { regionCopies } from '../../lib/protocol/protocol-context.js';
import { Novel, Writer, openPredicateStore, seedPredicateStore, type PredicateStore } from './predicate-entities.js';

type NovelRow = InferEntity<typeof Novel>;
type NovelWhere = FilterQuery<NovelRow>;

describe('query results invalidated by what a write changed (conjunction regions)', () => {
  let s: PredicateStore;

  before(async () => {
    const servers = sharedServers();
    s = await openPredicateStore(servers.memcachedAddresses, servers.db);
    await s.orm.schema.refresh();
    await installWriteCapture(s.orm);
  });
  beforeEach(async () => {
    await s.orm.em.fork().getConnection().execute('TRUNCATE pq_novel, pq_writer');
    await seedPredicateStore(s.orm, 6, 4);
    await s.cache().promotes.settle();
    s.takeSql();
  });
  after(async () => s?.close());

  /** Runs a cached find; `cached` says whether the cache answered (no SQL at all). */
  async function probe(where: NovelWhere): Promise<{ ids: number[]; cached: boolean }> {
    s.takeSql();
    const rows = await s.orm.em.fork().find(Novel, where, { cache: 60_000, orderBy: { id: 'asc' } });
    return { ids: rows.map((r) => r.id), cached: s.takeSql().length === 0 };
  }

  /** The ids SQL returns for the same where, read outside the cache. */
  async function truth(where: NovelWhere): Promise<number[]> {
    return (await s.orm.em.fork().find(Novel, where, { orderBy: { id: 'asc' } })).map((r) => r.id);
  }

  /** Caches every query (two reads: the first establishes the scheme and fills, the second must hit). */
  async function warm(...wheres: NovelWhere[]): Promise<void> {
    for (const where of wheres) {
      await probe(where);
      await probe(where);
      expect((await probe(where)).cached, `warm ${JSON.stringify(where)}`).to.equal(true);
    }
  }

  async function commit(work: (em: ReturnType<PredicateStore['orm']['em']['fork']>) => Promise<void>): Promise<void> {
    const em = s.orm.em.fork();
    await em.transactional(work);
    await s.cache().promotes.settle();
  }

  async function expectFresh(where: NovelWhere, cached: boolean, why: string): Promise<void> {
    const got = await probe(where);
    expect(got.cached, why).to.equal(cached);
    expect(got.ids, `${why}: the result equals SQL`).to.deep.equal(await truth(where));
  }

  it('a write to writer 3’s novel keeps find({ writer: 5 }) cached and evicts find({ writer: 3 })', async () => {
    await warm({ writer: 5 }, { writer: 3 });
    await commit(async (em) => {
      (await em.findOneOrFail(Novel, 301)).title = 'Renamed';
    });
    await expectFresh({ writer: 5 }, true, 'writer 5 was not touched');
    await expectFresh({ writer: 3 }, false, 'writer 3 changed');
    // Counted per table, as before: one statistics label per table, not one per conjunction.
    const labels = [...s.cache().xa.stats.regions().keys()];
    expect(labels).to.include('t:public.pq_novel');
    expect(labels.filter((l) => l.includes('p:'))).to.deep.equal([]);
  });

  it('moving a novel between writers evicts both writers’ results, and no other', async () => {
    await warm({ writer: 1 }, { writer: 2 }, { writer: 4 });
    await commit(async (em) => {
      (await em.findOneOrFail(Novel, 102)).writer = em.getReference(Writer, 2);
    });
    await expectFresh({ writer: 1 }, false, 'the old writer lost a novel (old value)');
    await expectFresh({ writer: 2 }, false, 'the new writer gained a novel (new value)');
    await expectFresh({ writer: 4 }, true, 'writer 4 was not touched');
  });

  it('inserts and deletes renew the conjunction of their new and old values', async () => {
    await warm({ writer: 1 }, { writer: 2 }, { writer: 6 });
    await commit(async (em) => {
      em.create(Novel, { id: 999, title: 'New', price: 1, published: false, genre: 'prose', writer: em.getReference(Writer, 1) });
    });
    await expectFresh({ writer: 1 }, false, 'an insert into writer 1');
    await commit(async (em) => {
      em.remove(await em.findOneOrFail(Novel, 201));
    });
    await expectFresh({ writer: 2 }, false, 'a delete from writer 2');
    await expectFresh({ writer: 6 }, true, 'writer 6 was not touched');
  });

  it('$in lists depend on each of their values', async () => {
    await warm({ writer: { $in: [1, 2] } }, { writer: { $in: [3, 4] } });
    await commit(async (em) => {
      (await em.findOneOrFail(Novel, 203)).price = 77;
    });
    await expectFresh({ writer: { $in: [1, 2] } }, false, 'writer 2 is in the list');
    await expectFresh({ writer: { $in: [3, 4] } }, true, 'neither 3 nor 4 was touched');
  });

  it('a flag toggle moves a row between the conjunctions of both values', async () => {
    const published = { writer: 2, published: true } as const;
    const unpublished = { writer: 2, published: false } as const;
    await warm({ published: true }, published, unpublished, { writer: 3, published: true });
    await commit(async (em) => {
      const novel = await em.findOneOrFail(Novel, 201);
      novel.published = !novel.published;
    });
    await expectFresh({ published: true }, false, 'published: true gained or lost the novel');
    await expectFresh(published, false, 'writer 2 published');
    await expectFresh(unpublished, false, 'writer 2 unpublished');
    await expectFresh({ writer: 3, published: true }, true, 'another writer');
  });

  it('raw SQL and trigger writes reach the conjunctions through the capture', async () => {
    await warm({ writer: 1 }, { writer: 4 }, { writer: 5 }, { writer: 6 });
    await commit(async (em) => {
      await em.getConnection().execute('UPDATE pq_novel SET writer_id = 4 WHERE id = 101', [], 'run', em.getTransactionContext());
    });
    await expectFresh({ writer: 1 }, false, 'raw SQL moved a novel out of writer 1');
    await expectFresh({ writer: 4 }, false, 'raw SQL moved a novel into writer 4');
    await expectFresh({ writer: 5 }, true, 'writer 5 was not touched by raw SQL');
    // A trigger on another table writes pq_novel: only the database knows.
    const conn = s.orm.em.fork().getConnection();
    await conn.execute(`CREATE OR REPLACE FUNCTION pq_move() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE pq_novel SET writer_id = NEW.id WHERE id = 601; RETURN NEW; END $$`);
    await conn.execute('DROP TRIGGER IF EXISTS pq_move ON pq_writer');
    await conn.execute('CREATE TRIGGER pq_move AFTER UPDATE ON pq_writer FOR EACH ROW WHEN (NEW.name = \'mover\') EXECUTE FUNCTION pq_move()');
    try {
      await warm({ writer: 5 }, { writer: 6 });
      await commit(async (em) => {
        (await em.findOneOrFail(Writer, 5)).name = 'mover';
      });
      await expectFresh({ writer: 6 }, false, 'the trigger moved a novel out of writer 6');
      await expectFresh({ writer: 5 }, false, 'the trigger moved a novel into writer 5');
    } finally {
      await conn.execute('DROP TRIGGER IF EXISTS pq_move ON pq_writer');
    }
  });

  it('writes outside any transaction (autocommit raw SQL) renew the conjunctions too', async () => {
    await warm({ writer: 2 }, { writer: 3 });
    await s.orm.em.fork().getConnection().execute('UPDATE pq_novel SET price = price + 1 WHERE id = 302');
    await s.cache().promotes.settle();
    await expectFresh({ writer: 3 }, false, 'autocommit raw SQL on writer 3');
    await expectFresh({ writer: 2 }, true, 'writer 2 untouched');
  });

  it('shapes that are not conjunctions of equalities keep depending on the whole table', async () => {
    const shapes: NovelWhere[] = [{ price: { $gt: 11 } }, { title: { $like: 'Novel 1%' } }, { $or: [{ writer: 1 }, { writer: 2 }] }, { writer: { name: 'Writer 1' } }, { writer: { $ne: 1 } }];
    await warm(...shapes, { writer: 1 });
    await commit(async (em) => {
      (await em.findOneOrFail(Novel, 604)).title = 'Elsewhere';
    });
    for (const shape of shapes) await expectFresh(shape, false, `${JSON.stringify(shape)} depends on the table`);
    await expectFresh({ writer: 1 }, true, 'a conjunction of another writer stays');
  });

  it('judges each shape: conjunctions through $and, $eq, { id } references, count, ordering and limits; the table otherwise', async () => {
    type Run = () => Promise<unknown>;
    const find = (where: NovelWhere, options: Record<string, unknown> = {}): Run => () => s.orm.em.fork().find(Novel, where, { cache: 60_000, ...options } as never);
    const shapes: Array<[string, Run, 'conjunction' | 'table']> = [
      ['$and', find({ $and: [{ writer: 2 }, { published: true }] }), 'conjunction'],
      ['$eq', find({ writer: { $eq: 2 } }), 'conjunction'],
      ['{ id } reference', find({ writer: { id: 2 } }), 'conjunction'],
      ['count', () => s.orm.em.fork().count(Novel, { writer: 2 }, { cache: 60_000 }), 'conjunction'],
      ['ordered and limited', find({ writer: 2 }, { orderBy: { price: 'desc' }, limit: 2 }), 'conjunction'],
      ['null in $in', find({ genre: { $in: ['prose', null] } }), 'table'],
      ['populated', find({ writer: 2 }, { populate: ['writer'] }), 'table'],
      ['ordered through a relation', find({ writer: 2 }, { orderBy: { writer: { name: 'asc' } } }), 'table'],
    ];
    const cached = async (run: Run): Promise<boolean> => {
      s.takeSql();
      await run();
      return s.takeSql().length === 0;
    };
    for (const [name, run] of shapes) {
      await run();
      await run();
      expect(await cached(run), `${name} is cached`).to.equal(true);
    }
    await commit(async (em) => {
      (await em.findOneOrFail(Novel, 604)).title = 'Elsewhere';
    });
    for (const [name, run, dependsOn] of shapes) expect(await cached(run), `${name} depends on ${dependsOn}`).to.equal(dependsOn === 'conjunction');
  });

  it('writes whose rows cannot be named (TRUNCATE, invalidateTable) renew every conjunction of the table', async () => {
    await warm({ writer: 1 }, { genre: 'poetry' });
    await commit(async (em) => {
      await em.getConnection().execute('TRUNCATE pq_novel', [], 'run', em.getTransactionContext());
    });
    await expectFresh({ writer: 1 }, false, 'TRUNCATE names no rows');
    await expectFresh({ genre: 'poetry' }, false, 'TRUNCATE names no rows');
  });

  it('keeps the scheme set in memcached, where another process learns it from', async () => {
    await warm({ writer: 2, genre: 'prose' });
    const servers = sharedServers();
    const other = await openPredicateStore(servers.memcachedAddresses, servers.db, s.cache().options.namespace);
    try {
      await other.orm.em.fork().find(Novel, { writer: 1 }, { cache: 60_000 }); // connects, binds the identity
      const read = await other.cache().xa.schemes.read(['public.pq_novel']);
      const view = read.get('public.pq_novel');
      expect(view?.state).to.equal('set');
      const names = view?.state === 'set' ? view.set.schemes.filter((x) => x.established).map((x) => x.columns.join(',')) : [];
      expect(names).to.include.members(['genre,writer_id', 'writer_id']);
      // A write from the other process renews this process's conjunctions.
      await other.orm.em.fork().transactional(async (em) => {
        (await em.findOneOrFail(Novel, 201)).genre = 'poetry';
      });
      await other.cache().promotes.settle();
      await expectFresh({ writer: 2, genre: 'prose' }, false, 'the other process’s write left the prose conjunction');
    } finally {
      await other.close();
    }
  });

  it('a scheme set lost from memcached is never trusted again: results fall back, then re-establish', async () => {
    await warm({ writer: 4 });
    // memcached evicts the set: every result read under it must stop being served.
    const cache = s.cache();
    await cache.xa.store.execute([{ op: 'delete', key: schemeKey('public.pq_novel') }] as const);
    const after = await probe({ writer: 4 });
    expect(after.cached, 'the guard refuses the lost set').to.equal(false);
    // A writer now sees no set and names no conjunction: what is cached afterwards must still be fresh.
    await warm({ writer: 4 });
    await commit(async (em) => {
      (await em.findOneOrFail(Novel, 401)).writer = em.getReference(Writer, 5);
    });
    await expectFresh({ writer: 4 }, false, 'a re-established scheme is renewed by the next writer');
    await expectFresh({ writer: 5 }, false, 'and the new value');
  });

  /**
   * Holds writers of a novel titled `gate…` inside their COMMIT — after prepare locked and read the scheme set, before
   * the commit is visible — until `open` runs: a deferred constraint trigger waits on an advisory lock this session
   * holds. That is the window in which a scheme appearing concurrently could be missed by the writer.
   */
  async function commitGate(): Promise<{ open(): Promise<void> }> {
    const conn = s.orm.em.fork().getConnection();
    await conn.execute(`CREATE OR REPLACE FUNCTION pq_gate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NULL; END $$`);
    await conn.execute('DROP TRIGGER IF EXISTS pq_gate ON pq_novel');
    await conn.execute(`CREATE CONSTRAINT TRIGGER pq_gate AFTER UPDATE ON pq_novel DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.title LIKE 'gate%' AND NEW.title IS DISTINCT FROM OLD.title) EXECUTE FUNCTION pq_gate()`);
    const holder = new pg.Client({ connectionString: sharedServers().db });
    await holder.connect();
    await holder.query('SELECT pg_advisory_lock(4242)');
    let opened: Promise<void> | undefined;
    return {
      open: () =>
        (opened ??= (async () => {
          await holder.query('SELECT pg_advisory_unlock(4242)');
          await holder.end();
        })()),
    };
  }

  /** Resolves once a session waits on the gate's advisory lock (the writer is inside its COMMIT). */
  async function writerAtGate(): Promise<void> {
    const conn = s.orm.em.fork().getConnection();
    for (let i = 0; i < 500; i++) {
      const [row] = await conn.execute<Array<{ n: string }>>(`SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted`);
      if (Number(row?.n) > 0) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error('the writer never reached the gate');
  }

  it('a scheme registered while a writer sits between prepare and COMMIT is not trusted until the writer is done', async () => {
    const servers = sharedServers();
    const namespace = `gate${process.pid}`;
    const [writer, reader] = (await Promise.all([0, 1].map(() => openPredicateStore(servers.memcachedAddresses, servers.db, namespace)))) as [PredicateStore, PredicateStore];
    const gate = await commitGate();
    try {
      await reader.orm.em.fork().find(Novel, { id: 0 }, { cache: 60_000 }); // connects
      // The writer prepares while the table has no scheme at all, then waits inside COMMIT.
      const moving = writer.orm.em.fork().transactional(async (em) => {
        const novel = await em.findOneOrFail(Novel, 101);
        novel.writer = em.getReference(Writer, 2);
        novel.title = 'gate 101';
      });
      await writerAtGate();
      // The scheme { writer } appears now, and the reader reads the pre-commit rows of writer 1.
      const before = await reader.orm.em.fork().find(Novel, { writer: 1 }, { cache: 60_000 });
      expect(before.map((n) => n.id)).to.include(101);
      const set = reader.cache().xa.schemes.cached('public.pq_novel');
      expect(set?.schemes.map((x) => [x.columns.join(','), x.established]), 'pending while a writer that missed it is in flight').to.deep.equal([['writer_id', false]]);
      await gate.open();
      await moving;
      await writer.cache().promotes.settle();
      // Whatever the reader cached, no read after the commit may see novel 101 under writer 1; and the scheme becomes
      // established once the writer left (the reader looks again at most every few milliseconds).
      const established = (): boolean => reader.cache().xa.schemes.cached('public.pq_novel')?.schemes[0]?.established === true;
      for (let i = 0; i < 100 && !established(); i++) {
        const after = await reader.orm.em.fork().find(Novel, { writer: 1 }, { cache: 60_000 });
        expect(after.map((n) => n.id), `read ${i} after the commit`).to.not.include(101);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(established(), 'established once the writer left').to.equal(true);
      for (let i = 0; i < 2; i++) {
        const after = await reader.orm.em.fork().find(Novel, { writer: 1 }, { cache: 60_000 });
        expect(after.map((n) => n.id), 'under the established scheme').to.not.include(101);
      }
    } finally {
      await gate.open().catch(() => undefined);
      await s.orm.em.fork().getConnection().execute('DROP TRIGGER IF EXISTS pq_gate ON pq_novel');
      await writer.close();
      await reader.close();
    }
  });

  it('a writer whose in-flight lock memcached dropped renews the schemes it missed at promote', async () => {
    const servers = sharedServers();
    const [writer, reader] = (await Promise.all([0, 1].map(() => openPredicateStore(servers.memcachedAddresses, servers.db, `drop${process.pid}`)))) as [PredicateStore, PredicateStore];
    const gate = await commitGate();
    try {
      await reader.orm.em.fork().find(Novel, { id: 0 }, { cache: 60_000 }); // connects
      const moving = writer.orm.em.fork().transactional(async (em) => {
        const novel = await em.findOneOrFail(Novel, 101);
        novel.writer = em.getReference(Writer, 2);
        novel.title = 'gate 101';
      });
      await writerAtGate();
      // memcached loses the writer's in-flight lock: the scheme is established although the writer missed it.
      const store = reader.cache().xa.store;
      await store.execute(regionCopies('t:public.pq_novel', store).map((key) => ({ op: 'delete' as const, key })));
      for (let i = 0; i < 2; i++) await reader.orm.em.fork().find(Novel, { writer: 1 }, { cache: 60_000 });
      expect(reader.cache().xa.schemes.cached('public.pq_novel')?.schemes[0]?.established, 'established: the dropped lock hid the writer').to.equal(true);
      await gate.open();
      await moving;
      await writer.cache().promotes.settle();
      const after = await reader.orm.em.fork().find(Novel, { writer: 1 }, { cache: 60_000 });
      expect(after.map((n) => n.id), 'promote renewed the conjunction it had missed').to.not.include(101);
    } finally {
      await gate.open().catch(() => undefined);
      await s.orm.em.fork().getConnection().execute('DROP TRIGGER IF EXISTS pq_gate ON pq_novel');
      await writer.close();
      await reader.close();
    }
  });

  it('a scheme appearing while writers run never leaves a stale result (many runs)', async function () {
    this.timeout(300_000);
    const servers = sharedServers();
    const runs = Number(process.env.PREDICATE_RACE_RUNS ?? 30);
    for (let run = 0; run < runs; run++) {
      // A fresh namespace per run: the scheme appears for the first time while the writers below move novels, one
      // of them held inside its COMMIT for a while (the race window made wide).
      const [writer, ...readers] = await Promise.all([0, 1, 2].map(() => openPredicateStore(servers.memcachedAddresses, servers.db, `race${run}x${process.pid}`)));
      const gate = await commitGate();
      try {
        const gated = writer!.orm.em.fork().transactional(async (em) => {
          const novel = await em.findOneOrFail(Novel, 100 * (1 + (run % 6)) + 1 + (run % 4));
          novel.writer = em.getReference(Writer, 1 + ((run * 5 + 1) % 6));
          novel.title = `gate ${run}`;
        });
        const writes = (async () => {
          for (let i = 0; i < 5; i++) {
            const id = 100 * (1 + ((run + i + 3) % 6)) + 1 + ((i + 1) % 4);
            const to = 1 + ((run * 7 + i * 3) % 6);
            await writer!.orm.em.fork().transactional(async (em) => {
              (await em.findOneOrFail(Novel, id)).writer = em.getReference(Writer, to);
            });
          }
        })();
        const reads = readers.map(async (reader, r) => {
          for (let i = 0; i < 8; i++) {
            await reader.orm.em.fork().find(Novel, { writer: 1 + ((i + r + run) % 6) }, { cache: 60_000 });
            if (i === 3 + (run % 4)) await gate.open();
          }
        });
        await Promise.all([writes, ...reads]);
        await gate.open().catch(() => undefined);
        await gated;
        await writer!.cache().promotes.settle();
        // Every result cached now must equal SQL.
        for (const reader of readers) {
          for (let w = 1; w <= 6; w++) {
            const rows = await reader.orm.em.fork().find(Novel, { writer: w }, { cache: 60_000 });
            const want = await truth({ writer: w });
            expect(rows.map((r) => r.id).sort((a, b) => a - b), `run ${run}, writer ${w}`).to.deep.equal(want);
          }
        }
      } finally {
        await gate.open().catch(() => undefined);
        for (const store of [writer!, ...readers]) await store.close();
      }
    }
    await s.orm.em.fork().getConnection().execute('DROP TRIGGER IF EXISTS pq_gate ON pq_novel');
  });
});
