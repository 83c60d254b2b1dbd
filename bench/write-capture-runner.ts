/**
 * One contender of `bench/write-capture.ts`, in a process of its own (`child_process.fork`): opens its ORM on its
 * own database copy and cache namespace, then runs what the parent asks over IPC, one measurement at a time, and
 * answers with latencies and per-commit counters. Nothing here runs while another contender is measured.
 */
import pg from 'pg';
import { verifyWriteCapture } from '../lib/index.js';
import { Book } from '../spec/support/bookstore.js';
import type { OpenContender } from './contenders/contender.js';
import { noCache } from './contenders/no-cache.js';
import { openXaCache, xaAdapterOf } from './contenders/xa-cache.js';
import { serveContender } from './contender-process.js';
import { percentile } from './measure.js';

/** (a) plain MikroORM, (b) withXaCache with the write capture installed, (c) withXaCache without its triggers. */
export type CaptureContenderKey = 'none' | 'xa' | 'xa-bare';

export interface RunnerSetup {
  readonly key: CaptureContenderKey;
  readonly databaseUrl: string;
  readonly memcached: readonly string[];
  readonly namespace: string;
}

export type RunnerCommand =
  | { readonly type: 'flush'; readonly size: number; readonly warmupSeconds: number; readonly seconds: number }
  | { readonly type: 'raw'; readonly sql: string; readonly warmupSeconds: number; readonly seconds: number }
  | { readonly type: 'close' };

export interface RunnerResult {
  readonly ops: number;
  readonly seconds: number;
  readonly opsPerSecond: number;
  /** Milliseconds, of the timed part (the flush; the whole `em.execute` for a raw statement). */
  readonly p50: number;
  readonly p99: number;
  /** Per timed part (means): `sql` (onQuery), `wire` (every statement a pg client sent), `cache` (store round trips), `log`, `capturedKeys`, `ms` (the timed part) and `ms_write`/`ms_log`/`ms_tx`/`ms_read` (time waiting on PostgreSQL by kind of statement). */
  readonly perCommit: Readonly<Record<string, number>>;
  readonly errors: number;
  readonly firstError?: string;
}

/** What the runner reports once open: user triggers on its database, and tables `verifyWriteCapture` found uncaptured. */
export interface RunnerReady {
  readonly triggers: number;
  readonly missingCapture: number | undefined;
}

// Every statement any pg client of this process sends, BEGIN, COMMIT and the log statement included (MikroORM's
// `onQuery` sees neither of those). One process per contender, so the count is this contender's alone.
// Each statement's time from the call to its answer is added up by kind: `write` (the application's INSERT,
// UPDATE, DELETE, triggers included), `log` (statements on the cache's log table: the prepare statement, which also
// takes the captured changes, and adding keys), `tx` (BEGIN, COMMIT, ROLLBACK, SAVEPOINT), `read` (the rest).
let wire = 0;
const dbMs: Record<'write' | 'log' | 'tx' | 'read', number> = { write: 0, log: 0, tx: 0, read: 0 };
const kindOf = (text: string): keyof typeof dbMs => {
  if (text.includes('xa_cache_log')) return 'log';
  const word = /^\s*(\w+)/.exec(text)?.[1]?.toLowerCase() ?? '';
  if (['begin', 'start', 'commit', 'rollback', 'savepoint', 'release', 'set'].includes(word)) return 'tx';
  return ['insert', 'update', 'delete', 'with', 'merge'].includes(word) ? 'write' : 'read';
};
const clientProto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
const originalQuery = clientProto.query;
clientProto.query = function countedQuery(this: unknown, ...args: unknown[]): unknown {
  wire++;
  const first = args[0];
  const text = typeof first === 'string' ? first : ((first as { text?: unknown } | undefined)?.text ?? '');
  const t0 = performance.now();
  const result = originalQuery.apply(this, args);
  if (result && typeof (result as Promise<unknown>).then === 'function') {
    const kind = kindOf(String(text));
    (result as Promise<unknown>).then(
      () => (dbMs[kind] += performance.now() - t0),
      () => (dbMs[kind] += performance.now() - t0),
    );
  }
  return result;
};

