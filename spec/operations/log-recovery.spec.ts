import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { sharedServers } from '../support/global-servers.js';
import { Book, openBookstore, seedBookstore, type Bookstore } from '../support/bookstore.js';
import { startXaCache } from '../../lib/operations/start-xa-cache.js';
import { killWriterMidPromote, runTool } from '../cli/cli-harness.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The transaction log after faults and in idle periods (issue 14, cases 4–6): a restarted process recovers a fresh
 * crash at once with default options, no log row outlives its bound, a healthy idle app is never "in doubt", and
 * ages count from the commit, not from the transaction's start.
 */
describe('transaction log: recovery bounds and idle health', function () {
  this.timeout(60_000);
  const namespace = `lr${randomUUID().slice(0, 6)}`;
  const logTable = `lr_log_${namespace}`;
  let b: Bookstore;
  let pool: pg.Pool;
  let conn: string[];
  const rows = async (): Promise<number> => (await pool.query(`SELECT count(*)::int AS n FROM ${logTable}`)).rows[0].n as number;

  before(async () => {
    const s = sharedServers();
    b = await openBookstore(s.memcachedAddresses, s.db, { namespace, logTable });
    await seedBookstore(b.orm);
    pool = new pg.Pool({ connectionString: s.db, max: 2 });
    conn = ['--db', s.db, '--memcached', s.memcachedAddresses.join(','), '--namespace', namespace, '--log-table', logTable];
  });
  after(async () => {
    await b.close();
    await pool.end();
  });
  beforeEach(async () => {
    await b.cache().xa.flushLogDeletes(pool);
    await pool.query(`DELETE FROM ${logTable}`);
  });

  it('a process restarted right after a crash between COMMIT and promote recovers it at startup, with default options', async () => {
    expect((await b.orm.em.fork().findOneOrFail(Book, 6)).title).to.equal('Book 6'); // cached: a stale value would show
    await killWriterMidPromote({ namespace, logTable, bookId: 6, title: 'after the crash' });
    expect(await rows()).to.equal(1); // fresh: far younger than the default minAgeMs (10 s)

    // The replacement process: its own ORM, startXaCache with defaults.
    const s = sharedServers();
    const started = performance.now();
    const replacement = await openBookstore(s.memcachedAddresses, s.db, { namespace, logTable });
    const runtime = await startXaCache(replacement.orm);
    try {
      const ms = performance.now() - started;
      expect(runtime.lastSweep).to.include({ resolved: 1, unresolved: 0 });
      expect(await rows()).to.equal(0);
      // Readable, and cacheable again: the second read is a hit, so no key is left locked.
      const hits = replacement.cache().xa.stats.hits;
      for (let i = 0; i < 2; i++) expect((await replacement.orm.em.fork().findOneOrFail(Book, 6)).title).to.equal('after the crash');
      expect(replacement.cache().xa.stats.hits).to.be.greaterThan(hits);
      expect(ms).to.be.below(5000);
    } finally {
      await runtime.stop();
      await replacement.close();
    }
  });

  it('sweeps a row too young at startup whose writer is alive once it reaches minAgeMs, without periodic sweeps', async () => {
    const s = sharedServers();
    // A live writer's committed row, its session still open: the startup sweep must leave it to its owner.
    const owner = new pg.Client({ connectionString: s.db });
    await owner.connect();
    try {
      await owner.query(`INSERT INTO ${logTable} (tx_id, namespace, keys, regions) VALUES ($1, $2, $3, $4)`, [randomUUID(), namespace, ['e:public.book:7'], []]);
      const runtime = await startXaCache(b.orm, { sweep: { minAgeMs: 1500 } });
      try {
        expect(runtime.lastSweep).to.include({ resolved: 0 });
        expect(await rows()).to.equal(1);
        const deadline = Date.now() + 5000;
        while ((await rows()) > 0) {
          if (Date.now() > deadline) throw new Error('the follow-up sweep did not delete the row');
          await sleep(100);
        }
        expect(runtime.sweeper.sweeps).to.equal(2);
      } finally {
        await runtime.stop();
      }
    } finally {
      await owner.end();
    }
  });

  it('a healthy app idle after one commit is not in doubt: inspect exits 0 and the metric is 0', async () => {
    const em = b.orm.em.fork();
    (await em.findOneOrFail(Book, 8)).title = 'idle after this';
    await em.flush();
    expect(await rows()).to.equal(1); // waiting for lazy deletion
    await sleep(3500);
    const inspect = await runTool(['inspect', '--min-age', '3s', ...conn]);
    expect(inspect.code, inspect.stdout + inspect.stderr).to.equal(0);
    const runtime = await startXaCache(b.orm, { sweep: { minAgeMs: 3000 } });
    try {
      expect(await runtime.metrics()).to.match(/xa_cache_in_doubt_transactions\{outcome="committed"\} 0/);
    } finally {
      await runtime.stop();
    }
    expect(await rows()).to.equal(0);
  });

  it('measures a row\'s age from its commit, not from the start of its transaction', async () => {
    const xa = b.cache().xa;
    await b.orm.em.fork().transactional(async (em) => {
      await em.nativeUpdate(Book, { id: 9 }, { title: 'slow transaction' });
      await em.execute('SELECT pg_sleep(2)');
    });
    const [row] = await xa.log.list(pool, 10);
    expect(row, 'the log row').to.not.equal(undefined);
    expect(row!.ageMs).to.be.below(1000);
  });
});
