/**
 * `npm run demo`: the cache under a realistic concurrent workload, end to end, in under a minute.
 *
 * Starts throwaway PostgreSQL and memcached servers (or uses `DATABASE_URL` / `MEMCACHED_SERVERS`), seeds a
 * bookstore, forks two application processes (each its own ORMs) that read and write concurrently — some
 * transactions rolled back — kills one of them in the middle of a commit, and lets its replacement's startup
 * sweep resolve what it left in doubt. It ends with a report: hit ratio, queries saved, latency with and without
 * the cache, the in-doubt entries found and resolved, and a consistency verdict on every read.
 *
 *   node dist/bench/demo.js [--duration 30s]
 */
import { fork, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { MikroORM } from '@mikro-orm/postgresql';
import { Servers } from '../spec/support/servers.js';
import { Author, Book, entities, openBookstore, seedBookstore } from '../spec/support/bookstore.js';
import type { XaCacheAdapter } from '../lib/mikro-orm/xa-cache-adapter.js';
import type { InDoubtTransaction } from '../lib/protocol/in-doubt.js';
import type { WorkerMessage, WorkerResult } from './demo-worker.js';

const WORKER = fileURLToPath(new URL('./demo-worker.js', import.meta.url));
const BOOKS = 400;
const AUTHORS = 40;

function parseDuration(argv: string[]): number {
  const i = argv.indexOf('--duration');
  const raw = i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith('--duration='))?.slice(11);
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log('Usage: node dist/bench/demo.js [--duration 30s]   (DATABASE_URL / MEMCACHED_SERVERS to use running servers)');
    process.exit(0);
  }
  if (raw === undefined) return 30_000;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(raw);
  if (!match) {
    console.error(`demo: --duration ${raw} is not a duration (write 30s, 2m or a number of milliseconds)`);
    process.exit(2);
  }
  return Math.round(Number(match[1]) * { ms: 1, s: 1000, m: 60_000 }[(match[2] ?? 'ms') as 'ms' | 's' | 'm']);
}

const durationMs = parseDuration(process.argv.slice(2));
const wallStart = performance.now();
const tty = process.stderr.isTTY === true;
const say = (line: string): void => void process.stderr.write(`${tty ? '\r\u001b[K' : ''}${line}\n`);

say(`mikro-orm-xa-cache demo: ${durationMs / 1000}s of concurrent reads and writes from two application processes`);
say(process.env.DATABASE_URL || process.env.MEMCACHED_SERVERS ? 'using DATABASE_URL / MEMCACHED_SERVERS (the bookstore tables are recreated)' : 'starting throwaway PostgreSQL and 2 memcached servers…');
const servers = await Servers.start({ memcached: 2 });
const namespace = `demo${randomUUID().slice(0, 6)}`;
const logTable = 'xa_cache_demo_log';
const main = await openBookstore(servers.memcachedAddresses, servers.db, { namespace, logTable });
const pool = new pg.Pool({ connectionString: servers.db, max: 4 });
const xa = (main.orm.config.getResultCacheAdapter() as XaCacheAdapter).xa;

async function seed(): Promise<void> {
  await seedBookstore(main.orm);
  const em = main.orm.em.fork();
  for (let id = 5; id <= AUTHORS; id++) em.create(Author, { id, name: `Author ${id} v0`, email: `a${id}@example.org` });
  for (let id = 1; id <= 4; id++) (await em.findOneOrFail(Author, id)).name = `Author ${id} v0`;
  for (let id = 13; id <= BOOKS; id++) em.create(Book, { id, title: `Book ${id}`, price: 10 + (id % 40), author: ((id - 1) % AUTHORS) + 1 });
  await em.flush();
  await xa.flushLogDeletes(pool);
}
await seed();
say(`seeded ${BOOKS} books by ${AUTHORS} authors; memcached ${servers.memcachedAddresses.join(', ')}; namespace ${namespace}`);

interface WorkerState {
  name: string;
  child: ChildProcess;
  progress: Extract<WorkerMessage, { type: 'progress' }>;
  result?: WorkerResult;
  done: Promise<void>;
}

