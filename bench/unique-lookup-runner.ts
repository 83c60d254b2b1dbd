/**
 * One contender of `bench/unique-lookup.ts`, in a process of its own (`child_process.fork`): opens its ORM on its
 * own database copy and cache namespace, then runs the mixed lookup workload when the parent asks, one round at a
 * time, and answers with throughput, latencies, per-read counters and the verification of every read.
 *
 * The three contenders map the same `author` table of the seeded bookstore with the same columns, written as a
 * user would; only how the lookup by email may be cached differs:
 * - `none`: plain MikroORM, no cache;
 * - `xa-unique`: `withXaCache`, `Author` declared as the bookstore declares it (`xaCache: { ttlSeconds: 600,
 *   uniqueKeys: [['email']] }`), `installWriteCapture(orm)`, `findOne(Author, { email })`;
 * - `xa-query`: the same without `uniqueKeys` (the entity's rows are still cached by id), the lookup asked as a
 *   cached query result: `findOne(Author, { email }, { cache: 60_000 })`.
 */
import { defineEntity, MikroORM, p, type Options } from '@mikro-orm/postgresql';
import { installWriteCapture, withXaCache } from '../lib/index.js';
import type { XaCacheAdapter } from '../lib/mikro-orm/xa-cache-adapter.js';
import { serveContender } from './contender-process.js';
import { attributed, countCacheCalls } from './op-attribution.js';
import { forEachIndex, percentile, seededRandom, Zipf } from './measure.js';

export type LookupContenderKey = 'none' | 'xa-unique' | 'xa-query';

export interface RunnerSetup {
  readonly key: LookupContenderKey;
  readonly databaseUrl: string;
  readonly memcached: readonly string[];
  readonly namespace: string;
  readonly authors: number;
  readonly pool: number;
}

export type RunnerCommand =
  | { readonly type: 'run'; readonly round: number; readonly inFlight: number; readonly warmupSeconds: number; readonly seconds: number; readonly writeShare: number; readonly retiredShare: number }
  | { readonly type: 'close' };

export interface RunnerResult {
  readonly ops: number;
  readonly seconds: number;
  readonly opsPerSecond: number;
  /** Milliseconds, all operations; and reads alone, writes alone. */
  readonly p50: number;
  readonly p99: number;
  readonly readP50: number;
  readonly writeP50: number;
  readonly reads: number;
  readonly writes: number;
  /** Statements a pg client sent on behalf of reads (PostgreSQL wire), per read. */
  readonly sqlPerRead: number;
  /** memcached calls made on behalf of reads (xa-cache's store: `get`, `execute`), per read. */
  readonly cachePerRead: number;
  /** Share of reads answered without any statement to PostgreSQL. */
  readonly hitRatio: number;
  /** Reads that asked an address no author held any more (answer must be null). */
  readonly retiredReads: number;
  /** Reads whose answer was wrong (see `check` below). */
  readonly violations: number;
  readonly firstViolation?: string;
  readonly errors: number;
  readonly firstError?: string;
}

/** What the runner reports once open: how long reading every address twice took. */
export interface RunnerReady {
  readonly prefillSeconds: number;
}

function authorEntity(key: LookupContenderKey) {
  return defineEntity({
    name: 'Author',
    // (b) is the bookstore's declaration (spec/support/bookstore.ts); (c) the same entity cached by id only.
    xaCache: key === 'xa-unique' ? { ttlSeconds: 600, uniqueKeys: [['email']] } : { ttlSeconds: 600 },
    properties: {
      id: p.integer().primary(),
      name: p.string(),
      email: p.string().nullable().unique(),
      born: p.datetime().nullable(),
    },
  });
}

const addressOf = (id: number, version: number): string => (version === 0 ? `a${id}@example.org` : `a${id}.v${version}@example.org`);

