/**
 * Flush latency of one writer, 1 in flight: `em.fork()`, `find(Book, { id: { $in: ids } })` of the same N books, a
 * new price on each, `flush()`; only the flush is timed. A short, self-contained run (own PostgreSQL and memcached,
 * the bookstore schema) for comparing two builds of the library, e.g. before and after a change of the commit path:
 * `node dist/bench/flush-latency.js` (settings: `BENCH_ROUNDS` default 3, `BENCH_SECONDS` default 1, `BENCH_N`
 * default 10). Prints p50 and p90 flush ms per round and the median of the rounds' p50s.
 */
import { Servers } from '../spec/support/servers.js';
import { Book, openBookstore, seedBookstore } from '../spec/support/bookstore.js';

const num = (name: string, fallback: number): number => (process.env[name] ? Number(process.env[name]) : fallback);
const ROUNDS = num('BENCH_ROUNDS', 3);
const SECONDS = num('BENCH_SECONDS', 1);
const N = num('BENCH_N', 10);

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;

const servers = await Servers.start({ memcached: 1 });
try {
  const b = await openBookstore(servers.memcachedAddresses, servers.db, process.env.BENCH_WRITE_THROUGH === "0" ? { writeThrough: false } : {});
  await seedBookstore(b.orm);
  const em0 = b.orm.em.fork();
  for (let id = 100; id < 100 + N; id++) em0.create(Book, { id, title: `Bench ${id}`, price: 1, author: 1 });
  await em0.flush();
  const ids = Array.from({ length: N }, (_, i) => 100 + i);
  const p50s: number[] = [];
  let price = 1;
  let roundTrips = 0;
  let flushes = 0;
  for (let round = 0; round <= ROUNDS; round++) {
    const times: number[] = [];
    const end = Date.now() + (round === 0 ? 300 : SECONDS * 1000); // round 0 is the warm-up
    while (Date.now() < end) {
      const em = b.orm.em.fork();
      const books = await em.find(Book, { id: { $in: ids } });
      price++;
      for (const book of books) book.price = price;
      const trips = b.cache().xa.store.counters.roundTrips;
      const start = process.hrtime.bigint();
      await em.flush();
      times.push(Number(process.hrtime.bigint() - start) / 1e6);
      roundTrips += b.cache().xa.store.counters.roundTrips - trips;
      flushes++;
    }
    if (round === 0) {
      roundTrips = flushes = 0;
      continue;
    }
    times.sort((x, y) => x - y);
    p50s.push(quantile(times, 0.5));
    console.log(`round ${round}: ${times.length} flushes, p50 ${quantile(times, 0.5).toFixed(2)} ms, p90 ${quantile(times, 0.9).toFixed(2)} ms`);
  }
  p50s.sort((x, y) => x - y);
  console.log(`N=${N}: median of round p50s ${quantile(p50s, 0.5).toFixed(2)} ms (min ${p50s[0]?.toFixed(2)}, max ${p50s.at(-1)?.toFixed(2)}); memcached round trips per flush until it returned ${(roundTrips / flushes).toFixed(2)}`);
  await b.close();
} finally {
  await servers.stop();
}
