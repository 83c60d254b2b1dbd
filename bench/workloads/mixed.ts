import { Book } from '../../spec/support/bookstore.js';
import { forEachIndex, measure, percentile, seededRandom, Zipf } from '../measure.js';
import { fmtOps } from './hit-workloads.js';
import type { Workload } from './workload.js';

/** Serialises the bench's own writers per key, so the committed order of a key's prices is the order they were issued. */
class KeyLocks {
  readonly #tails = new Map<number, Promise<void>>();

  async run<T>(key: number, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.#tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}

/**
 * 95% reads / 5% writes on Zipf-distributed books (s = 0.99), 32 in flight. A write sets a fresh, ever-growing
 * price and, once `flush()` returned, records it as committed; every read checks that the price it got is not
 * older than the price committed before the read began. A smaller price is a stale read.
 */
export const mixed: Workload = {
  key: 'mixed',
  title: 'Mixed 95% read / 5% write',
  operation: '95%: `em.fork().findOne(Book, id)` (result-cache adapters: `{ cache: 60_000 }`), 5%: load the book, set a new price, `flush()`; Zipf-distributed ids (s = 0.99), 32 in flight, every read checked against the last committed price',
  async run(ctx) {
    const { orm, pkOptions, counters } = ctx.contender;
    const books = ctx.config.books;
    await forEachIndex(books, 32, (i) => orm.em.fork().findOne(Book, i + 1, pkOptions as never));
    const random = seededRandom(4242);
    const zipf = new Zipf(books, 0.99, random);
    const committed = new Map<number, number>();
    const locks = new KeyLocks();
    let price = 1_000_000;
    let reads = 0;
    let writes = 0;
    let stale = 0;
    const readLatencies: number[] = [];
    const writeLatencies: number[] = [];
    const op = async (): Promise<void> => {
      const id = zipf.next() + 1;
      const t0 = performance.now();
      if (random() < 0.05) {
        await locks.run(id, async () => {
          const em = orm.em.fork();
          const book = await em.findOneOrFail(Book, id);
          const next = ++price;
          book.price = next;
          await em.flush();
          committed.set(id, next);
        });
        writes++;
        writeLatencies.push(performance.now() - t0);
        return;
      }
      const floor = committed.get(id) ?? 0;
      const book = await orm.em.fork().findOne(Book, id, pkOptions as never);
      if (!book) throw new Error(`mixed: book ${id} not found`);
      reads++;
      if (book.price < floor) stale++;
      readLatencies.push(performance.now() - t0);
    };
    const m = await measure(op, { inFlight: 32, seconds: ctx.config.mixedSeconds, counters });
    readLatencies.sort((a, b) => a - b);
    writeLatencies.sort((a, b) => a - b);
    ctx.progress(`mixed: ${fmtOps(m.opsPerSecond)}, ${reads} reads checked, ${stale} stale, ${writes} writes${m.errors ? `, ${m.errors} errors: ${m.firstError}` : ''}`);
    return {
      points: [
        {
          ...m,
          label: '32 in flight',
          extra: { readP50: percentile(readLatencies, 0.5), readP99: percentile(readLatencies, 0.99), writeP50: percentile(writeLatencies, 0.5), writeP99: percentile(writeLatencies, 0.99) },
        },
      ],
      facts: { reads, writes, staleReads: stale, staleShare: reads > 0 ? stale / reads : 0 },
    };
  },
};
