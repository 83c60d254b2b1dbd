import { Book } from '../../spec/support/bookstore.js';
import { forEachIndex, seededRandom, Zipf } from '../measure.js';
import { attributed } from '../op-attribution.js';
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

/** Books the flush workload writes (the last 10) are left out, so this process is the only writer of the rest. */
const FLUSH_BOOKS = 10;

/**
 * 95% reads / 5% writes on Zipf-distributed books (s = 0.99), 32 in flight. A write sets a fresh, ever-growing
 * price and, once `flush()` returned, records it as committed; every read checks that the price it got is not
 * older than the price committed before the read began (a smaller price is a stale read), and counts as a hit when
 * it sent no statement to PostgreSQL. The committed prices live as long as the process, so rounds continue one
 * history.
 */
export const mixed: Workload = {
  key: 'mixed',
  title: 'Mixed 95% read / 5% write, Zipf',
  operation: `95%: \`em.fork().findOne(Book, id)\` (result-cache adapters: with \`{ cache }\`), 5%: load the book, set a new price, \`flush()\`; Zipf-distributed ids (s = 0.99), 32 in flight, every read checked against the last price committed before it began; a hit is a read that sent no statement to PostgreSQL (counted through an AsyncLocalStorage per operation, in every contender)`,
  inFlight: 32,
  headline: 'throughput',
  async prepare({ orm, pkOptions, fills }, data) {
    const books = data.books - FLUSH_BOOKS;
    if (fills) await forEachIndex(books, 32, (i) => orm.em.fork().findOne(Book, i + 1, pkOptions as never));
    const random = seededRandom(4242);
    const zipf = new Zipf(books, 0.99, random);
    const committed = new Map<number, number>();
    const locks = new KeyLocks();
    let price = 2_000_000;
    return async () => {
      const id = zipf.next() + 1;
      if (random() < 0.05) {
        await locks.run(id, async () => {
          const em = orm.em.fork();
          const book = await em.findOneOrFail(Book, id);
          const next = ++price;
          book.price = next;
          await em.flush();
          committed.set(id, next);
        });
        return { kind: 'write' };
      }
      const floor = committed.get(id) ?? 0;
      const { value: book, counters } = await attributed(() => orm.em.fork().findOne(Book, id, pkOptions as never));
      if (!book) throw new Error(`mixed: book ${id} not found`);
      return { kind: 'read', stale: book.price < floor, hit: counters.sql === 0 };
    };
  },
};
