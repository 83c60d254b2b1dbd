/**
 * One application process of the demo (`bench/demo.ts` forks two): its own cached ORM for readers, its own for
 * writers, and a plain MikroORM without the cache for the baseline latencies. Every read is checked against the
 * database: a value must lie between what PostgreSQL said just before and just after the read (prices, author
 * versions and per-author price sums only grow, so anything outside that window is stale or uncommitted).
 */
import { LockMode, MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { Author, Book, entities, openBookstore } from '../spec/support/bookstore.js';
import { startXaCache } from '../lib/operations/start-xa-cache.js';
import type { XaCacheAdapter } from '../lib/mikro-orm/xa-cache-adapter.js';

/** Messages to the parent. */
export type WorkerMessage =
  | { type: 'started'; sweptAtStartup: number }
  | { type: 'progress'; reads: number; writes: number; rollbacks: number; errors: number; violations: number; hits: number; misses: number }
  | { type: 'crash-point'; txId: string }
  | { type: 'result'; result: WorkerResult };

/** What a worker measured. */
export interface WorkerResult {
  readonly cachedLatencies: number[];
  readonly plainLatencies: number[];
  readonly cachedOps: Record<OpKind, number>;
  readonly plainOps: Record<OpKind, number>;
  readonly cachedQueries: number;
  readonly plainQueries: Record<OpKind, number>;
  readonly reads: number;
  readonly writes: number;
  readonly rollbacks: number;
  readonly errors: number;
  readonly violations: string[];
  readonly violationCount: number;
  readonly stats: Record<string, unknown>;
}

type OpKind = 'book' | 'author' | 'query';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const send = (message: WorkerMessage): void => void process.send?.(message);

const servers = env('MEMCACHED_SERVERS').split(',');
const db = env('DATABASE_URL');
const books = Number(env('BOOKS'));
const authors = Number(env('AUTHORS'));
const deadline = Date.now() + Number(env('DURATION_MS'));
const crashAfter = process.env.CRASH_AFTER_MS ? Date.now() + Number(process.env.CRASH_AFTER_MS) : undefined;
const cacheOptions = { namespace: env('NAMESPACE'), logTable: env('LOG_TABLE') };

let armed = false;
const reader = await openBookstore(servers, db, cacheOptions);
// MikroORM 7 connects lazily; connect before the first (cached) query.
await reader.orm.connect();
const writer = await openBookstore(servers, db, {
  ...cacheOptions,
  // Demo only (a test hook): stop dead in the middle of promote, after COMMIT, when armed.
  midPromoteHook:
    crashAfter === undefined
      ? undefined
      : async (txId: string) => {
          if (!armed) return;
          send({ type: 'crash-point', txId });
          await new Promise<never>(() => setInterval(() => undefined, 1000));
        },
});
let plainQueryCount = 0;
const plain = await MikroORM.init({ entities, clientUrl: db, onQuery: (q: string) => {
  plainQueryCount++;
  return q;
} });
const check = new pg.Pool({ connectionString: db, max: 8 });
const runtime = await startXaCache(writer.orm, { sweep: { minAgeMs: 0 }, sweepIntervalMs: 5000 });
send({ type: 'started', sweptAtStartup: runtime.lastSweep?.resolved ?? 0 });

const result = {
  cachedLatencies: [] as number[],
  plainLatencies: [] as number[],
  cachedOps: { book: 0, author: 0, query: 0 },
  plainOps: { book: 0, author: 0, query: 0 },
  cachedQueries: 0,
  plainQueries: { book: 0, author: 0, query: 0 },
  reads: 0,
  writes: 0,
  rollbacks: 0,
  errors: 0,
  violations: [] as string[],
};

/** Skewed towards low ids, as real traffic is: a few hot rows, a long tail. */
const hot = (n: number): number => Math.floor(n * Math.random() ** 2) + 1;
const one = async (sql: string, params: unknown[]): Promise<number> => Number(Object.values((await check.query(sql, params)).rows[0] ?? { v: 0 })[0]);
let violationCount = 0;
const flag = (what: string): void => {
  violationCount++;
  if (result.violations.length < 20) result.violations.push(what);
};
const version = (name: string): number => Number(/ v(\d+)$/.exec(name)?.[1] ?? 0);

async function readOnce(): Promise<void> {
  const usePlain = Math.random() < 0.2;
  const violation = (what: string): void => flag(`${usePlain ? 'without' : 'with'} the cache: ${what}`);
  const orm = usePlain ? plain : reader.orm;
  const r = Math.random();
  const kind: OpKind = r < 0.6 ? 'book' : r < 0.8 ? 'author' : 'query';
  const em = orm.em.fork();
  const queriesBefore = plainQueryCount;
  if (kind === 'book') {
    const id = hot(books);
    const before = await one('SELECT price FROM book WHERE id = $1', [id]);
    const started = performance.now();
    const book = await em.findOneOrFail(Book, id);
    const ms = performance.now() - started;
    const after = await one('SELECT price FROM book WHERE id = $1', [id]);
    if (book.price < before || book.price > after || book.title === 'ROLLED BACK') violation(`book ${id}: read price ${book.price} title ${book.title}, database ${before}..${after}`);
    record(usePlain, kind, ms, queriesBefore);
  } else if (kind === 'author') {
    const id = hot(authors);
    const vBefore = version(String((await check.query('SELECT name FROM author WHERE id = $1', [id])).rows[0]?.name));
    const members = ((await check.query('SELECT id FROM book WHERE author_id = $1 ORDER BY id', [id])).rows as Array<{ id: number }>).map((row) => row.id).join(',');
    const started = performance.now();
    const author = await em.findOneOrFail(Author, id, { populate: ['books'] });
    const ms = performance.now() - started;
    const vAfter = version(String((await check.query('SELECT name FROM author WHERE id = $1', [id])).rows[0]?.name));
    const v = version(author.name);
    if (v < vBefore || v > vAfter) violation(`author ${id}: read version ${v}, database ${vBefore}..${vAfter}`);
    const cached = author.books.getItems().map((book) => book.id).join(',');
    if (cached !== members) violation(`author ${id}: books [${cached}], database [${members}]`);
    record(usePlain, kind, ms, queriesBefore);
  } else {
    const id = hot(authors);
    const sum = 'SELECT coalesce(sum(price), 0)::int AS v FROM book WHERE author_id = $1';
    const before = await one(sum, [id]);
    const started = performance.now();
    // The baseline runs the same query uncached (MikroORM's own result cache would serve it stale).
    const found = await em.find(Book, { author: id }, usePlain ? {} : { cache: 30_000 });
    const ms = performance.now() - started;
    const after = await one(sum, [id]);
    const total = found.reduce((s, book) => s + book.price, 0);
    if (total < before || total > after) violation(`books of author ${id} (cached query): price sum ${total}, database ${before}..${after}`);
    record(usePlain, kind, ms, queriesBefore);
  }
  result.reads++;
}

function record(usePlain: boolean, kind: OpKind, ms: number, queriesBefore: number): void {
  if (usePlain) {
    result.plainLatencies.push(ms);
    result.plainOps[kind]++;
    result.plainQueries[kind] += plainQueryCount - queriesBefore;
  } else {
    result.cachedLatencies.push(ms);
    result.cachedOps[kind]++;
    result.cachedQueries += reader.takeSql().length;
  }
}

class Rollback extends Error {}

async function writeOnce(): Promise<void> {
  const r = Math.random();
  const em = writer.orm.em.fork();
  if (crashAfter !== undefined && Date.now() > crashAfter) armed = true;
  try {
    if (r < 0.7) {
      await em.transactional(async (tx) => {
        const book = await tx.findOneOrFail(Book, hot(books), { lockMode: LockMode.PESSIMISTIC_WRITE });
        book.price++;
      });
    } else if (r < 0.85) {
      await em.transactional(async (tx) => {
        const author = await tx.findOneOrFail(Author, hot(authors), { lockMode: LockMode.PESSIMISTIC_WRITE });
        author.name = `Author ${author.id} v${version(author.name) + 1}`;
      });
    } else {
      await em.transactional(async (tx) => {
        const book = await tx.findOneOrFail(Book, hot(books), { lockMode: LockMode.PESSIMISTIC_WRITE });
        book.price = -1;
        book.title = 'ROLLED BACK';
        await tx.flush();
        throw new Rollback();
      });
    }
    result.writes++;
  } catch (error) {
    if (error instanceof Rollback) result.rollbacks++;
    else {
      result.errors++;
      if (result.errors <= 3) process.stderr.write(`worker ${env('WORKER_ID')}: ${String(error)}\n`);
    }
  }
}

const loop = async (op: () => Promise<void>): Promise<void> => {
  while (Date.now() < deadline) {
    try {
      await op();
    } catch (error) {
      result.errors++;
      if (result.errors <= 3) process.stderr.write(`worker ${env('WORKER_ID')}: ${String((error as Error)?.stack ?? error)}\n`);
    }
  }
};

const stats = (reader.orm.config.getResultCacheAdapter() as XaCacheAdapter).xa.stats;
const progress = setInterval(() => send({ type: 'progress', reads: result.reads, writes: result.writes, rollbacks: result.rollbacks, errors: result.errors, violations: violationCount, hits: stats.hits, misses: stats.misses }), 250);
await Promise.all([...Array.from({ length: 4 }, () => loop(readOnce)), ...Array.from({ length: 1 }, () => loop(async () => {
  await writeOnce();
  await new Promise((resolve) => setTimeout(resolve, 5));
}))]);
clearInterval(progress);
send({ type: 'progress', reads: result.reads, writes: result.writes, rollbacks: result.rollbacks, errors: result.errors, violations: violationCount, hits: stats.hits, misses: stats.misses });
send({ type: 'result', result: { ...result, violationCount, stats: stats.snapshot() } });
await runtime.stop();
await Promise.all([reader.close(), writer.close(), plain.close(true), check.end()]);
process.disconnect?.();
