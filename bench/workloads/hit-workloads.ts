import { Author, Book } from '../../spec/support/bookstore.js';
import { forEachIndex, measure, seededRandom } from '../measure.js';
import { inFlightLabel, type Point, type Workload, type WorkloadContext } from './workload.js';

/**
 * The three read-hit workloads share one shape: fill the cache with every key once, then measure random keys at
 * each concurrency. `check` makes sure an answer is what the data says (a hit that returned nothing would be fast).
 */
async function runHits(ctx: WorkloadContext, name: string, keyCount: number, op: (key: number) => Promise<unknown>, check: (result: unknown, key: number) => boolean): Promise<{ points: Point[] }> {
  const { config, contender } = ctx;
  const checked = async (key: number): Promise<void> => {
    const result = await op(key);
    if (!check(result, key)) throw new Error(`${name}: wrong answer for key ${key}`);
  };
  // Fill: every key once, so the measured runs are hits (xa-cache warm, result caches filled).
  await forEachIndex(keyCount, 32, (i) => checked(i + 1));
  const points: Point[] = [];
  for (const inFlight of config.inFlight) {
    const random = seededRandom(inFlight * 7919);
    const next = (): number => 1 + Math.floor(random() * keyCount);
    await measure(() => checked(next()), { inFlight, seconds: config.warmupSeconds });
    const m = await measure(() => checked(next()), { inFlight, seconds: config.seconds, counters: contender.counters });
    ctx.progress(`${name} ${inFlightLabel(inFlight)}: ${fmtOps(m.opsPerSecond)} p50 ${m.p50.toFixed(2)} ms p99 ${m.p99.toFixed(2)} ms, sql/op ${(m.perOp.sql ?? 0).toFixed(2)}${m.errors ? `, ${m.errors} errors: ${m.firstError}` : ''}`);
    points.push({ ...m, label: inFlightLabel(inFlight) });
  }
  return { points };
}

export const fmtOps = (n: number): string => `${Math.round(n).toLocaleString('en-US')} ops/s`;

export const pkHit: Workload = {
  key: 'pk',
  title: 'Primary-key hit',
  operation: '`em.fork().findOne(Book, id)` over all books, uniformly random, every one cached (`{ cache: 60_000 }` for the result-cache adapters; xa-cache serves it from its row cache without the option)',
  run: (ctx) => {
    const { orm, pkOptions } = ctx.contender;
    return runHits(
      ctx,
      'pk-hit',
      ctx.config.books,
      (id) => orm.em.fork().findOne(Book, id, pkOptions as never),
      (book, id) => (book as { id: number } | null)?.id === id,
    );
  },
};

export const uniqueHit: Workload = {
  key: 'unique',
  title: 'Unique-key hit',
  operation: "`em.fork().findOne(Author, { email })` over all authors, uniformly random, every one cached (`{ cache: 60_000 }` for the result-cache adapters; xa-cache resolves the email through its index entry, `uniqueKeys: [['email']]`, and serves the row from its row cache)",
  run: (ctx) => {
    const { orm, pkOptions } = ctx.contender;
    return runHits(
      ctx,
      'unique-hit',
      ctx.config.books / ctx.config.booksPerAuthor,
      (id) => orm.em.fork().findOne(Author, { email: `a${id}@example.org` }, pkOptions as never),
      (author, id) => (author as { id: number } | null)?.id === id,
    );
  },
};

export const queryHit: Workload = {
  key: 'query',
  title: 'Query hit',
  operation: "`em.fork().find(Book, { author }, { populate: ['publisher'], cache: 60_000 })` (50 books and their publishers) over all authors (no `cache` option for no-cache)",
  run: (ctx) => {
    const { orm, queryCache } = ctx.contender;
    const per = ctx.config.booksPerAuthor;
    return runHits(
      ctx,
      'query-hit',
      ctx.config.books / per,
      (author) => orm.em.fork().find(Book, { author }, { populate: ['publisher'], ...(queryCache ? { cache: queryCache } : {}) }),
      (books) => Array.isArray(books) && books.length === per && typeof (books[0] as { publisher?: { name?: unknown } }).publisher?.name === 'string',
    );
  },
};

export const collection: Workload = {
  key: 'collection',
  title: 'Collection of 50 books',
  operation: "`em.fork().findOneOrFail(Author, id, { populate: ['books'] })`, iterating the 50 books (with `cache: 60_000` for the result-cache adapters; xa-cache caches the collection itself)",
  run: (ctx) => {
    const { orm, collectionCache } = ctx.contender;
    const per = ctx.config.booksPerAuthor;
    return runHits(
      ctx,
      'collection',
      ctx.config.books / per,
      async (id) => {
        const author = await orm.em.fork().findOneOrFail(Author, id, { populate: ['books'], ...(collectionCache ? { cache: collectionCache } : {}) });
        let sum = 0;
        for (const book of author.books) sum += book.price;
        return { count: author.books.length, sum };
      },
      (r) => (r as { count: number }).count === per && Number.isFinite((r as { sum: number }).sum),
    );
  },
};
