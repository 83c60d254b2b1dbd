/**
 * Query results under writes, table-level vs predicate-level invalidation: `npm run bench:predicate`.
 *
 * One process, one memcached, one PostgreSQL (started here). 200 writers with 5 novels each (the predicate specs'
 * schema). Two ORMs over the same database, each in its own memcached namespace: `conjunctionRegions: false` (every
 * result depends on its table) and the default (results depend on their conjunctions). Each runs, per round, 32
 * operations in flight: 95% a cached `find(Novel, { writer })` (half of them `{ writer, published }`) of a writer
 * picked uniformly, 5% an autocommitted `nativeUpdate` of one novel's price (one writer's books change). Rounds
 * alternate between the two. Hit ratio = query hits / (hits + misses) from the cache's counters; throughput = reads
 * and writes completed per second. Prints a markdown table.
 *
 * Settings: `BENCH_ROUNDS` (default 4), `BENCH_SECONDS` (per round, default 3).
 */
import { Servers } from '../spec/support/servers.js';
import { installWriteCapture } from '../lib/mikro-orm/write-capture-setup.js';
import { Novel, openPredicateStore, seedPredicateStore, type PredicateStore } from '../spec/mikro-orm/predicate-entities.js';

const WRITERS = 200;
const PER_WRITER = 5;
const IN_FLIGHT = 32;
const WRITE_SHARE = 0.05;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);

interface RoundResult {
  hits: number;
  misses: number;
  ops: number;
  seconds: number;
}

async function round(store: PredicateStore, seconds: number): Promise<RoundResult> {
  const stats = store.cache().xa.stats;
  const hits0 = stats.hits;
  const misses0 = stats.misses;
  let ops = 0;
  const end = Date.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (Date.now() < end) {
        const writer = 1 + Math.floor(Math.random() * WRITERS);
        if (Math.random() < WRITE_SHARE) {
          const id = writer * 100 + 1 + Math.floor(Math.random() * PER_WRITER);
          await store.orm.em.fork().nativeUpdate(Novel, { id }, { price: Math.floor(Math.random() * 1000) });
        } else if (Math.random() < 0.5) {
          await store.orm.em.fork().find(Novel, { writer }, { cache: 60_000 });
        } else {
          await store.orm.em.fork().find(Novel, { writer, published: true }, { cache: 60_000 });
        }
        ops++;
      }
    }),
  );
  await store.cache().promotes.settle();
  return { hits: stats.hits - hits0, misses: stats.misses - misses0, ops, seconds: (performance.now() - started) / 1000 };
}

async function main(): Promise<void> {
  const servers = await Servers.start({ memcached: 1 });
  try {
    const table = await openPredicateStore(servers.memcachedAddresses, servers.db, 'bench-table', { conjunctionRegions: false });
    const predicate = await openPredicateStore(servers.memcachedAddresses, servers.db, 'bench-predicate');
    await table.orm.schema.refresh();
    await installWriteCapture(table.orm);
    await seedPredicateStore(table.orm, WRITERS, PER_WRITER);
    const contenders = [
      { name: 'table-level (`conjunctionRegions: false`)', store: table, results: [] as RoundResult[] },
      { name: 'predicate-level (default)', store: predicate, results: [] as RoundResult[] },
    ];
    for (const c of contenders) await round(c.store, 1); // warm-up: connects, establishes schemes, fills
    for (let r = 0; r < ROUNDS; r++) {
      for (const c of r % 2 === 0 ? contenders : [...contenders].reverse()) c.results.push(await round(c.store, SECONDS));
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
    console.log(`| invalidation | query hit ratio, median (min–max) of ${ROUNDS} rounds | operations/s, median (min–max) |`);
    console.log('| --- | --- | --- |');
    for (const c of contenders) {
      const ratios = c.results.map((x) => x.hits / Math.max(1, x.hits + x.misses));
      const rates = c.results.map((x) => x.ops / x.seconds);
      const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;
      console.log(`| ${c.name} | ${pct(median(ratios))} (${pct(Math.min(...ratios))}–${pct(Math.max(...ratios))}) | ${Math.round(median(rates))} (${Math.round(Math.min(...rates))}–${Math.round(Math.max(...rates))}) |`);
    }
    await table.close();
    await predicate.close();
  } finally {
    await servers.stop();
  }
}

await main();
