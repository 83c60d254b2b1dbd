import { Book } from '../../spec/support/bookstore.js';
import type { Workload } from './workload.js';

let price = 1_000_000;

/**
 * A write transaction of 10 books at 1 in flight: load them, set a new price on each, `flush()` (MikroORM's
 * implicit transaction: BEGIN, one batched UPDATE, COMMIT; for xa-cache also prepare and promote). The flush alone
 * is timed: its p50 is the cost the target is about.
 */
export const flush10: Workload = {
  key: 'flush10',
  title: 'Flush of 10 books',
  operation: '`em.fork()`, `find(Book, { id: { $in: ids } })` of the same 10 books, a new price on each, `flush()`; 1 in flight; the flush alone is timed',
  inFlight: 1,
  headline: 'timedP50',
  async prepare({ orm }, data) {
    // The last 10 books of the main range: far from the Zipf-hot ids of the mixed workload.
    const ids = Array.from({ length: 10 }, (_, i) => data.books - 9 + i);
    return async (_worker, timed) => {
      const em = orm.em.fork();
      const books = await em.find(Book, { id: { $in: ids } });
      if (books.length !== ids.length) throw new Error(`flush10: loaded ${books.length} of ${ids.length} books`);
      for (const book of books) book.price = ++price;
      await timed(() => em.flush());
      return { kind: 'write' };
    };
  },
};
