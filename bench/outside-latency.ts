/**
 * The G13 bound, measured: from an outside writer's COMMIT (a plain pg client, autocommit UPDATE) to the moment
 * no reader gets the old value — a reader polling the row through the cached ORM every millisecond sees the new
 * one. With the default follower settings (elected, 1 s fallback poll): what is measured is the NOTIFY path.
 *
 * - idle: one outside write at a time, nothing else running;
 * - mixed: the same while 8 application loops read (80%) and write (20%, unit-of-work flushes) other rows and a
 *   second outside client updates other rows 50 times a second;
 * - notify cost: the application's own single-row flush transactions, capture function with and without its
 *   `pg_notify`.
 *
 * Who follows (`--follower`): `in-process` (default: the application's `startXaCache` elects itself, as the
 * only process), `sidecar` (the application starts with `outsideChangesFollower: 'none'` and
 * `mikro-orm-xa-cache follow` runs in a process of its own, with its defaults), or `both` (one after the other on
 * the same servers). The notify cost is measured in `in-process` runs only.
 *
 * `node dist/bench/outside-latency.js [samples] [--follower in-process|sidecar|both]` (servers from DATABASE_URL /
 * MEMCACHED_SERVERS, else owned).
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import type { MikroORM } from '@mikro-orm/postgresql';
import { Servers } from '../spec/support/servers.js';
import { installWriteCapture } from '../lib/mikro-orm/write-capture-setup.js';
import { startXaCache } from '../lib/operations/start-xa-cache.js';
import { Member, openCached, type MemberT } from '../spec/operations/outside-model.js';
import { percentile } from './measure.js';
import { keys } from '../lib/mikro-orm/cache-keys.js';
import type { XaCacheAdapter } from '../lib/mikro-orm/xa-cache-adapter.js';

const MODES = ['in-process', 'sidecar'] as const;
type FollowerMode = (typeof MODES)[number];
const args = parseArgs({ allowPositionals: true, options: { follower: { type: 'string', default: 'in-process' } } });
const SAMPLES = Number(args.positionals[0] ?? 300);
if (!Number.isInteger(SAMPLES) || SAMPLES < 1) throw new Error(`samples: ${args.positionals[0]} is not a whole number above 0`);
const modes: readonly FollowerMode[] = args.values.follower === 'both' ? MODES : MODES.filter((m) => m === args.values.follower);
if (modes.length === 0) throw new Error(`--follower ${args.values.follower}: expected in-process, sidecar or both`);
const ROWS = 2000;
const CLI = fileURLToPath(new URL('../lib/cli/main.js', import.meta.url));
/** The application's compiled MikroORM config, as the sidecar loads it (servers and namespace from the environment). */
const FOLLOW_CONFIG = fileURLToPath(new URL('../spec/operations/follow-config.js', import.meta.url));

const servers = await Servers.start({ memcached: 1 });
const namespace = `ol${randomUUID().slice(0, 8)}`;
const orm = await openCached({ db: servers.db, memcached: servers.memcachedAddresses, namespace });
const admin = new pg.Client({ connectionString: servers.db });
await admin.connect();
try {
  await orm.schema.refresh();
  await installWriteCapture(orm);
  await admin.query(`INSERT INTO ow_member (id, name) SELECT i, 'm' || i FROM generate_series(1, ${ROWS}) i; DELETE FROM xa_cache_log_changes`);
  const row = (name: string, ms: readonly number[]): string => `| ${name} | ${ms.length} | ${f(percentile(ms, 0.5))} | ${f(percentile(ms, 0.99))} | ${f(ms[ms.length - 1] ?? NaN)} |`;
  const lines: string[] = [];
  let notifyCost: Awaited<ReturnType<typeof flushCost>> | undefined;
  for (const mode of modes) {
    // In process: the application is the elected follower. Sidecar: the application follows nothing itself.
    const runtime = await startXaCache(orm, mode === 'sidecar' ? { outsideChangesFollower: 'none' } : {});
    const sidecar = mode === 'sidecar' ? await startSidecar(servers.db, servers.memcachedAddresses, namespace) : undefined;
    try {
      const idle = await measure(orm, admin, 1, SAMPLES);
      const stopLoad = load(orm, servers.db);
      const mixed = await measure(orm, admin, 1 + SAMPLES, SAMPLES);
      const loadStats = await stopLoad();
      if (mode === 'in-process') notifyCost = await flushCost(orm, admin);
      const who = mode === 'sidecar' ? 'sidecar follower' : 'in-process follower';
      const loadText = `${Math.round(loadStats.opsPerSecond)} app ops/s, ${Math.round(loadStats.outsidePerSecond)} outside writes/s`;
      lines.push(row(`${who}, idle, entry gone from memcached`, idle.applied));
      lines.push(row(`${who}, idle, a reader through the ORM sees the new value`, idle.visible));
      lines.push(row(`${who}, mixed (${loadText}), entry gone`, mixed.applied));
      lines.push(row(`${who}, mixed (${loadText}), reader sees it`, mixed.visible));
    } finally {
      await sidecar?.();
      await runtime.stop();
    }
  }
  console.log('| follower, workload, measured until | samples | p50 ms | p99 ms | max ms |\n| --- | --- | --- | --- | --- |');
  for (const line of lines) console.log(line);
  if (notifyCost) {
    console.log(`\napplication flush, single-row update, ${notifyCost.n} sequential, ms/tx: as installed (own sessions do not notify) ${f(notifyCost.installed)}, notify on every commit ${f(notifyCost.always)}, never notify ${f(notifyCost.never)}`);
  }
} finally {
  await admin.end();
  await orm.close(true);
  await servers.stop();
}

