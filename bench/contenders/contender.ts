import { MikroORM, type FindOneOptions, type Options } from '@mikro-orm/postgresql';
import { entities } from '../../spec/support/bookstore.js';

/** Where a contender runs: the servers of this run, and the database copy it owns. */
export interface ContenderContext {
  readonly databaseUrl: string;
  readonly memcached: readonly string[];
  readonly redisPort: number | undefined;
  readonly pool: number;
  /** A cache key prefix no other contender (or earlier run) uses. */
  readonly namespace: string;
}

/** A contender with its ORM open. */
export interface OpenContender {
  readonly orm: MikroORM;
  /** Whether it has a cache to fill before measuring hits. */
  readonly fills: boolean;
  /** Options of `findOne(Book, id, …)` in the primary-key workloads: `{ cache: 60_000 }` for result-cache adapters. */
  readonly pkOptions: FindOneOptions<never>;
  /** The `cache` option of the query workload (undefined: no result cache). */
  readonly queryCache: number | undefined;
  /** The `cache` option of the collection workload. */
  readonly collectionCache: number | undefined;
  /**
   * Monotonic counters: `sql` statements through MikroORM (`onQuery`), `cache` calls of the cache (adapter
   * `get`/`set`, or xa-cache's store calls), `roundTrips` (memcached round trips: one per memjs call; xa-cache's
   * store counts the batches it writes to a server), and others.
   */
  counters(): Record<string, number>;
  close(): Promise<void>;
}

export interface Contender {
  readonly key: string;
  readonly label: string;
  /** One line on what it is, for the report. */
  readonly description: string;
  /** memcached servers it uses (the first `memcachedServers` of the run's). */
  readonly memcachedServers: 1 | 2;
  /** The workloads it runs (undefined: all). */
  readonly workloads?: readonly string[];
  /** Why it cannot run here, or undefined when it can. */
  unavailable(ctx: { redisPort: number | undefined }): string | undefined;
  open(ctx: ContenderContext): Promise<OpenContender>;
}

/** The configuration every contender shares: same entities, same pool, statements counted. */
export function baseOptions(ctx: ContenderContext, counter: { sql: number }): Pick<Options, 'clientUrl' | 'pool' | 'onQuery'> {
  return {
    clientUrl: ctx.databaseUrl,
    pool: { min: 1, max: ctx.pool },
    onQuery: (sql: string) => {
      counter.sql++;
      return sql;
    },
  };
}

/** Counts calls of an adapter's methods in place (MikroORM keeps one adapter instance per ORM). */
export function countCalls(target: object, methods: readonly string[], counter: Record<string, number>, as: string): void {
  const obj = target as Record<string, unknown>;
  for (const name of methods) {
    const original = obj[name] as (...args: unknown[]) => unknown;
    if (typeof original !== 'function') throw new Error(`cannot count ${name}: not a method`);
    obj[name] = function counted(this: unknown, ...args: unknown[]): unknown {
      counter[as] = (counter[as] ?? 0) + 1;
      return original.apply(target, args);
    };
  }
}

/**
 * How long a result-cache adapter keeps an entry: longer than a whole run, so the hit workloads measure hits in
 * every round (a user caching rows for hits would choose a long expiration too).
 */
export const RESULT_CACHE_MS = 3_600_000;

/**
 * Opens a contender whose cache is MikroORM's result cache with `adapter`: every cached workload passes
 * `cache: RESULT_CACHE_MS`, and the adapter's `get`/`set` calls are counted under `countedAs` (and, when
 * `roundTrips`, as memcached round trips: a memjs call is one).
 */
export async function openResultCacheContender(
  ctx: ContenderContext,
  resultCache: NonNullable<Options['resultCache']>,
  countedAs: string,
  roundTrips = false,
): Promise<OpenContender> {
  const counter: Record<string, number> = { sql: 0, cache: 0 };
  const orm = await MikroORM.init({ ...baseOptions(ctx, counter as { sql: number }), entities, resultCache: { expiration: RESULT_CACHE_MS, ...resultCache } });
  countCalls(orm.config.getResultCacheAdapter(), ['get', 'set'], counter, countedAs);
  return {
    orm,
    fills: true,
    pkOptions: { cache: RESULT_CACHE_MS },
    queryCache: RESULT_CACHE_MS,
    collectionCache: RESULT_CACHE_MS,
    counters: () => (roundTrips ? { ...counter, roundTrips: counter[countedAs] ?? 0 } : { ...counter }),
    close: () => orm.close(true),
  };
}
