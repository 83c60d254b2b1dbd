/**
 * The floor of a coherent commit: what PostgreSQL alone charges for the statements of a flush of 10 rows, with and
 * without the database-side write capture and the log statement, before any memcached request or client CPU of
 * the library (`npm run bench:floor`; `BENCH_ROUNDS`, `BENCH_SECONDS`, `BENCH_WARMUP`; writes the section
 * "## Commit floor" of docs/benchmarks.md). It answers how close to plain MikroORM any commit that keeps the
 * capture and the log row can get: the best of the variants that keep both is a ratio no client-side work beats.
 *
 * Each variant is a SQL sequence sent by a plain `pg` client, one transaction at a time, run in a child process of
 * its own for each round (rounds interleaved, order rotated); figures are medians over rounds with the min–max, and
 * ratios are taken inside a round against `plain: BEGIN / UPDATE / COMMIT` (what MikroORM sends without a cache).
 * The UPDATE is the one MikroORM sends for 10 dirty books (`set price = case when id = … then … end where id in …`).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Servers } from '../spec/support/servers.js';
import { TransactionLog, sqlLiteral } from '../lib/protocol/transaction-log.js';
import { WriteCapture } from '../lib/protocol/write-capture.js';
import type { SqlRunner, StatementRider } from '../lib/protocol/sql-runner.js';
import { median, roundSettings, rotated, withRange } from './rounds.js';
import { spliceSection } from './doc-section.js';
import { describeEnvironment } from './environment.js';

const LOG_TABLE = 'xa_cache_log';
const IDS = Array.from({ length: 10 }, (_, i) => 100 + i);

interface Variant {
  readonly key: string;
  readonly label: string;
  /** One transaction; `price` is new each time. */
  run(client: pg.Client, price: number, state: { doneTxId?: string }): Promise<void>;
}

const update = (table: string, price: number): string =>
  `update "${table}" set "price" = case ${IDS.map((id) => `when ("id" = ${id}) then ${price}`).join(' ')} else "price" end where "id" in (${IDS.join(', ')}) returning "id"`;

const capture = new WriteCapture(LOG_TABLE);
const log = new TransactionLog(LOG_TABLE, 'floor');
const keys = IDS.map((id) => `e:public.floor_capture:${id}`);

/** The log statement as `TransactionLog.record` sends it, with the write-through read riding along. */
async function record(state: { doneTxId?: string }, send: (sql: string, params?: unknown[]) => Promise<{ rows: object[] }>, read = true): Promise<void> {
  let delivered: object[] | undefined = read ? undefined : [];
  const rider: StatementRider = {
    sql: `select "f0".* from "floor_capture" as "f0" where "f0"."id" in (${IDS.join(', ')})`,
    deliver: (rows) => { delivered = rows; },
    fail: (error) => { throw error; },
  };
  const runner: SqlRunner = { query: send, ...(read ? { takeRider: () => rider } : {}) };
  const txId = crypto.randomUUID();
  const { captured } = await log.record(runner, txId, keys, ['t:public.floor_capture'], state.doneTxId ? [state.doneTxId] : [], capture);
  // The floor must do the work a commit does: the capture's images taken and the rows read.
  if (captured.length !== 1 || captured[0]?.newRows?.length !== IDS.length || delivered?.length !== (read ? IDS.length : 0)) throw new Error(`log statement took ${captured.length} changes and read ${delivered?.length} rows`);
  state.doneTxId = txId;
}

/** The rows of every statement of a message, as the ORM's pool clients answer a text marked `JOINED_ROWS`. */
function joined(answer: unknown): { rows: object[] } {
  return Array.isArray(answer) ? { rows: (answer as pg.QueryResult[]).flatMap((r) => r.rows ?? []) } : (answer as pg.QueryResult);
}

/** Sends the log statement (its parameters written into its text) and COMMIT in one simple-protocol message. */
function withCommit(c: pg.Client): (sql: string, params?: unknown[]) => Promise<{ rows: object[] }> {
  return async (sql, params) => joined(await c.query(`${params && params.length > 0 ? inlined(sql, params) : sql};commit`));
}

/** The statement's parameters written into its text, so it can share a simple-protocol message with COMMIT. */
function inlined(sql: string, params: unknown[]): string {
  return sql.replace(/\$(\d+)/g, (_, n: string) => sqlLiteral(params[Number(n) - 1] as string | readonly string[]));
}

const variants: Variant[] = [
  {
    key: 'plain3',
    label: 'plain: BEGIN / UPDATE / COMMIT (MikroORM without a cache)',
    run: async (c, price) => { await c.query('begin'); await c.query(update('floor_plain', price)); await c.query('commit'); },
  },
  {
    key: 'plain2',
    label: 'plain: BEGIN;UPDATE / COMMIT',
    run: async (c, price) => { await c.query(`begin;${update('floor_plain', price)}`); await c.query('commit'); },
  },
  {
    key: 'empty2',
    label: 'no-op transition-table trigger: BEGIN;UPDATE / COMMIT',
    run: async (c, price) => { await c.query(`begin;${update('floor_empty', price)}`); await c.query('commit'); },
  },
  {
    key: 'capture3',
    label: 'capture: BEGIN;UPDATE / log statement with the read / COMMIT (xa-cache)',
    run: async (c, price, state) => {
      await c.query(`begin;${update('floor_capture', price)}`);
      await record(state, async (sql, params) => joined(await c.query(sql, params)));
      await c.query('commit');
    },
  },
  {
    key: 'capture2',
    label: 'capture: BEGIN;UPDATE / log statement with the read;COMMIT',
    run: async (c, price, state) => {
      await c.query(`begin;${update('floor_capture', price)}`);
      await record(state, withCommit(c));
    },
  },
  {
    key: 'capture2bare',
    label: 'capture: BEGIN;UPDATE / log statement without the read;COMMIT',
    run: async (c, price, state) => {
      await c.query(`begin;${update('floor_capture', price)}`);
      await record(state, withCommit(c), false);
    },
  },
];