serveContender<RunnerSetup, RunnerCommand, RunnerReady, RunnerResult>(async (setup) => {
  const Author = authorEntity(setup.key);
  const base: Options = { clientUrl: setup.databaseUrl, pool: { min: 1, max: setup.pool }, entities: [Author] };
  const orm = setup.key === 'none' ? await MikroORM.init(base) : await MikroORM.init(withXaCache(base, { servers: setup.memcached, namespace: setup.namespace, logTable: 'xa_cache_log' }));
  if (setup.key !== 'none') {
    // What a user does once (or in a migration): the database-side write capture on the entity's table.
    await installWriteCapture(orm);
    countCacheCalls((orm.config.getResultCacheAdapter() as unknown as XaCacheAdapter).xa.store, ['get', 'execute']);
  }
  const lookupOptions = setup.key === 'xa-query' ? { cache: 60_000 } : {};
  const lookup = (email: string) => orm.em.fork().findOne(Author, { email }, lookupOptions);

  // This process is the only writer: version[id] is the committed version of an author's address.
  const version = new Int32Array(setup.authors + 1);
  const writing = new Set<number>();
  const writesStarted = new Int32Array(setup.authors + 1);

  // Every contender starts from every address read twice (the same calls for all three): with `uniqueKeys`, the
  // first lookup of an address stores its index entry only, the second reads the row by id and stores it.
  const t0 = performance.now();
  for (let pass = 0; pass < 2; pass++) await forEachIndex(setup.authors, 32, (i) => lookup(addressOf(i + 1, 0)));
  const prefillSeconds = (performance.now() - t0) / 1000;

  const runRound = async (command: Extract<RunnerCommand, { type: 'run' }>): Promise<RunnerResult> => {
    const random = seededRandom(1000 + command.round);
    const zipf = new Zipf(setup.authors, 0.99, random);
    const one = async (record: boolean, s: Stats): Promise<void> => {
      const id = zipf.next() + 1;
      const t0 = performance.now();
      if (random() < command.writeShare) {
        if (writing.has(id)) return; // one write per author at a time: the next operation picks again
        writing.add(id);
        writesStarted[id] = (writesStarted[id] ?? 0) + 1;
        try {
          const em = orm.em.fork();
          const author = await em.findOneOrFail(Author, id);
          const next = (version[id] ?? 0) + 1;
          author.email = addressOf(id, next);
          await em.flush();
          version[id] = next;
        } finally {
          writing.delete(id);
        }
        if (record) {
          s.writes++;
          s.writeLatencies.push(performance.now() - t0);
          s.latencies.push(performance.now() - t0);
        }
        return;
      }
      const committed = version[id] ?? 0;
      // A retired address: the previous one of a written author (a write that committed took it away), else one
      // no author ever held. Either way the answer must be null.
      const retired = random() < command.retiredShare;
      const email = retired ? (committed > 0 ? addressOf(id, committed - 1) : `never.${id}@example.org`) : addressOf(id, committed);
      const busyAtStart = writing.has(id);
      const startedBefore = writesStarted[id] ?? 0;
      const { value: found, counters } = await attributed(() => lookup(email));
      const ms = performance.now() - t0;
      if (!record) return;
      s.reads++;
      s.readLatencies.push(ms);
      s.latencies.push(ms);
      s.sql += counters.sql;
      s.cache += counters.cache;
      if (counters.sql === 0) s.hits++;
      if (retired) s.retired++;
      let wrong: string | undefined;
      if (found && (found.email !== email || found.id !== id)) wrong = `asked ${email}, got author ${found.id} holding ${found.email}`;
      else if (found && retired) wrong = `asked retired ${email}, got author ${found.id} (stale)`;
      else if (!found && !retired && !busyAtStart && writesStarted[id] === startedBefore) wrong = `asked ${email}, held by author ${id} throughout the read, got null`;
      if (wrong) {
        s.violations++;
        s.firstViolation ??= wrong;
      }
    };
    const loop = async (seconds: number, record: boolean): Promise<Stats & { elapsed: number }> => {
      const s = newStats();
      const started = performance.now();
      const deadline = started + seconds * 1000;
      await Promise.all(
        Array.from({ length: command.inFlight }, async () => {
          while (performance.now() < deadline) {
            try {
              await one(record, s);
            } catch (error) {
              s.errors++;
              s.firstError ??= error instanceof Error ? `${error.name}: ${error.message}` : String(error);
            }
          }
        }),
      );
      return { ...s, elapsed: (performance.now() - started) / 1000 };
    };
    await loop(command.warmupSeconds, false);
    const s = await loop(command.seconds, true);
    const sorted = (xs: number[]): number[] => xs.sort((a, b) => a - b);
    const ops = s.latencies.length;
    return {
      ops,
      seconds: s.elapsed,
      opsPerSecond: ops / s.elapsed,
      p50: percentile(sorted(s.latencies), 0.5),
      p99: percentile(s.latencies, 0.99),
      readP50: percentile(sorted(s.readLatencies), 0.5),
      writeP50: percentile(sorted(s.writeLatencies), 0.5),
      reads: s.reads,
      writes: s.writes,
      sqlPerRead: s.reads ? s.sql / s.reads : Number.NaN,
      cachePerRead: s.reads ? s.cache / s.reads : Number.NaN,
      hitRatio: s.reads ? s.hits / s.reads : Number.NaN,
      retiredReads: s.retired,
      violations: s.violations,
      ...(s.firstViolation ? { firstViolation: s.firstViolation } : {}),
      errors: s.errors,
      ...(s.firstError ? { firstError: s.firstError } : {}),
    };
  };

  return { ready: { prefillSeconds }, handle: runRound, close: () => orm.close(true) };
});

interface Stats {
  latencies: number[];
  readLatencies: number[];
  writeLatencies: number[];
  reads: number;
  writes: number;
  sql: number;
  cache: number;
  hits: number;
  retired: number;
  violations: number;
  firstViolation?: string;
  errors: number;
  firstError?: string;
}
const newStats = (): Stats => ({ latencies: [], readLatencies: [], writeLatencies: [], reads: 0, writes: 0, sql: 0, cache: 0, hits: 0, retired: 0, violations: 0, errors: 0 });
