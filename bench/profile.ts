/**
 * The focused run for `--cpu-prof`: xa-cache alone, on one workload, with the cache warm. Started by
 * `profile-runner.ts` as `node --cpu-prof dist/bench/profile.js <pk|write> <seconds>` with the servers in
 * PROFILE_DATABASE_URL / PROFILE_MEMCACHED; writes the measured window (V8 profiler clock, µs) to PROFILE_WINDOW so
 * the summary leaves out start-up and the cache fill.
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Book } from '../spec/support/bookstore.js';
import { xaCache } from './contenders/xa-cache.js';
import { forEachIndex, measure, seededRandom } from './measure.js';

const [workload = 'pk', secondsArg = '8'] = process.argv.slice(2);
const seconds = Number(secondsArg);
const databaseUrl = process.env.PROFILE_DATABASE_URL as string;
const memcached = (process.env.PROFILE_MEMCACHED as string).split(',');
const books = Number(process.env.PROFILE_BOOKS ?? 10_000);
const windowFile = process.env.PROFILE_WINDOW as string;

/** Microseconds on the clock the V8 profiler stamps samples with (CLOCK_MONOTONIC, as `process.hrtime`). */
const micros = (): number => Number(process.hrtime.bigint() / 1000n);

const open = await xaCache.open({ databaseUrl, memcached, redisPort: undefined, pool: Number(process.env.PROFILE_POOL ?? 20), namespace: `prof-${randomUUID().slice(0, 8)}` });
try {
  const { orm } = open;
  let op: () => Promise<unknown>;
  let inFlight: number;
  if (workload === 'pk') {
    await forEachIndex(books, 32, (i) => orm.em.fork().findOne(Book, i + 1));
    const random = seededRandom(1);
    op = () => orm.em.fork().findOne(Book, 1 + Math.floor(random() * books));
    inFlight = 32;
  } else {
    let price = 2_000_000;
    const ids = Array.from({ length: 10 }, (_, i) => i + 1);
    op = async () => {
      const em = orm.em.fork();
      const loaded = await em.find(Book, { id: { $in: ids } });
      for (const book of loaded) book.price = ++price;
      await em.flush();
    };
    inFlight = 1;
  }
  await measure(op, { inFlight, seconds: 1 });
  const start = micros();
  const m = await measure(op, { inFlight, seconds, counters: open.counters });
  const end = micros();
  writeFileSync(windowFile, JSON.stringify({ start, end, opsPerSecond: m.opsPerSecond, ops: m.ops, inFlight, perOp: m.perOp }));
} finally {
  await open.close();
}
