import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { sharedServers } from '../support/global-servers.js';
import { Author, Book, openBookstore, seedBookstore, type Bookstore } from '../support/bookstore.js';
import type { XaCacheAdapter } from '../../lib/mikro-orm/xa-cache-adapter.js';
import { startXaCache } from '../../lib/operations/start-xa-cache.js';
import { parsePrometheusText, prometheusText } from '../../lib/operations/prometheus-text.js';
import { CacheStats } from '../../lib/protocol/cache-stats.js';
import { killWriterMidPromote } from '../cli/cli-harness.js';

describe('operations: startup sweep, statistics, Prometheus export, logging', function () {
  this.timeout(60_000);
  const namespace = `ops${randomUUID().slice(0, 6)}`;
  const logTable = `ops_log_${namespace}`;
  const logLines: string[] = [];
  let b: Bookstore;
  let pool: pg.Pool;

  before(async () => {
    const s = sharedServers();
    b = await openBookstore(s.memcachedAddresses, s.db, { namespace, logTable }, { debug: ['xa-cache' as never], logger: (line: string) => logLines.push(line) });
    await seedBookstore(b.orm);
    pool = new pg.Pool({ connectionString: s.db, max: 2 });
    await (b.orm.config.getResultCacheAdapter() as XaCacheAdapter).xa.flushLogDeletes(pool);
  });
  after(async () => {
    await b.close();
    await pool.end();
  });

  it('startXaCache resolves a transaction a killed process left in doubt before the application serves', async () => {
    // Promotes run in the background: let the seed's finish and its log rows go, so only the killed one is left.
    const adapter = b.orm.config.getResultCacheAdapter() as XaCacheAdapter;
    await adapter.promotes.settle();
    await adapter.xa.flushLogDeletes(pool);
    await killWriterMidPromote({ namespace, logTable, bookId: 6, title: 'after the crash' });
    expect((await pool.query(`SELECT count(*)::int AS n FROM ${logTable}`)).rows[0].n).to.equal(1);
    const swept: number[] = [];
    const runtime = await startXaCache(b.orm, { sweep: { minAgeMs: 0 }, onSweep: (r) => swept.push(r.resolved) });
    try {
      expect(runtime.lastSweep).to.include({ resolved: 1, unresolved: 0 });
      expect(swept).to.deep.equal([1]);
      expect((await pool.query(`SELECT count(*)::int AS n FROM ${logTable}`)).rows[0].n).to.equal(0);
      expect(runtime.cache.stats.sweptTransactions).to.be.at.least(1);
      expect((await runtime.inDoubt()).total).to.equal(0);
      // Logged through MikroORM's logger, in the cache's namespace.
      expect(logLines.some((line) => line.includes('[xa-cache]') && line.includes('recovery sweep'))).to.equal(true, logLines.join('\n'));
      for (let i = 0; i < 2; i++) expect((await b.orm.em.fork().findOneOrFail(Book, 6)).title).to.equal('after the crash');
    } finally {
      await runtime.stop();
    }
  });

  it('sweeps on an interval, one sweep at a time, until stopped', async () => {
    const runtime = await startXaCache(b.orm, { sweepIntervalMs: 50 });
    const deadline = Date.now() + 10_000;
    while (runtime.sweeper.sweeps < 4) {
      if (Date.now() > deadline) throw new Error('periodic sweeps did not run');
      await new Promise((r) => setTimeout(r, 20));
    }
    const [a, c] = [runtime.sweepNow(), runtime.sweepNow()];
    expect(a).to.equal(c);
    await a;
    await runtime.stop();
    const after = runtime.sweeper.sweeps;
    await new Promise((r) => setTimeout(r, 200));
    expect(runtime.sweeper.sweeps).to.equal(after);
    expect(runtime.sweeper.failures).to.equal(0);
    await runtime.sweepNow().then(
      () => expect.fail('a stopped runtime must not sweep'),
      (error: Error) => expect(error.message).to.include('stopped'),
    );
  });

  it('rejects a bad interval', async () => {
    let error: unknown;
    try {
      await startXaCache(b.orm, { sweepIntervalMs: -1 });
    } catch (e) {
      error = e;
    }
    expect(String(error)).to.include('sweepIntervalMs');
  });

  it('counts hits, misses and puts per region: entity rows, collections, query results', async () => {
    const stats = (b.orm.config.getResultCacheAdapter() as XaCacheAdapter).xa.stats;
    const before = stats.regions().get('rows:public.book')?.hits ?? 0;
    for (let i = 0; i < 3; i++) await b.orm.em.fork().findOneOrFail(Book, 7);
    for (let i = 0; i < 3; i++) await b.orm.em.fork().findOneOrFail(Author, 2, { populate: ['books'] });
    for (let i = 0; i < 3; i++) await b.orm.em.fork().find(Book, { price: { $gt: 15 } }, { cache: 10_000 });
    const regions = stats.regions();
    expect((regions.get('rows:public.book')?.hits ?? 0) - before).to.be.at.least(2);
    expect(regions.get('rows:public.book')?.puts).to.be.at.least(1);
    expect(regions.get('coll:public.book')?.hits).to.be.at.least(1);
    expect(regions.get('t:public.book')?.hits).to.be.at.least(1);
    // The snapshot stays flat (the per-region map is not a counter).
    expect(Object.values(stats.snapshot()).every((v) => typeof v === 'number' || typeof v === 'object')).to.equal(true);
    expect(stats.snapshot()).to.not.have.property('regions');
  });

  it('exports every counter in Prometheus text format, scrapeable and parseable', async () => {
    const runtime = await startXaCache(b.orm);
    try {
      await b.orm.em.fork().findOneOrFail(Book, 8);
      const text = await runtime.metrics({ service: 'bookstore' });
      for (const name of ['hits', 'misses', 'puts', 'lock_bypasses', 'lease_waits', 'stale_fills_refused', 'evictions', 'swept_transactions']) {
        expect(text).to.match(new RegExp(`^# TYPE xa_cache_${name}_total counter$`, 'm'));
      }
      expect(text).to.match(/^xa_cache_region_hits_total\{service="bookstore",region="rows:public\.book"\} \d+$/m);
      expect(text).to.match(/^xa_cache_in_doubt_transactions\{service="bookstore",outcome="committed"\} 0$/m);
      expect(text).to.match(/^xa_cache_store_round_trips_total\{service="bookstore"\} [1-9]\d*$/m);
      expect(text).to.match(/^xa_cache_sweeps_total\{service="bookstore"\} 1$/m);
      const samples = parsePrometheusText(text);
      expect(samples.find((s) => s.name === 'xa_cache_hits_total')?.value).to.equal(runtime.cache.stats.hits);
      expect(samples.every((s) => Number.isFinite(s.value))).to.equal(true);
    } finally {
      await runtime.stop();
    }
  });

  it('escapes label values and counts errors by kind', () => {
    const stats = new CacheStats();
    stats.error('timeout');
    stats.error('timeout');
    stats.region('t:"odd"\\table\n').hits = 2;
    const text = prometheusText({ stats });
    expect(text).to.include('xa_cache_errors_total{kind="timeout"} 2');
    expect(text).to.include('xa_cache_region_hits_total{region="t:\\"odd\\"\\\\table\\n"} 2');
    const parsed = parsePrometheusText(text).find((s) => s.name === 'xa_cache_region_hits_total');
    expect(parsed?.labels.region).to.equal('t:"odd"\\table\n');
  });
});
