/**
 * What one operation sent, when many run at once in one process: every statement any pg client sends, and every
 * call of the cache methods named in {@link countCacheCalls}, is counted against the operation whose async context
 * it runs in ({@link attributed}). A read that sent no statement was answered by the cache: that is how the
 * benchmarks count hits, the same way for every contender.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import pg from 'pg';

/** Counters of one operation. */
export interface OpCounters {
  /** Statements sent to PostgreSQL (the wire, so BEGIN/COMMIT and the cache's own statements included). */
  sql: number;
  /** Calls of the counted cache methods. */
  cache: number;
}

const context = new AsyncLocalStorage<OpCounters>();

let installed = false;
function countStatements(): void {
  if (installed) return;
  installed = true;
  const clientProto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const originalQuery = clientProto.query;
  clientProto.query = function countedQuery(this: unknown, ...args: unknown[]): unknown {
    const c = context.getStore();
    if (c) c.sql++;
    return originalQuery.apply(this, args);
  };
}

/** Runs `fn` with a fresh pair of counters and returns both. */
export async function attributed<T>(fn: () => Promise<T>): Promise<{ value: T; counters: OpCounters }> {
  countStatements();
  const counters: OpCounters = { sql: 0, cache: 0 };
  const value = await context.run(counters, fn);
  return { value, counters };
}

/** Counts calls of `methods` of `target` (in place) against the operation they run for. */
export function countCacheCalls(target: object, methods: readonly string[]): void {
  const obj = target as Record<string, unknown>;
  for (const name of methods) {
    const original = obj[name];
    if (typeof original !== 'function') throw new Error(`cannot count ${name}: not a method`);
    obj[name] = function counted(this: unknown, ...args: unknown[]): unknown {
      const c = context.getStore();
      if (c) c.cache++;
      return (original as (...a: unknown[]) => unknown).apply(target, args);
    };
  }
}
