import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { Registry } from 'prom-client';
import parsePrometheusTextFormat, { type ParsedFamily } from 'parse-prometheus-text-format';
import { sharedServers } from '../support/global-servers.js';
import { Book, openBookstore, seedBookstore, type Bookstore } from '../support/bookstore.js';
import { startXaCache } from '../../lib/operations/start-xa-cache.js';
import { registerXaCacheMetrics } from '../../lib/operations/prom-client-metrics.js';
import { parsePrometheusText } from '../../lib/operations/prometheus-text.js';
import type { XaCacheRuntime } from '../../lib/operations/xa-cache-runtime.js';
import type { XaCacheAdapter } from '../../lib/mikro-orm/xa-cache-adapter.js';

describe('integrations: metrics through prom-client', function () {
  this.timeout(60_000);
  let b: Bookstore;
  let runtime: XaCacheRuntime;

  before(async () => {
    const s = sharedServers();
    const namespace = `prom${randomUUID().slice(0, 6)}`;
    b = await openBookstore(s.memcachedAddresses, s.db, { namespace, logTable: `prom_log_${namespace}` });
    await seedBookstore(b.orm);
    runtime = await startXaCache(b.orm);
  });
  after(async () => {
    await runtime.stop();
    await b.close();
  });

  it("registers the counters and latency histograms into the application's registry, scraped in the text format", async () => {
    const registry = new Registry();
    const metrics = await registerXaCacheMetrics(runtime, { registry });
    try {
      await b.orm.em.fork().findOneOrFail(Book, 3); // miss, fill
      await b.orm.em.fork().findOneOrFail(Book, 3); // hit
      const em = b.orm.em.fork();
      (await em.findOneOrFail(Book, 3)).title = 'renamed';
      await em.flush(); // prepare, promote
      // Promote runs off the commit's critical path: wait for it, or the scrape may come before its figures.
      await (b.orm.config.getResultCacheAdapter() as XaCacheAdapter).promotes.settle();
      await runtime.sweepNow();

      const text = await registry.metrics();
      const families = new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f]));
      const samples = parsePrometheusText(text);
      const value = (name: string, labels: Record<string, string> = {}): number => {
        const family = families.get(name) as ParsedFamily;
        expect(family, name).to.not.equal(undefined);
        const sample = family.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
        return Number(sample?.value ?? sample?.count ?? 0);
      };
      // The counters are the ones the hand-written exposition shows, with the same values and types.
      const stats = runtime.cache.stats;
      expect(families.get('xa_cache_hits_total')?.type).to.equal('COUNTER');
      expect(value('xa_cache_hits_total')).to.equal(stats.hits).and.to.be.at.least(1);
      expect(value('xa_cache_misses_total')).to.equal(stats.misses).and.to.be.at.least(1);
      expect(value('xa_cache_promotes_total')).to.equal(stats.promotes).and.to.be.at.least(1);
      expect(value('xa_cache_region_hits_total', { region: 'rows:public.book' })).to.be.at.least(1);
      expect(value('xa_cache_store_requests_total')).to.equal(runtime.cache.store.counters.requests);
      expect(value('xa_cache_sweeps_total')).to.equal(runtime.sweeper.sweeps).and.to.be.at.least(2);
      expect(families.get('xa_cache_in_doubt_transactions')?.type).to.equal('GAUGE');
      const handWritten = parsePrometheusText(await runtime.metrics());
      for (const name of ['xa_cache_hits_total', 'xa_cache_puts_total', 'xa_cache_prepares_total']) {
        expect(value(name), name).to.equal(handWritten.find((s) => s.name === name)?.value);
      }
      // The histograms, fed by the timing observer.
      for (const [name, labels] of [
        ['xa_cache_read_duration_seconds', { outcome: 'hit' }],
        ['xa_cache_read_duration_seconds', { outcome: 'miss' }],
        ['xa_cache_fill_duration_seconds', { outcome: 'stored' }],
        ['xa_cache_phase_duration_seconds', { phase: 'prepare', outcome: 'ok' }],
        ['xa_cache_phase_duration_seconds', { phase: 'promote', outcome: 'ok' }],
        ['xa_cache_commit_overhead_seconds', {}],
        ['xa_cache_sweep_duration_seconds', { outcome: 'ok' }],
      ] as const) {
        expect(families.get(name)?.type, name).to.equal('HISTOGRAM');
        // parse-prometheus-text-format drops the labels, sum and count of labelled histograms: read those samples
        // with the strict line parser.
        const sample = (suffix: string, extra: Record<string, string> = {}): number | undefined =>
          samples.find((s) => s.name === `${name}${suffix}` && Object.entries({ ...labels, ...extra }).every(([k, v]) => s.labels[k] === v))?.value;
        expect(sample('_count'), `${name} ${JSON.stringify(labels)}`).to.be.at.least(1);
        expect(sample('_bucket', { le: '+Inf' })).to.equal(sample('_count'));
        expect(sample('_sum')).to.be.above(0).and.below(10);
      }
    } finally {
      metrics.unregister();
    }
    expect(await registry.metrics()).to.equal('\n');
    expect(runtime.cache.stats.observed).to.equal(false);
  });
});