async function child(key: string, url: string, warmupMs: number, ms: number): Promise<void> {
  const variant = variants.find((v) => v.key === key);
  if (!variant) throw new Error(`no variant ${key}`);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let price = Math.floor(Math.random() * 1e6);
  const state: { doneTxId?: string } = {};
  const times: number[] = [];
  for (const [phase, length] of [['warmup', warmupMs], ['measure', ms]] as const) {
    const end = Date.now() + length;
    while (Date.now() < end) {
      const start = process.hrtime.bigint();
      await variant.run(client, price++, state);
      if (phase === 'measure') times.push(Number(process.hrtime.bigint() - start) / 1e3);
    }
  }
  await client.end();
  process.stdout.write(JSON.stringify({ p50: median(times), n: times.length }));
}

async function runChild(key: string, url: string, warmupMs: number, ms: number): Promise<{ p50: number; n: number }> {
  const out: Buffer[] = [];
  const proc = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', key, url, String(warmupMs), String(ms)], { stdio: ['ignore', 'pipe', 'inherit'] });
  proc.stdout.on('data', (b: Buffer) => out.push(b));
  const code = await new Promise<number | null>((resolve) => proc.on('close', resolve));
  if (code !== 0) throw new Error(`variant ${key} exited with ${code}`);
  return JSON.parse(Buffer.concat(out).toString('utf8')) as { p50: number; n: number };
}

async function setUp(url: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  for (const table of ['floor_plain', 'floor_empty', 'floor_capture']) {
    await c.query(`create table ${table} (id int primary key, title text not null, price int not null, author_id int not null, publisher_id int)`);
    await c.query(`insert into ${table} select g, 'Book ' || g, 1, 1 + g % 20, null from generate_series(1, 1000) g`);
  }
  await c.query(`create function floor_noop() returns trigger language plpgsql as $$ begin return null; end $$`);
  await c.query(`create trigger floor_noop after update on floor_empty referencing old table as xa_old new table as xa_new for each statement execute function floor_noop()`);
  for (const sql of log.ddl()) await c.query(sql);
  for (const sql of capture.baseDdl()) await c.query(sql);
  for (const sql of capture.tableDdl({ schema: 'public', table: 'floor_capture' })) await c.query(sql);
  await c.query('vacuum analyze');
  await c.end();
}

if (process.argv[2] === '--child') {
  const [, , , key, url, warmup, ms] = process.argv;
  await child(key as string, url as string, Number(warmup), Number(ms));
} else {
  const settings = roundSettings({ rounds: 5, seconds: 2, warmup: 0.5 });
  const servers = await Servers.start({ memcached: 0 });
  try {
    await setUp(servers.db);
    const byVariant = new Map<string, number[]>(variants.map((v) => [v.key, []]));
    const ratios = new Map<string, number[]>(variants.map((v) => [v.key, []]));
    for (let round = 0; round < settings.rounds; round++) {
      const p50s = new Map<string, number>();
      for (const v of rotated(variants, round)) p50s.set(v.key, (await runChild(v.key, servers.db, settings.warmup * 1000, settings.seconds * 1000)).p50);
      for (const v of variants) {
        byVariant.get(v.key)?.push(p50s.get(v.key) as number);
        ratios.get(v.key)?.push((p50s.get(v.key) as number) / (p50s.get('plain3') as number));
      }
      process.stderr.write(`round ${round + 1}/${settings.rounds} done\n`);
    }
    const e = await describeEnvironment(servers.db);
    const md: string[] = ['## Commit floor', ''];
    md.push(
      `Generated by \`npm run bench:floor\` (\`bench/commit-floor.ts\`) on ${e.date.slice(0, 10)}, library at commit ${e.commit}. Machine: ${e.cpu}, ${e.cores} cores shared with other work, PostgreSQL ${e.postgres} from the test harness (fsync and synchronous_commit off), Node.js ${e.node}.`,
      '',
      `What PostgreSQL alone charges for the statements of a flush of 10 rows (the UPDATE MikroORM sends for 10 dirty books), sent by a plain \`pg\` client one transaction at a time: no memcached request, no MikroORM, none of the library's client work. The capture variants send the library's own log statement (\`TransactionLog.record\` with the \`WriteCapture\`), which takes the captured images and inserts the log row; "the read" is write-through's read of the written rows riding along it. Each variant runs in a child process of its own in each of ${settings.rounds} interleaved rounds (order rotated), ${settings.seconds} s after ${settings.warmup} s of warm-up; figures are medians of the rounds' p50 with the min–max, ratios taken inside a round against the first line.`,
      '',
      '| variant | transaction p50 µs | vs plain MikroORM (first line) |',
      '| --- | ---: | ---: |',
    );
    for (const v of variants) md.push(`| ${v.label} | ${withRange(byVariant.get(v.key) ?? [], (x) => x.toFixed(0))} | ${withRange(ratios.get(v.key) ?? [], (x) => `${x.toFixed(2)}x`)} |`);
    const section = md.join('\n');
    console.log(section);
    const path = join(process.env.BENCH_OUT ?? 'docs', 'benchmarks.md');
    writeFileSync(path, spliceSection(existsSync(path) ? readFileSync(path, 'utf8') : '# Benchmarks\n', section));
    process.stderr.write(`wrote ${path}\n`);
  } finally {
    await servers.stop();
  }
}