/**
 * Starts `mikro-orm-xa-cache follow` in a process of its own, as an operator would (its defaults: 1 s fallback
 * poll, 30 s bound), and resolves once it holds the follower lock; to a function that stops it (SIGTERM).
 */
async function startSidecar(db: string, memcached: readonly string[], ns: string): Promise<() => Promise<void>> {
  const child = spawn(process.execPath, [CLI, 'follow', '--config', FOLLOW_CONFIG], {
    cwd: mkdtempSync(join(tmpdir(), 'ol-follow-')),
    env: { ...process.env, DATABASE_URL: db, MEMCACHED_SERVERS: memcached.join(','), XA_CACHE_NAMESPACE: ns },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the sidecar did not take the follower lock within 60 s: ${out}${stderr}`)), 60_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('following (holds the follower lock)')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`the sidecar exited: ${stderr}`));
    });
  });
  return async () => {
    child.kill('SIGTERM');
    await exited;
  };
}

function f(n: number): string {
  return n.toFixed(1);
}

/** Samples of ms from the outside COMMIT's acknowledgement to the first read through the cache showing the new value. */
async function measure(orm: MikroORM, admin: pg.Client, firstId: number, n: number): Promise<{ visible: number[]; applied: number[] }> {
  const out: number[] = [];
  const applied: number[] = [];
  const store = (orm.config.getResultCacheAdapter() as XaCacheAdapter).xa.store;
  for (let i = 0; i < n; i++) {
    const id = firstId + (i % (ROWS / 2 - 1));
    const name = `v${randomUUID().slice(0, 8)}`;
    for (let k = 0; k < 2; k++) await orm.em.fork().findOne(Member, id); // cached: the second read is a hit
    await admin.query('UPDATE ow_member SET name = $1 WHERE id = $2', [name, id]);
    const committed = performance.now();
    // Applied: the cached row is gone from memcached (only this loop reads these rows, so nothing refills it).
    while ((await store.get(keys.row('public.ow_member', String(id)))).status === 'hit') {
      if (performance.now() - committed > 10_000) throw new Error(`row ${id} still cached after 10 s`);
    }
    applied.push(performance.now() - committed);
    for (;;) {
      const m = (await orm.em.fork().findOne(Member, id)) as MemberT | null;
      if (m?.name === name) break;
      if (performance.now() - committed > 10_000) throw new Error(`row ${id} still old after 10 s`);
      await new Promise((r) => setTimeout(r, 1));
    }
    out.push(performance.now() - committed);
    await new Promise((r) => setTimeout(r, 10));
  }
  return { visible: out.sort((a, b) => a - b), applied: applied.sort((a, b) => a - b) };
}

/** The mixed background load on rows the samples do not use (the upper half). */
function load(orm: MikroORM, db: string): () => Promise<{ opsPerSecond: number; outsidePerSecond: number }> {
  let stopping = false;
  let ops = 0;
  let outside = 0;
  const started = performance.now();
  const pick = (): number => ROWS / 2 + 1 + Math.floor(Math.random() * (ROWS / 2 - 1));
  const appOp = async (): Promise<void> => {
    {
      const em = orm.em.fork();
      if (Math.random() < 0.2) {
        const m = (await em.findOne(Member, pick())) as MemberT | null;
        if (m) {
          m.name = `w${ops}`;
          await em.flush();
        }
      } else await em.findOne(Member, pick());
      ops++;
    }
  };  const loops = Array.from({ length: 8 }, async () => {
    while (!stopping) await appOp().catch(() => undefined); // a memcached timeout under load fails one op, not the run
  });

  const writer = (async () => {
    const client = new pg.Client({ connectionString: db });
    await client.connect();
    while (!stopping) {
      await client.query('UPDATE ow_member SET name = $1 WHERE id = $2', [`o${outside}`, pick()]);
      outside++;
      await new Promise((r) => setTimeout(r, 20));
    }
    await client.end();
  })();
  return async () => {
    stopping = true;
    await Promise.all([...loops, writer]);
    const s = (performance.now() - started) / 1000;
    return { opsPerSecond: ops / s, outsidePerSecond: outside / s };
  };
}

/**
 * ms per single-row flush transaction: the capture function as installed (the pool's sessions are marked, so
 * they do not notify), notifying on every commit (as with `markPoolSessions: false`), and never notifying.
 */
async function flushCost(orm: MikroORM, admin: pg.Client): Promise<{ n: number; installed: number; always: number; never: number }> {
  const n = 1500;
  const run = async (): Promise<number> => {
    const started = performance.now();
    for (let i = 0; i < n; i++) {
      const em = orm.em.fork();
      const m = (await em.findOneOrFail(Member, 1 + (i % 100))) as MemberT;
      m.name = `c${i}`;
      await em.flush();
    }
    return (performance.now() - started) / n;
  };
  const { rows } = await admin.query(`SELECT pg_get_functiondef('xa_cache_log_capture()'::regprocedure) AS def`);
  const original = (rows[0] as { def: string }).def;
  const condition = /IF coalesce\(current_setting\([^)]*\), ''\) <> 'on' THEN (PERFORM pg_notify\([^;]*\);) END IF;/g;
  if (!condition.test(original)) throw new Error('the capture function has no conditional notify');
  await run(); // warm
  try {
    // Interleaved, twice each, so drift on a shared machine does not favour one.
    const t = { installed: 0, always: 0, never: 0 };
    const variants: Array<[keyof typeof t, string]> = [
      ['installed', original],
      ['always', original.replace(condition, '$1')],
      ['never', original.replace(condition, '')],
    ];
    for (const order of [variants, [...variants].reverse()]) {
      for (const [name, def] of order) {
        await admin.query(def);
        t[name] += (await run()) / 2;
      }
    }
    return { n, ...t };
  } finally {
    await admin.query(original);
  }
}
