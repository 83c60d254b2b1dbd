import { Book } from '../../spec/support/bookstore.js';
import { measure, percentile } from '../measure.js';
import { fmtOps } from './hit-workloads.js';
import type { Point, Workload } from './workload.js';

export const WRITE_SIZES = [1, 10, 100] as const;

/**
 * A write transaction of N changed books: load N books (each loop owns its own N, so loops never wait on each
 * other's row locks), set a new price on each, `flush()` (MikroORM's implicit transaction: BEGIN, one batched
 * UPDATE, COMMIT; for xa-cache also prepare and promote). Latencies of the flush alone are reported beside the
 * whole operation's, and at 1 in flight the SQL statements and cache round trips of the flush alone.
 */
export const writeTransaction: Workload = {
  key: 'write',
  title: 'Write transaction',
  operation: '`em.fork()`, `find(Book, { id: { $in: ids } })` of N books, change each price, `flush()`',
  async run(ctx) {
    const { orm, counters } = ctx.contender;
    const points: Point[] = [];
    let price = 1_000_000;
    for (const size of WRITE_SIZES) {
      for (const inFlight of ctx.config.inFlight) {
        if (inFlight * size > ctx.config.books) continue;
        const flushes: number[] = [];
        const flushCounters: Record<string, number> = {};
        let flushCount = 0;
        const op = async (worker: number): Promise<void> => {
          const ids = Array.from({ length: size }, (_, i) => worker * size + i + 1);
          const em = orm.em.fork();
          const books = await em.find(Book, { id: { $in: ids } });
          if (books.length !== size) throw new Error(`write: loaded ${books.length} of ${size} books`);
          for (const book of books) book.price = ++price;
          const before = inFlight === 1 ? counters() : undefined;
          const t0 = performance.now();
          await em.flush();
          flushes.push(performance.now() - t0);
          if (before) {
            flushCount++;
            for (const [k, v] of Object.entries(counters())) flushCounters[k] = (flushCounters[k] ?? 0) + v - (before[k] ?? 0);
          }
        };
        await measure(op, { inFlight, seconds: ctx.config.warmupSeconds });
        flushes.length = 0;
        flushCount = 0;
        for (const k of Object.keys(flushCounters)) delete flushCounters[k];
        const m = await measure(op, { inFlight, seconds: ctx.config.seconds, counters });
        flushes.sort((a, b) => a - b);
        const extra: Record<string, number> = { flushP50: percentile(flushes, 0.5), flushP99: percentile(flushes, 0.99) };
        if (flushCount > 0) for (const [k, v] of Object.entries(flushCounters)) extra[`flush_${k}`] = v / flushCount;
        const label = `${size} ${size === 1 ? 'entity' : 'entities'}, ${inFlight} in flight`;
        ctx.progress(`write ${label}: ${fmtOps(m.opsPerSecond)}, flush p50 ${extra.flushP50?.toFixed(2)} ms p99 ${extra.flushP99?.toFixed(2)} ms${m.errors ? `, ${m.errors} errors: ${m.firstError}` : ''}`);
        points.push({ ...m, label, extra });
      }
    }
    return { points };
  },
};