const workers: WorkerState[] = [];
const finished: WorkerState[] = [];
const events: string[] = [];
let crash: { txId: string; at: number; found?: InDoubtTransaction; resolvedBy?: string; resolvedAtStartup?: number } | undefined;
const started = Date.now();
const settled = new Set<WorkerState>();

function spawnWorker(name: string, duration: number, crashAfterMs?: number): WorkerState {
  const child = fork(WORKER, [], {
    env: {
      ...process.env,
      MEMCACHED_SERVERS: servers.memcachedAddresses.join(','),
      DATABASE_URL: servers.db,
      NAMESPACE: namespace,
      LOG_TABLE: logTable,
      WORKER_ID: name,
      BOOKS: String(BOOKS),
      AUTHORS: String(AUTHORS),
      DURATION_MS: String(duration),
      ...(crashAfterMs === undefined ? {} : { CRASH_AFTER_MS: String(crashAfterMs) }),
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const state: WorkerState = { name, child, progress: { type: 'progress', reads: 0, writes: 0, rollbacks: 0, errors: 0, violations: 0, hits: 0, misses: 0 }, done: Promise.resolve() };
  // Messages can arrive after 'exit': wait for the result (up to 2 s) unless the worker was killed.
  state.done = new Promise<void>((resolve) =>
    child.once('exit', (_code, signal) => {
      if (signal || state.result) return resolve();
      const limit = Date.now() + 2000;
      const poll = setInterval(() => {
        if (state.result || Date.now() > limit) {
          clearInterval(poll);
          resolve();
        }
      }, 20);
    }),
  );
  child.on('message', (message: WorkerMessage) => {
    if (message.type === 'progress') state.progress = message;
    else if (message.type === 'result') state.result = message.result;
    else if (message.type === 'started' && crash && name.endsWith("'")) {
      crash.resolvedAtStartup = message.sweptAtStartup;
    } else if (message.type === 'crash-point') void killMidCommit(state, message.txId);
  });
  workers.push(state);
  return state;
}

async function killMidCommit(state: WorkerState, txId: string): Promise<void> {
  state.child.kill('SIGKILL');
  await state.done;
  finished.push(state);
  workers.splice(workers.indexOf(state), 1);
  const at = (Date.now() - started) / 1000;
  crash = { txId, at };
  const found = (await xa.listInDoubt(pool, 1000)).find((tx) => tx.txId === txId);
  crash.found = found;
  const locked = found?.keys.filter((k) => k.state === 'locked-by-this').length ?? 0;
  events.push(`${at.toFixed(1)}s: worker ${state.name} SIGKILLed in the middle of promote (after COMMIT) of ${txId.slice(0, 8)}; inspect: ${found ? `${found.outcome}, ${found.keys.length} keys, ${locked} still locked` : 'not in the log'}`);
  const remaining = durationMs - (Date.now() - started);
  if (remaining > 3000) {
    spawnWorker(`${state.name}'`, remaining);
    events.push(`${at.toFixed(1)}s: started worker ${state.name}' in its place; its startXaCache() sweeps before it serves`);
  }
}

const a = spawnWorker('a', durationMs);
const b = spawnWorker('b', durationMs, Math.round(durationMs * 0.4));
void a;
void b;

const totals = (): { reads: number; writes: number; rollbacks: number; errors: number; violations: number; hits: number; misses: number } => {
  const all = [...new Set([...finished, ...workers])].map((w) => w.progress);
  const sum = (k: keyof (typeof all)[number]): number => all.reduce((s, p) => s + (p[k] as number), 0);
  return { reads: sum('reads'), writes: sum('writes'), rollbacks: sum('rollbacks'), errors: sum('errors'), violations: sum('violations'), hits: sum('hits'), misses: sum('misses') };
};
let lastPrinted = 0;
const ticker = setInterval(() => {
  const t = totals();
  const elapsed = (Date.now() - started) / 1000;
  const ratio = t.hits + t.misses > 0 ? `${((t.hits / (t.hits + t.misses)) * 100).toFixed(1)}%` : '-';
  const line = `${elapsed.toFixed(1).padStart(5)}s / ${durationMs / 1000}s  reads ${fmt(t.reads)} (cache hits ${ratio})  writes ${fmt(t.writes)}  rolled back ${fmt(t.rollbacks)}  violations ${t.violations}  workers ${workers.length}${crash ? '  [1 killed mid-commit]' : ''}`;
  if (tty) process.stderr.write(`\r\u001b[K${line}`);
  else if (Date.now() - lastPrinted >= 5000) {
    lastPrinted = Date.now();
    process.stderr.write(`${line}\n`);
  }
}, 250);

// Wait for every worker, including a replacement started while waiting.
for (let pending = [...workers]; pending.length > 0; pending = workers.filter((w) => !settled.has(w))) {
  await Promise.all(pending.map((w) => w.done.then(() => settled.add(w))));
  await new Promise((r) => setTimeout(r, 100));
}
clearInterval(ticker);
if (tty) process.stderr.write('\r\u001b[K');
finished.push(...workers.filter((w) => !finished.includes(w)));

// The killed transaction: still logged? (The replacement's startup sweep should have resolved it.)
if (crash) {
  const still = (await pool.query(`SELECT count(*)::int AS n FROM ${logTable} WHERE tx_id = $1`, [crash.txId])).rows[0].n as number;
  crash.resolvedBy = still === 0 ? (crash.resolvedAtStartup ? "the replacement worker's startup sweep" : 'a periodic sweep') : undefined;
}
const finalSweep = await xa.sweep(pool, { minAgeMs: 0 });
const leftRows = (await pool.query(`SELECT count(*)::int AS n FROM ${logTable}`)).rows[0].n as number;

// Final check: every book and author read through the cache equals the database.
let finalMismatches = 0;
{
  const em = main.orm.em.fork();
  const cachedBooks = await em.find(Book, { id: { $in: Array.from({ length: BOOKS }, (_, i) => i + 1) } });
  const dbBooks = new Map(((await pool.query('SELECT id, price, title FROM book')).rows as Array<{ id: number; price: number; title: string }>).map((r) => [r.id, r]));
  for (const book of cachedBooks) {
    const row = dbBooks.get(book.id);
    if (!row || row.price !== book.price || row.title !== book.title) finalMismatches++;
  }
  for (let id = 1; id <= BOOKS; id++) {
    const book = await main.orm.em.fork().findOneOrFail(Book, id);
    const row = dbBooks.get(id);
    if (!row || row.price !== book.price || row.title !== book.title) finalMismatches++;
  }
}

// One read at a time, nothing else running: latency without queueing, and SQL statements per read exactly.
say('measuring one read at a time, with and without the cache…');
let plainCount = 0;
const plainOrm = await MikroORM.init({ entities, clientUrl: servers.db, onQuery: (q: string) => {
  plainCount++;
  return q;
} });
const quiet = { cached: [] as number[], plain: [] as number[] };
const perOp: Record<'book' | 'author' | 'query', number> = { book: 0, author: 0, query: 0 };
for (const kind of ['book', 'author', 'query'] as const) {
  const rounds = 150;
  for (const [orm, into] of [[main.orm, quiet.cached], [plainOrm, quiet.plain]] as const) {
    const before = plainCount;
    for (let i = 0; i < rounds; i++) {
      const id = (i % 20) + 1;
      const em = orm.em.fork();
      const t = performance.now();
      if (kind === 'book') await em.findOneOrFail(Book, id);
      else if (kind === 'author') await em.findOneOrFail(Author, id, { populate: ['books'] });
      else await em.find(Book, { author: id }, orm === main.orm ? { cache: 30_000 } : {});
      if (i >= 20) into.push(performance.now() - t); // the first 20 warm the cache
    }
    if (orm === plainOrm) perOp[kind] = (plainCount - before) / rounds;
  }
}
await plainOrm.close(true);
quiet.cached.sort((x, y) => x - y);
quiet.plain.sort((x, y) => x - y);

const results = finished.map((w) => w.result).filter((r): r is WorkerResult => r !== undefined);
const cached = results.flatMap((r) => r.cachedLatencies).sort((x, y) => x - y);
const plainLat = results.flatMap((r) => r.plainLatencies).sort((x, y) => x - y);
const hits = results.reduce((s, r) => s + (r.stats.hits as number), 0);
const misses = results.reduce((s, r) => s + (r.stats.misses as number), 0);
const kinds = ['book', 'author', 'query'] as const;
const cachedOps = kinds.reduce((s, k) => s + results.reduce((t, r) => t + r.cachedOps[k], 0) * (perOp[k] as number), 0);
const cachedQueries = results.reduce((s, r) => s + r.cachedQueries, 0);
const cachedReadOps = results.reduce((s, r) => s + kinds.reduce((t, k) => t + r.cachedOps[k], 0), 0);
const violations = results.flatMap((r) => r.violations);
const all = totals(); // includes what the killed worker had reported
const violationCount = Math.max(all.violations, results.reduce((s, r) => s + r.violationCount, 0));
const stat = (name: string): number => results.reduce((s, r) => s + ((r.stats[name] as number) ?? 0), 0);

const report = [
  '',
  'mikro-orm-xa-cache demo report',
  '==============================',
  `workload        ${fmt(all.reads)} reads (every one checked against the database), ${fmt(all.writes)} commits, ${fmt(all.rollbacks)} rollbacks, ${all.errors} failed operations (reasons on stderr), 2 processes`,
  `hit ratio       ${pct(hits, hits + misses)} (${fmt(hits)} hits, ${fmt(misses)} misses; ${fmt(stat('lockBypasses'))} lock bypasses, ${fmt(stat('leaseWaits'))} lease waits, ${fmt(stat('staleFillsRefused'))} stale fills refused)`,
  `queries saved   ${fmt(Math.max(0, cachedOps - cachedQueries))} of ${fmt(cachedOps)} (${pct(Math.max(0, cachedOps - cachedQueries), cachedOps)}): ${fmt(cachedReadOps)} cached reads sent ${fmt(cachedQueries)} SQL statements; without the cache they take ${kinds.map((k) => `${k} ${(perOp[k] as number).toFixed(2)}`).join(', ')} per read`,
  `latency         under load, with the cache       p50 ${ms(quantile(cached, 0.5))}  p99 ${ms(quantile(cached, 0.99))}  (${fmt(cached.length)} reads)`,
  `                under load, without the cache    p50 ${ms(quantile(plainLat, 0.5))}  p99 ${ms(quantile(plainLat, 0.99))}  (${fmt(plainLat.length)} reads, same processes, same time)`,
  `                one at a time, with the cache    p50 ${ms(quantile(quiet.cached, 0.5))}  p99 ${ms(quantile(quiet.cached, 0.99))}  (warm cache)`,
  `                one at a time, without the cache p50 ${ms(quantile(quiet.plain, 0.5))}  p99 ${ms(quantile(quiet.plain, 0.99))}`,
  `                (loopback PostgreSQL on the same ${os.cpus().length}-CPU machine as the workload: under load both wait mostly for the CPU)`,
  ...(crash
    ? [
        `in doubt        1 found: ${crash.txId} (${crash.found?.outcome ?? '?'}), ${crash.found?.keys.length ?? 0} keys, ${crash.found?.keys.filter((k) => k.state === 'locked-by-this').length ?? 0} still locked when inspected`,
        `                resolved by ${crash.resolvedBy ?? 'the final sweep'}; final sweep: ${finalSweep.resolved} more; log rows left: ${leftRows}`,
      ]
    : [`in doubt        no worker reached the crash point (run longer); final sweep resolved ${finalSweep.resolved}; log rows left: ${leftRows}`]),
  ...events.map((e) => `                ${e}`),
  `consistency     ${violationCount === 0 && finalMismatches === 0 ? 'CONSISTENT' : 'VIOLATIONS FOUND'}: ${fmt(all.reads - violationCount)} reads within their database window, ${violationCount} outside it; final pass over ${BOOKS} books through the cache: ${finalMismatches} differ from the database`,
  ...violations.slice(0, 10).map((v) => `                ${v}`),
  `wall time       ${((performance.now() - wallStart) / 1000).toFixed(1)}s`,
];
console.log(report.join('\n'));

await pool.end();
await main.close();
await servers.stop();
process.exit(violationCount === 0 && finalMismatches === 0 ? 0 : 1);

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}
function pct(part: number, whole: number): string {
  return whole > 0 ? `${((part / whole) * 100).toFixed(1)}%` : '-';
}
function ms(value: number | undefined): string {
  return value === undefined ? '-' : `${value.toFixed(2)} ms`;
}
function quantile(sorted: readonly number[], q: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}