async function open(setup: RunnerSetup): Promise<OpenContender> {
  const ctx = { databaseUrl: setup.databaseUrl, memcached: setup.memcached, redisPort: undefined, pool: 4, namespace: setup.namespace };
  if (setup.key === 'none') return noCache.open(ctx);
  // What a user does once (or in a migration): put the capture triggers on every table of the ORM's entities; the
  // baseline leaves them out.
  return openXaCache(ctx, { capture: setup.key === 'xa' });
}

async function userTriggers(contender: OpenContender): Promise<number> {
  const rows = await contender.orm.em.fork().execute<Array<{ n: number }>>(`SELECT count(*)::int AS n FROM pg_trigger WHERE NOT tgisinternal`);
  return rows[0]?.n ?? 0;
}

function counters(contender: OpenContender): Record<string, number> {
  const c = contender.counters();
  const out: Record<string, number> = { sql: c.sql ?? 0, wire, cache: c.cache ?? 0, log: c.sqlLog ?? 0 };
  for (const [k, v] of Object.entries(dbMs)) out[`ms_${k}`] = v;
  if ('sqlLog' in c) out.capturedKeys = xaAdapterOf(contender.orm).xa.stats.capturedKeys;
  return out;
}

/** The latency (ms) of an operation's timed part and the counters' growth over that part alone. */
interface Timed {
  readonly ms: number;
  readonly delta: Record<string, number>;
}

/** Runs `timed` with the counters read just before and just after it. */
async function timing(contender: OpenContender, timed: () => Promise<unknown>): Promise<Timed> {
  const before = counters(contender);
  const t0 = performance.now();
  await timed();
  const ms = performance.now() - t0;
  const after = counters(contender);
  const delta: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) delta[k] = v - (before[k] ?? 0);
  delta.ms = ms;
  return { ms, delta };
}

/** Runs `op` back to back (1 in flight) for `warmup` then `seconds`. */
async function loop(op: () => Promise<Timed>, warmupSeconds: number, seconds: number): Promise<RunnerResult> {
  const run = async (duration: number, record: boolean): Promise<RunnerResult> => {
    const latencies: number[] = [];
    const sum: Record<string, number> = {};
    let errors = 0;
    let firstError: string | undefined;
    const started = performance.now();
    const deadline = started + duration * 1000;
    while (performance.now() < deadline) {
      try {
        const { ms, delta } = await op();
        latencies.push(ms);
        if (record) for (const [k, v] of Object.entries(delta)) sum[k] = (sum[k] ?? 0) + v;
      } catch (error) {
        errors++;
        firstError ??= error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      }
    }
    const elapsed = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    const ops = latencies.length;
    const perCommit: Record<string, number> = {};
    for (const [k, v] of Object.entries(sum)) perCommit[k] = ops > 0 ? v / ops : 0;
    return { ops, seconds: elapsed, opsPerSecond: ops / elapsed, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), perCommit, errors, ...(firstError ? { firstError } : {}) };
  };
  await run(warmupSeconds, false);
  return run(seconds, true);
}

let price = 1_000_000;

/** Load N books, give each a new price, time the `flush()` alone (BEGIN, the UPDATEs, prepare, COMMIT, promote). */
function flushOp(contender: OpenContender, size: number): () => Promise<Timed> {
  const ids = Array.from({ length: size }, (_, i) => i + 1);
  return async () => {
    const em = contender.orm.em.fork();
    const books = await em.find(Book, { id: { $in: ids } });
    if (books.length !== size) throw new Error(`loaded ${books.length} of ${size} books`);
    for (const book of books) book.price = ++price;
    return timing(contender, () => em.flush());
  };
}

/** One raw statement through `em.execute` (an autocommit write: xa-cache gives it a transaction of its own). */
function rawOp(contender: OpenContender, sql: string): () => Promise<Timed> {
  return async () => {
    const em = contender.orm.em.fork();
    return timing(contender, () => em.execute(sql));
  };
}

serveContender<RunnerSetup, RunnerCommand, RunnerReady, RunnerResult>(async (setup) => {
  const contender = await open(setup);
  const missing = setup.key === 'none' ? undefined : (await verifyWriteCapture(contender.orm)).length;
  return {
    ready: { triggers: await userTriggers(contender), missingCapture: missing },
    handle: (command) => loop(command.type === 'flush' ? flushOp(contender, command.size) : rawOp(contender, command.sql), command.warmupSeconds, command.seconds),
    close: () => contender.close(),
  };
});
