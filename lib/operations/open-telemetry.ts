import type * as OtelApi from '@opentelemetry/api';
import type { CacheOperation, ObservedAttributes } from '../protocol/cache-observer.js';
import type { XaCache } from '../protocol/xa-cache.js';

/** Options of {@link traceXaCache}. */
export interface XaCacheTracingOptions {
  /** The tracer to use; default `trace.getTracer('mikro-orm-xa-cache')` from the registered provider. */
  readonly tracer?: OtelApi.Tracer;
}

/** Span names by operation. */
const SPAN_NAMES: Record<CacheOperation, string> = {
  read: 'xa-cache read',
  fill: 'xa-cache fill',
  prepare: 'xa-cache prepare',
  promote: 'xa-cache promote',
  release: 'xa-cache release',
  sweep: 'xa-cache sweep',
};

/**
 * Traces the cache with OpenTelemetry (`@opentelemetry/api` is an optional peer dependency): a span for every
 * cache read, fill, prepare, promote, release and recovery sweep, a child of the context active when it started
 * (the application's request span, MikroORM's query span where an instrumentation made one), with attributes
 * `xa_cache.keys`, `.hits`, `.misses`, `.outcome`, `.policy`, `.region`, `.written`, `.evicted`, `.unresolved`,
 * `.resolved`. A failed operation records its exception and sets the span's status to error.
 *
 * Without a tracer provider registered, the API's tracer is the no-op one and spans cost an object each; without
 * this call, the protocol checks one flag per operation. Returns the function that stops tracing.
 */
export async function traceXaCache(cache: XaCache | { readonly cache: XaCache }, options: XaCacheTracingOptions = {}): Promise<() => void> {
  const api = (await import('@opentelemetry/api')) as typeof OtelApi;
  const tracer = options.tracer ?? api.trace.getTracer('mikro-orm-xa-cache');
  const xa = 'stats' in cache ? cache : cache.cache;
  return xa.stats.observe({
    start(operation: CacheOperation, attributes: ObservedAttributes) {
      const span = tracer.startSpan(SPAN_NAMES[operation], { kind: api.SpanKind.INTERNAL, attributes: prefixed(attributes) }, api.context.active());
      return (result: ObservedAttributes, error?: unknown) => {
        span.setAttributes(prefixed(result));
        if (error !== undefined) {
          span.recordException(error instanceof Error ? error : String(error));
          span.setStatus({ code: api.SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
        }
        span.end();
      };
    },
  });
}

function prefixed(attributes: ObservedAttributes): OtelApi.Attributes {
  const out: OtelApi.Attributes = {};
  for (const [name, value] of Object.entries(attributes)) if (value !== '') out[`xa_cache.${name}`] = value;
  return out;
}
