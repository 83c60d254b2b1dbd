import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { context, trace, SpanStatusCode } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { sharedServers } from '../support/global-servers.js';
import { Book, openBookstore, seedBookstore, type Bookstore } from '../support/bookstore.js';
import { startXaCache } from '../../lib/operations/start-xa-cache.js';
import { traceXaCache } from '../../lib/operations/open-telemetry.js';
import type { XaCacheRuntime } from '../../lib/operations/xa-cache-runtime.js';
import type { XaCacheAdapter } from '../../lib/mikro-orm/xa-cache-adapter.js';

describe('integrations: OpenTelemetry spans', function () {
  this.timeout(60_000);
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const contextManager = new AsyncLocalStorageContextManager();
  let b: Bookstore;
  let runtime: XaCacheRuntime;

  before(async () => {
    const s = sharedServers();
    const namespace = `otel${randomUUID().slice(0, 6)}`;
    b = await openBookstore(s.memcachedAddresses, s.db, { namespace, logTable: `otel_log_${namespace}` });
    await seedBookstore(b.orm);
    runtime = await startXaCache(b.orm);
  });
  after(async () => {
    await runtime.stop();
    await b.close();
    trace.disable();
    context.disable();
  });

  it('without a tracer provider, tracing uses the no-op tracer and records nothing', async () => {
    const stop = await traceXaCache(runtime);
    try {
      expect(trace.getTracer('x').startSpan('probe').isRecording()).to.equal(false);
      await b.orm.em.fork().findOneOrFail(Book, 1);
      expect(exporter.getFinishedSpans()).to.deep.equal([]);
    } finally {
      stop();
    }
    expect(runtime.cache.stats.observed).to.equal(false);
  });

  it('spans for reads, fills, prepare, promote and sweeps, children of the active span, with their attributes', async () => {
    trace.setGlobalTracerProvider(provider);
    context.setGlobalContextManager(contextManager.enable());
    const stop = await traceXaCache(runtime);
    const tracer = trace.getTracer('app');
    try {
      const requestSpan = await tracer.startActiveSpan('GET /books/2', async (span) => {
        await b.orm.em.fork().findOneOrFail(Book, 2); // miss + fill
        await b.orm.em.fork().findOneOrFail(Book, 2); // hit
        const em = b.orm.em.fork();
        (await em.findOneOrFail(Book, 2)).title = 'traced';
        await em.flush(); // prepare + promote
        // Promote runs off the commit's critical path: wait for it, or its span may end after the spans are read.
        await (b.orm.config.getResultCacheAdapter() as XaCacheAdapter).promotes.settle();
        span.end();
        return span;
      });
      await runtime.sweepNow();
      const spans = exporter.getFinishedSpans();
      const named = (name: string) => spans.filter((s) => s.name === name);
      const requestId = requestSpan.spanContext().spanId;
      for (const name of ['xa-cache read', 'xa-cache fill', 'xa-cache prepare', 'xa-cache promote']) {
        expect(named(name), name).to.not.be.empty;
        for (const s of named(name)) {
          expect(s.parentSpanContext?.spanId, `${name} parent`).to.equal(requestId);
          expect(s.spanContext().traceId).to.equal(requestSpan.spanContext().traceId);
        }
      }
      const reads = named('xa-cache read');
      expect(reads.map((s) => s.attributes['xa_cache.outcome'])).to.include.members(['miss', 'hit']);
      const hit = reads.find((s) => s.attributes['xa_cache.outcome'] === 'hit');
      expect(hit?.attributes).to.include({ 'xa_cache.keys': 1, 'xa_cache.hits': 1, 'xa_cache.misses': 0, 'xa_cache.region': 'rows:public.book' });
      expect(named('xa-cache fill')[0]?.attributes).to.include({ 'xa_cache.outcome': 'stored', 'xa_cache.keys': 1 });
      expect(named('xa-cache prepare')[0]?.attributes).to.include({ 'xa_cache.policy': 'strict', 'xa_cache.outcome': 'ok' });
      expect(named('xa-cache prepare')[0]?.attributes['xa_cache.keys']).to.be.at.least(1);
      expect(named('xa-cache promote')[0]?.attributes).to.include({ 'xa_cache.outcome': 'ok', 'xa_cache.unresolved': 0 });
      const sweep = named('xa-cache sweep');
      expect(sweep).to.have.length(1);
      expect(sweep[0]?.parentSpanContext).to.equal(undefined, 'a sweep outside any span is a root span');
      expect(sweep[0]?.attributes).to.include({ 'xa_cache.outcome': 'ok' });
      expect(spans.every((s) => s.status.code !== SpanStatusCode.ERROR)).to.equal(true);
    } finally {
      stop();
      exporter.reset();
    }
  });
});
