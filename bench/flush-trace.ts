/**
 * The timeline of one flush of 10 books, after 300 warm-up flushes (a developer's aid for changes of the commit path):
 * every memcached batch and every statement the pg clients send, with their start and end in ms from the flush's
 * start, and when the flush returned. `npm run build && node dist/bench/flush-trace.js`. The tracing itself slows
 * each step; read the order and the overlaps, not the durations.
 */
import { Servers } from '../spec/support/servers.js';
import { Book, openBookstore, seedBookstore } from '../spec/support/bookstore.js';

const N = 10;
const servers = await Servers.start({ memcached: 1 });
try {
  const b = await openBookstore(servers.memcachedAddresses, servers.db);
  await seedBookstore(b.orm);
  const em0 = b.orm.em.fork();
  for (let id = 100; id < 100 + N; id++) em0.create(Book, { id, title: `Bench ${id}`, price: 1, author: 1 });
  await em0.flush();
  const ids = Array.from({ length: N }, (_, i) => 100 + i);
  const store = b.cache().xa.store as unknown as { execute: (ops: Array<{ op: string; key: string }>) => Promise<unknown> };
  let t0 = 0n;
  let tracing = false;
  const events: string[] = [];
  const ms = (): string => (Number(process.hrtime.bigint() - t0) / 1e6).toFixed(3);
  const exec = store.execute.bind(store);
  store.execute = async (ops) => {
    if (!tracing) return exec(ops);
    const s = ms();
    const r = await exec(ops);
    events.push(`${s}-${ms()} mc ${ops.map((o) => `${o.op} ${o.key.slice(0, 40)}`).join(', ')}`);
    return r;
  };
  const pgmod = (await import('pg')).default;
  const q = pgmod.Client.prototype.query;
  pgmod.Client.prototype.query = function (this: unknown, ...args: unknown[]) {
    if (!tracing) return (q as Function).apply(this, args);
    const s = ms();
    const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text: string }).text;
    const r = (q as Function).apply(this, args);
    if (r && typeof r.then === 'function') r.then(() => events.push(`${s}-${ms()} pg ${text.replace(/\s+/g, ' ').slice(0, 110)}`), () => {});
    return r;
  } as typeof q;
  let price = 1;
  for (let i = 0; i < 300; i++) {
    const em = b.orm.em.fork();
    const books = await em.find(Book, { id: { $in: ids } });
    price++;
    for (const book of books) book.price = price;
    const last = i === 299;
    if (last) { tracing = true; t0 = process.hrtime.bigint(); }
    await em.flush();
    if (last) { events.push(`${ms()} flush returned`); tracing = false; }
    await b.cache().promotes.settle();
  }
  await new Promise((r) => setTimeout(r, 50));
  console.log(events.join('\n'));
  await b.close();
} finally {
  await servers.stop();
}
