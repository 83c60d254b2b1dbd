/**
 * The coordinator of a consistency run: starts its own memcached servers (one small, to evict), a partition
 * proxy per worker in front of one of them, N worker processes (each an application: `startXaCache`, so one of
 * them is the elected outside-changes follower) and an external writer (a plain `pg` client, see
 * external-writer.ts); sends every worker a seeded stream of
 * operations, one at a time, timestamping each on its own monotonic clock when sent and when answered; injects
 * the faults on a seeded schedule; sweeps periodically; then audits the end state and checks the history.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { MikroORM } from '@mikro-orm/postgresql';
import { withXaCache } from '../../lib/mikro-orm/with-xa-cache.js';
import { installWriteCapture } from '../../lib/mikro-orm/write-capture-setup.js';
import type { XaCacheAdapter } from '../../lib/mikro-orm/xa-cache-adapter.js';
import type { UnsafeTestSwitches } from '../../lib/protocol/protocol-options.js';
import { MemcachedStore } from '../../lib/store/memcached-store.js';
import { decodeEntry } from '../../lib/protocol/entry-codec.js';
import { decodeValue } from '../../lib/mikro-orm/value-codec.js';
import { lockHolders } from '../../lib/protocol/entry.js';
import { regionWriteKeys } from '../../lib/protocol/protocol-context.js';
import { MemcachedProcess } from '../support/memcached-process.js';
import { terminateBackends } from '../support/postgres-cluster.js';
import { CGroup, CItem, CODES, GROUPS, ITEMS, consistencyEntities, createConsistencySchema, readDatabaseState, readHistory } from './schema.js';
import { Rng, isWrite, nextExternalOp, nextOp, type Op, type OpResult, type PhaseMode } from './ops.js';
import {
  DEFAULT_OUTSIDE_BOUND_MS,
  checkHistory,
  countByGuarantee,
  stalenessByKind,
  type Anomaly,
  type CheckSummary,
  type FollowerDisturbance,
  type OpRecord,
  type OutsideBound,
  type StaleRead,
  type StalenessByKind,
  type StaleWindow,
} from './checker.js';
import { PartitionProxy, evictions, flood, writeGarbage } from './fault-tools.js';

export const FAULT_KINDS = ['kill-worker', 'kill-mid-promote', 'kill-memcached', 'partition', 'pg-terminate', 'evict', 'hold-past-lock-ttl', 'garbage'] as const;
/** Fault kinds injected only when named (`--faults`): not part of the default set the CI run holds to. */
export const OPTIONAL_FAULT_KINDS = ['stall-memcached'] as const;
export const ALL_FAULT_KINDS = [...FAULT_KINDS, ...OPTIONAL_FAULT_KINDS] as const;
export type FaultKind = (typeof ALL_FAULT_KINDS)[number];

export interface RunOptions {
  readonly databaseUrl: string;
  readonly seed: number;
  readonly durationMs: number;
  readonly policy?: 'strict' | 'degrade';
  readonly workers?: number;
  /** Fault kinds to inject (each at least once); default all; [] for none. */
  readonly faults?: readonly FaultKind[];
  /** Seconds between two faults after each kind had its turn. Default 4. */
  readonly faultEveryMs?: number;
  readonly switches?: UnsafeTestSwitches;
  readonly lockTtlSeconds?: number;
  /** Share of the op mix that looks items up by code or gives items other codes. Default 0.125. */
  readonly codeShare?: number;
  /**
   * Share of the op mix that caches `find(CItem, { grp })` (a conjunction) and moves items between groups, in and out
   * of those predicates. Default 0 (the general mix has both too).
   */
  readonly predicateShare?: number;
  /** Share of the workers' reads of the hot tables that the database answers late. Default 0.15. */
  readonly slowReads?: number;
  /** Longest delay of a slow read, in ms (each waits 1 ms up to this). Default 8. */
  readonly slowReadMs?: number;
  /** Slow only the reads outside transactions (those that fill the cache), not the writers' reads. Default false. */
  readonly slowReadsOutsideTransactions?: boolean;
  /** The workers' `writeThrough` option. Default true. */
  readonly writeThrough?: boolean;
  /**
   * Share of the workers' ops replaced by plain reads of rows and collections, on top of the mix (default 0): fewer
   * writes of the application, so a value nobody invalidates stays cached longer (the `skipOutsideChanges` check).
   */
  readonly extraReads?: number;
  /** External writer processes (plain `pg` clients writing the cached tables, not through the library). Default 1; 0 for none. */
  readonly externalWriters?: number;
  /** W of the outside-writers bound (G13) the external writer's commits are held to, ms. Default {@link DEFAULT_OUTSIDE_BOUND_MS}. */
  readonly outsideBoundMs?: number;
  /** Where to write the log (JSON: options, every op, faults, history, verdict). */
  readonly logFile?: string;
  readonly print?: (line: string) => void;
}

export interface FaultRecord {
  readonly kind: FaultKind;
  readonly at: number;
  readonly detail: string;
}

export interface RunReport {
  readonly seed: number;
  readonly policy: 'strict' | 'degrade';
  readonly summary: CheckSummary;
  readonly faults: FaultRecord[];
  readonly faultCounts: Record<FaultKind, number>;
  readonly byGuarantee: ReturnType<typeof countByGuarantee>;
  readonly evictions: number;
  /** `degrade`: the windows, the sweep interval, and the allowed stale reads measured per fault kind. */
  readonly windows: StaleWindow[];
  readonly sweepIntervalMs: number;
  readonly staleness: StalenessByKind[];
  /** The outside-writers bound the run held external commits to, with the faults that extended it. */
  readonly outside: OutsideBound;
}

const workerScript = fileURLToPath(new URL('./worker.js', import.meta.url));
const externalScript = fileURLToPath(new URL('./external-writer.js', import.meta.url));
/** The workers' follower interval (`startXaCache`'s default): the leader retries what it could not reach at the next round. */
const FOLLOWER_INTERVAL_MS = 1000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const now = (): number => performance.now();
const APP = 'xa-consistency-worker';
const LOG_TABLE = 'c_xa_log';
/** The periodic sweeper (minAgeMs 2000); every degrade window also ends with a sweep of its own (minAgeMs 0). */
const SWEEP_EVERY_MS = 1000;

interface WorkerSlot {
  readonly index: number;
  /** An application process (the ORM with the cache), or the external writer. */
  readonly kind: 'orm' | 'external';
  child?: ChildProcess;
  ready?: Promise<void>;
  inflight?: { record: OpRecord; resolve: () => void };
  nextMode?: PhaseMode;
  stderr: string;
  restarts: number;
}

/** The unique-key index entry of a code (lib/mikro-orm/cache-keys.ts `keys.unique`). */
const codeEntryKey = (code: string): string => `u:public.c_item:code:${code}`;

/** Every library key of the hot set that we can name (query results are hashed and are left out), region copies included. */
function libraryKeys(store: MemcachedStore): string[] {
  const keys: string[] = [];
  for (let id = 1; id <= ITEMS; id++) keys.push(`e:public.c_item:${id}`);
  for (let g = 1; g <= GROUPS; g++) keys.push(`e:public.c_group:${g}`, `c:public.c_group.items:${g}`);
  keys.push(...CODES.map(codeEntryKey));
  for (const table of ['c_item', 'c_group', 'c_slot', 'c_history']) {
    for (const kind of ['t', 'rows', 'coll']) keys.push(...regionWriteKeys(`${kind}:public.${table}`, store));
  }
  return keys;
}

export async function runConsistency(options: RunOptions): Promise<RunReport> {
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const policy = options.policy ?? 'strict';
  const workerCount = options.workers ?? 4;
  const lockTtl = options.lockTtlSeconds ?? 3;
  const leaseTtl = 2;
  const faultKinds = options.faults ?? FAULT_KINDS;
  if (options.externalWriters !== undefined && !(Number.isInteger(options.externalWriters) && options.externalWriters >= 0)) {
    throw new Error(`externalWriters: ${options.externalWriters} is not a whole number of processes (0 or more)`);
  }
  if (options.extraReads !== undefined && !(options.extraReads >= 0 && options.extraReads < 1)) throw new Error(`extraReads: ${options.extraReads} is not a share from 0 to below 1`);
  if (options.outsideBoundMs !== undefined && !(Number.isFinite(options.outsideBoundMs) && options.outsideBoundMs > 0)) {
    throw new Error(`outsideBoundMs: ${options.outsideBoundMs} is not a positive number of milliseconds`);
  }
  const namespace = `c${randomUUID().slice(0, 8)}`;
  const dbUrl = new URL(options.databaseUrl);
  const workerUrl = new URL(options.databaseUrl);
  workerUrl.searchParams.set('application_name', APP);

  // memcached: [0] reachable through per-worker proxies (partitions), [1] killable, [2] small (evicts).
  const memcached = [await MemcachedProcess.start(), await MemcachedProcess.start(), await MemcachedProcess.start({ memoryMb: 2 })];
  const addresses = memcached.map((m) => m.address);
  const proxies = await Promise.all(Array.from({ length: workerCount }, () => PartitionProxy.start(addresses[0]!)));
  const pool = new pg.Pool({ connectionString: dbUrl.toString(), max: 4 });
  await createConsistencySchema(pool);
  await pool.query(`DROP TABLE IF EXISTS ${LOG_TABLE}, ${LOG_TABLE}_changes`);

  const orm = await MikroORM.init(
    withXaCache(
      { entities: consistencyEntities, clientUrl: dbUrl.toString(), pool: { min: 0, max: 4 } },
      { servers: addresses, namespace, logTable: LOG_TABLE, lockTtlSeconds: lockTtl, leaseTtlSeconds: leaseTtl, store: { timeoutMs: 300, retryAfterMs: 100 } },
    ),
  );
  await orm.connect();
  // The schema is made by SQL (dropped and re-created each run): install the write capture on its tables now.
  await installWriteCapture(orm);
  const adapter = orm.config.getResultCacheAdapter() as XaCacheAdapter;
  const raw = new MemcachedStore({ servers: addresses, namespace, timeoutMs: 500, retryAfterMs: 50 });
  if (adapter.identity) raw.scopeTo(adapter.identity); // the application's keys are scoped to its database
  const keys = libraryKeys(raw);

  const records: OpRecord[] = [];
  const faults: FaultRecord[] = [];
  const extra: Anomaly[] = [];
  const windows: StaleWindow[] = [];
  /** Faults that may have kept the elected follower from applying outside changes (they extend the G13 bound). */
  const disturbances: FollowerDisturbance[] = [];
  const outsideBoundMs = options.outsideBoundMs ?? DEFAULT_OUTSIDE_BOUND_MS;
  const t0 = now();
  /** The workload runs for `durationMs` from the moment every worker is ready (starting them takes seconds under load). */
  let end = t0 + options.durationMs;
  let stopping = false;
  let lastDisturbance = t0;
  let stalledServer = false;

  const sweep = async (minAgeMs: number): Promise<void> => {
    try {
      await adapter.xa.sweep(pool, { minAgeMs, claimMs: 1000 });
    } catch {
      // A sweep can fail while memcached or PostgreSQL is being faulted; the next one redoes it.
    }
  };

  /**
   * The end of a degrade window: past the workers' back-off (`retryAfterMs`), and past the operations of `affected`
   * workers in flight now — a transaction that prepared, degraded, while the server was out of reach may commit only
   * now, and the policy's bound runs until the first sweep after that commit — then one sweep.
   */
  const settleAndSweep = async (affected: readonly WorkerSlot[]): Promise<number> => {
    await sleep(150);
    const pending = affected.map((s) => s.inflight?.record).filter((r): r is OpRecord => r !== undefined && r.end === undefined);
    const deadline = now() + 5000;
    while (pending.some((r) => r.end === undefined) && now() < deadline) await sleep(5);
    const sweepStart = now();
    await sweep(0);
    return sweepStart;
  };

  /** G6: right after a process died after COMMIT, one sweep must leave none of its keys locked by it. */
  const auditKilledAfterCommit = async (txId: string, worker: number): Promise<void> => {
    await sweep(0);
    const { items } = await raw.getMulti(keys);
    for (const [key, item] of items) {
      const entry = decodeEntry(item.value);
      if (entry.kind === 'lock' && lockHolders(entry).includes(txId)) {
        extra.push({ guarantee: 'G6', what: `worker ${worker} died after COMMIT of ${txId}; after a sweep ${key} is still locked by it (in doubt, unresolved)`, worker });
      }
    }
  };

  const slots: WorkerSlot[] = Array.from({ length: workerCount }, (_, index) => ({ index, kind: 'orm', stderr: '', restarts: 0 }));
  const externals: WorkerSlot[] = Array.from({ length: options.externalWriters ?? 1 }, (_, i) => ({ index: workerCount + i, kind: 'external', stderr: '', restarts: 0 }));

  const spawnWorker = (slot: WorkerSlot): Promise<void> => {
    const child = fork(slot.kind === 'orm' ? workerScript : externalScript, [], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env: slot.kind === 'external' ? { ...process.env, DATABASE_URL: dbUrl.toString() } : {
        ...process.env,
        MEMCACHED_SERVERS: addresses.join(','),
        DATABASE_URL: workerUrl.toString(),
        SLOW_READS: String(options.slowReads ?? 0.15),
        SLOW_READ_MS: String(options.slowReadMs ?? 8),
        SLOW_READS_OUTSIDE: options.slowReadsOutsideTransactions ? '1' : '0',
        WRITE_THROUGH: options.writeThrough === false ? 'off' : 'on',
        PGAPPNAME: APP, // MikroORM drops URL parameters; node-postgres reads this
        NAMESPACE: namespace,
        LOG_TABLE: LOG_TABLE,
        POLICY: policy,
        LOCK_TTL: String(lockTtl),
        LEASE_TTL: String(leaseTtl),
        HOLD_MS: String((lockTtl + 1) * 1000),
        SWITCHES: JSON.stringify(options.switches ?? {}),
        REDIRECT: JSON.stringify({ [String(memcached[0]!.port)]: proxies[slot.index]!.port }),
      },
    });
    slot.child = child;
    child.stderr?.on('data', (d: Buffer) => (slot.stderr = (slot.stderr + d.toString()).slice(-4000)));
    const ready = new Promise<void>((resolve, reject) => {
      child.on('message', (m: { type: string; seq?: number; result?: OpResult; phase?: string; txId?: string }) => {
        if (m.type === 'ready') resolve();
        if (m.type === 'done' && slot.inflight && slot.inflight.record.seq === m.seq) {
          const record = slot.inflight.record;
          record.end = now();
          record.result = m.result;
          // The writer's acknowledgement on this clock (both clocks count from their process's wall-clock origin).
          if (m.result?.ackAt !== undefined) record.ackAt = Math.min(record.end, Math.max(record.start, m.result.ackAt - performance.timeOrigin));
          slot.inflight.resolve();
        }
        // Promote runs after the commit call returned (in the background): the operation may be over already.
        if (m.type === 'phase' && m.phase === 'mid-promote') {
          if (slot.inflight) slot.inflight.record.committedBy = now();
          const txId = m.txId!;
          faults.push({ kind: 'kill-mid-promote', at: now() - t0, detail: `worker ${slot.index} killed in the middle of promote of ${txId}` });
          void killWorker(slot).then(() => auditKilledAfterCommit(txId, slot.index));
        }
      });
      child.once('exit', (code) => {
        reject(new Error(`worker ${slot.index} exited (${code}) before it was ready: ${slot.stderr}`));
        if (slot.child === child) slot.child = undefined;
        slot.inflight?.resolve(); // the op is lost; the record has no end
        slot.inflight = undefined;
      });
    });
    slot.ready = ready;
    return ready;
  };

  const killWorker = async (slot: WorkerSlot): Promise<void> => {
    const child = slot.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    // The process may have been the elected follower: until its replacement is up, outside changes may wait.
    const start = now();
    child.kill('SIGKILL');
    await exited;
    lastDisturbance = now();
    slot.restarts++;
    if (!stopping) await spawnWorker(slot).catch(() => undefined);
    disturbances.push({ kind: 'killed worker', start, end: now() });
  };

  await Promise.all([...slots, ...externals].map(spawnWorker));
  end = now() + options.durationMs;
  print(`consistency run: seed ${options.seed}, policy ${policy}, ${workerCount} workers, ${Math.round(options.durationMs / 1000)} s, namespace ${namespace}`);

  const driveWorker = async (slot: WorkerSlot): Promise<void> => {
    const rng = new Rng(options.seed * 7919 + slot.index * 104729 + 1);
    let seq = 0;
    while (now() < end) {
      if (!slot.child) {
        await sleep(20);
        continue;
      }
      await slot.ready?.catch(() => undefined);
      // The external writer pauses 5-40 ms between commits: tens per second, each a notification to the follower.
      if (slot.kind === 'external') await sleep(rng.int(5, 40));
      const op: Op = slot.kind === 'external' ? nextExternalOp(rng) : nextOp(rng, options.codeShare, options.extraReads, options.predicateShare);
      const tokens = isWrite(op) ? [randomUUID(), randomUUID()] : [];
      const mode = isWrite(op) ? slot.nextMode : undefined;
      if (mode) slot.nextMode = undefined;
      const record: OpRecord = { worker: slot.index, seq: ++seq, op, tokens, start: now() };
      records.push(record);
      const child = slot.child;
      if (!child) continue;
      await new Promise<void>((resolve) => {
        slot.inflight = { record, resolve };
        child.send({ type: 'op', seq: record.seq, op, tokens, mode }, (error) => {
          if (error) resolve();
        });
      });
      slot.inflight = undefined;
    }
  };

  const faultRng = new Rng(options.seed * 31 + 17);
  const recordFault = (kind: FaultKind, detail: string): void => {
    faults.push({ kind, at: Math.round(now() - t0), detail });
  };
  const inject = async (kind: FaultKind): Promise<void> => {
    lastDisturbance = now();
    switch (kind) {
      case 'kill-worker': {
        const slot = faultRng.pick(slots);
        const deadline = now() + 2000;
        while (now() < deadline && !(slot.inflight && isWrite(slot.inflight.record.op))) await sleep(1);
        await sleep(faultRng.int(0, 12));
        recordFault(kind, `worker ${slot.index} SIGKILLed ${slot.inflight ? `during ${slot.inflight.record.op.kind}` : 'idle'}`);
        await killWorker(slot);
        break;
      }
      case 'kill-mid-promote':
      case 'hold-past-lock-ttl': {
        const slot = faultRng.pick(slots);
        const before = faults.filter((f) => f.kind === 'kill-mid-promote').length;
        const mode = kind === 'kill-mid-promote' ? 'crash-mid-promote' : 'hold-mid-promote';
        if (kind === 'hold-past-lock-ttl') recordFault(kind, `worker ${slot.index}: next commit stalls ${lockTtl + 1} s between the halves of promote (locks expire)`);
        // Armed for the worker's next write; a write that fails before promote disarms it, so arm again.
        for (let attempt = 0; attempt < 10 && now() < end - 1000; attempt++) {
          slot.nextMode = mode;
          while (slot.nextMode && now() < end - 1000) await sleep(5);
          const armed = slot.inflight?.record;
          while (armed && armed.end === undefined && slot.inflight?.record === armed && now() < end) await sleep(5);
          if (kind === 'hold-past-lock-ttl' || faults.filter((f) => f.kind === 'kill-mid-promote').length > before) break;
        }
        slot.nextMode = undefined;
        break;
      }
      case 'kill-memcached': {
        const down = faultRng.int(300, 900);
        recordFault(kind, `memcached ${addresses[1]} killed for ${down} ms, restarted empty`);
        const start = now();
        await memcached[1]!.kill();
        await sleep(down);
        await memcached[1]!.restart();
        const healed = now();
        // Restarted empty, but not back for everyone at once: a writer whose client still backs off commits under
        // `degrade` without reaching it while readers already fill from it. The same bound as a partition applies.
        const sweepStart = await settleAndSweep(slots);
        windows.push({ kind, start, healed, sweepStart, until: now() });
        disturbances.push({ kind, start, end: healed });
        break;
      }
      case 'stall-memcached': {
        // SIGSTOP: connections stay open, nothing is answered; the server keeps every value it held, so a key a
        // degraded commit could not lock still holds its old value when the server resumes.
        const stalled = faultRng.int(300, 900);
        recordFault(kind, `memcached ${addresses[1]} SIGSTOPped for ${stalled} ms, then SIGCONT`);
        const start = now();
        memcached[1]!.pause();
        stalledServer = true;
        await sleep(stalled);
        memcached[1]!.resume();
        stalledServer = false;
        const healed = now();
        const sweepStart = await settleAndSweep(slots);
        windows.push({ kind, start, healed, sweepStart, until: now() });
        disturbances.push({ kind, start, end: healed });
        break;
      }
      case 'partition': {
        const cut = slots.filter(() => faultRng.next() < 0.5).slice(0, workerCount - 1);
        if (cut.length === 0) cut.push(slots[0]!);
        const ms = faultRng.int(600, 1500);
        recordFault(kind, `memcached ${addresses[0]} unreachable to workers ${cut.map((s) => s.index).join(',')} for ${ms} ms`);
        const start = now();
        for (const s of cut) proxies[s.index]!.partition();
        await sleep(ms);
        for (const s of cut) proxies[s.index]!.heal();
        const healed = now();
        const sweepStart = await settleAndSweep(cut);
        windows.push({ kind, start, healed, sweepStart, until: now() });
        disturbances.push({ kind, start, end: healed });
        break;
      }
      case 'pg-terminate': {
        const n = await terminateBackends(options.databaseUrl, { applicationName: APP }).catch(() => 0);
        recordFault(kind, `${n} PostgreSQL backends of the workers terminated`);
        break;
      }
      case 'evict': {
        const before = await evictions(addresses[2]!);
        const written = await flood(addresses[2]!, 6).catch(() => 0);
        recordFault(kind, `flooded ${addresses[2]} (-m 2) with ${written} values: ${(await evictions(addresses[2]!)) - before} evictions`);
        break;
      }
      case 'garbage': {
        const chosen = await writeGarbage(raw, keys, faultRng).catch(() => [] as string[]);
        recordFault(kind, `garbage bytes under ${chosen.join(', ')}`);
        break;
      }
    }
  };

  const faultLoop = async (): Promise<void> => {
    if (faultKinds.length === 0) return;
    // Every kind once, in a seeded order, over the first 70% of the run; then one every faultEveryMs.
    const order = [...faultKinds].sort(() => faultRng.next() - 0.5);
    const spacing = (options.durationMs * 0.7) / order.length;
    await sleep(Math.min(1500, spacing / 2));
    for (const kind of order) {
      if (now() > end - 2000) break;
      const started = now();
      await inject(kind);
      await sleep(Math.max(0, spacing - (now() - started)));
    }
    while (now() < end - 3000) {
      await inject(faultRng.pick(faultKinds));
      await sleep(options.faultEveryMs ?? 4000);
    }
  };

  const sweeperLoop = async (): Promise<void> => {
    while (now() < end) {
      await sleep(SWEEP_EVERY_MS);
      await sweep(2000);
    }
  };

  const progress = setInterval(() => print(`  ${Math.round((now() - t0) / 1000)} s: ${records.length} operations, ${faults.length} faults`), 15_000);
  try {
    await Promise.all([...slots.map(driveWorker), ...externals.map(driveWorker), faultLoop(), sweeperLoop()]);
  } finally {
    clearInterval(progress);
  }

  // The applications (and their follower) stop only once the external writer's last changes were applied, or
  // their bound has passed: the end audit (G6) reads through an ORM that follows nothing.
  const drainBy = now() + outsideBoundMs + FOLLOWER_INTERVAL_MS;
  while (now() < drainBy && (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${LOG_TABLE}_changes`)).rows[0]!.n > 0) await sleep(20);

  // The end: heal everything, stop the workers cleanly (they delete their promoted log rows).
  stopping = true;
  lastDisturbance = now();
  for (const p of proxies) p.heal();
  if (stalledServer) memcached[1]!.resume();
  for (const m of memcached) if (!m.running) await m.restart();
  await Promise.all(
    [...slots, ...externals].map(async (slot) => {
      const child = slot.child;
      if (!child || child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.send({ type: 'quit' });
      await Promise.race([exited, sleep(5000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }),
  );
  for (const slot of slots) if (slot.restarts > 0 && /crashed/.test(slot.stderr)) print(`  worker ${slot.index} stderr: ${slot.stderr.trim().slice(-500)}`);

  // G12: after every lock and lease lifetime has passed and one sweep, nothing is left.
  await sweep(0);
  const quiet = Math.max(lockTtl, leaseTtl) * 1000 + 1500 - (now() - lastDisturbance);
  if (quiet > 0) await sleep(quiet);
  await adapter.xa.sweep(pool, { minAgeMs: 0, claimMs: 1000 });
  await adapter.xa.flushLogDeletes(pool);
  const logRows = await adapter.xa.log.count(pool);
  if (logRows > 0) extra.push({ guarantee: 'G12', what: `${logRows} transaction-log rows remain after the sweep` });
  const { items } = await raw.getMulti(keys);
  for (const [key, item] of items) {
    const entry = decodeEntry(item.value);
    if (entry.kind === 'lock' || entry.kind === 'lease') extra.push({ guarantee: 'G12', what: `${entry.kind} left under ${key}${entry.kind === 'lock' ? ` (holders ${lockHolders(entry).join(',') || 'none'})` : ''}` });
  }

  // G6: the cache equals the database for every key (read twice: the first read may fill).
  const db = await readDatabaseState(pool);
  // First the unique-key index entries the run left: each must name the item the database says holds the code.
  // (Lookups would still answer right past a wrong entry — they check the row — so only this audit sees one.)
  const entries = (await raw.getMulti(CODES.map(codeEntryKey))).items;
  for (const code of CODES) {
    const item = entries.get(codeEntryKey(code));
    if (!item) continue;
    let entry: ReturnType<typeof decodeEntry> | undefined;
    try {
      entry = decodeEntry(item.value);
    } catch {
      entry = undefined;
    }
    if (entry?.kind !== 'value') continue;
    const decoded = decodeValue(entry.payload);
    const named = decoded.ok ? Number(decoded.value) : NaN;
    const owner = db.get(`k:${code}`)!.owner ?? null;
    if (named !== owner) extra.push({ guarantee: 'G6', what: `after the run, the index entry of code ${code} names item ${decoded.ok ? String(decoded.value) : '(undecodable)'}, the database: ${owner === null ? 'no item holds it' : `item ${owner} holds it`}` });
  }
  for (let pass = 0; pass < 2; pass++) {
    for (let id = 1; id <= ITEMS; id++) {
      const item = await orm.em.fork().findOne(CItem, id);
      const want = db.get(`i:${id}`)!;
      if ((item?.token ?? null) !== want.token) extra.push({ guarantee: 'G6', what: `after the run, the cache serves i:${id}=${item?.token ?? 'absent'}, the database holds ${want.token ?? 'absent'}` });
    }
    for (let g = 1; g <= GROUPS; g++) {
      const want = db.get(`g:${g}`)!;
      const group = await orm.em.fork().findOneOrFail(CGroup, g, { populate: ['items'] });
      const members = group.items.getItems().map((i) => i.id).sort((a, b) => a - b);
      if (group.token !== want.token || members.join(',') !== want.members!.join(',')) extra.push({ guarantee: 'G6', what: `after the run, the cache serves g:${g} ${group.token} [${members}], the database ${want.token} [${want.members}]` });
      const count = await orm.em.fork().count(CItem, { grp: g }, { cache: 60_000 });
      if (count !== want.members!.length) extra.push({ guarantee: 'G6', what: `after the run, the cached count of g:${g} is ${count}, the database has ${want.members!.length}` });
    }
    for (const code of CODES) {
      const item = await orm.em.fork().findOne(CItem, { code });
      const owner = db.get(`k:${code}`)!.owner ?? null;
      if ((item?.id ?? null) !== owner) extra.push({ guarantee: 'G6', what: `after the run, the lookup of code ${code} returns ${item?.id ?? 'none'}, the database: ${owner ?? 'none'}` });
    }
  }

  const history = await readHistory(pool);
  const outside: OutsideBound = { ms: outsideBoundMs, followerIntervalMs: FOLLOWER_INTERVAL_MS, disturbances };
  const summary = checkHistory(records, history, { windows: policy === 'degrade' ? windows : [], extra, outside });
  const faultCounts = Object.fromEntries(ALL_FAULT_KINDS.filter((k) => (FAULT_KINDS as readonly string[]).includes(k) || faultKinds.includes(k)).map((k) => [k, faults.filter((f) => f.kind === k).length])) as Record<FaultKind, number>;
  const report: RunReport = {
    seed: options.seed,
    policy,
    summary,
    faults,
    faultCounts,
    byGuarantee: countByGuarantee(summary.anomalies),
    evictions: await evictions(addresses[2]!),
    windows: policy === 'degrade' ? windows : [],
    sweepIntervalMs: SWEEP_EVERY_MS,
    staleness: policy === 'degrade' ? stalenessByKind(summary.staleReads, windows) : [],
    outside,
  };

  if (options.logFile) {
    mkdirSync(dirname(options.logFile), { recursive: true });
    writeFileSync(
      options.logFile,
      JSON.stringify({
        options: { ...options, print: undefined, databaseUrl: undefined },
        policy,
        windows: report.windows,
        sweepIntervalMs: SWEEP_EVERY_MS,
        staleness: report.staleness,
        staleReads: summary.staleReads,
        outside,
        extra,
        faults,
        records,
        history,
      }),
    );
  }

  await orm.close(true);
  await raw.close();
  await pool.end();
  for (const p of proxies) await p.close();
  for (const m of memcached) await m.stop();
  return report;
}

/** The lines a run prints: operations checked, faults injected, anomalies per guarantee. */
export function formatReport(report: RunReport): string[] {
  const s = report.summary;
  const lines = [
    `seed ${report.seed}, policy ${report.policy}`,
    `operations: ${s.operations} answered (${s.failed} failed under faults, ${s.lost} lost with a killed worker); observations checked: ${s.observations}; commits: ${s.committed}; rollbacks: ${s.rolledBack}`,
    `faults injected: ${Object.entries(report.faultCounts).map(([k, n]) => `${k} ${n}`).join(', ')} (memcached evictions: ${report.evictions})`,
    ...formatOutside(s, report.outside),
  ];
  if (report.policy === 'degrade') {
    lines.push(`stale reads within the degrade bound (allowed): ${s.allowedStale}`);
    lines.push(...formatStaleness(report.staleness, report.sweepIntervalMs));
    for (const r of suspectStaleReads(s.staleReads).slice(0, 10)) lines.push(`    ${describeStaleRead(r, report.windows)}`);
  }
  lines.push(`anomalies: ${Object.entries(report.byGuarantee).map(([g, n]) => `${g} ${n}`).join(', ')}`);
  for (const a of s.anomalies.slice(0, 15)) lines.push(`  ${a.guarantee}${a.worker !== undefined ? ` [worker ${a.worker} op ${a.seq ?? '-'}]` : ''}: ${a.what}`);
  if (s.anomalies.length > 15) lines.push(`  … ${s.anomalies.length - 15} more`);
  return lines;
}

const ms = (v: number | undefined): string => (v === undefined || Number.isNaN(v) ? '-' : `${Math.round(v)}`);

/** The external writer's commits and the staleness they caused, against the bound (G13). */
export function formatOutside(s: CheckSummary, bound: OutsideBound | undefined): string[] {
  const mixes = (s.memberRowMixes ?? 0) > 0 ? [`collection reads missing members whose row, read in an allowed version, names another group (MikroORM files a child under that owner): ${s.memberRowMixes}`] : [];
  if (s.externalCommits === 0) return mixes;
  const { sent, answered } = s.outsideStale;
  const extended = bound ? bound.disturbances.length : 0;
  return [
    `external writer (plain pg): ${s.externalCommits} commits; reads of a value one had replaced, sent within the bound (W ${s.outsideBoundMs} ms after its COMMIT was acknowledged${extended > 0 ? `, extended past ${extended} follower-disturbing faults` : ''}): ${sent.n}` +
      (sent.n > 0 ? `; sent p50/p99/max ${ms(sent.p50)}/${ms(sent.p99)}/${ms(sent.max)} ms after the acknowledgement (answered at most ${ms(answered.max)} ms after)` : ''),
    ...mixes,
  ];
}

/** The measured `degrade` staleness, one line per fault kind that opened windows. */
export function formatStaleness(staleness: readonly StalenessByKind[], sweepIntervalMs?: number): string[] {
  if (staleness.length === 0) return [];
  const lines = [`degrade staleness measured (periodic sweep every ${sweepIntervalMs ?? '?'} ms, plus one closing each window):`];
  for (const k of staleness) {
    lines.push(
      `  ${k.kind}: ${k.windows} windows, ${k.staleReads} stale reads (${k.mixed} mixed collections); ` +
        `age after the superseding commit returned p50/p99/max ${ms(k.ageMs.p50)}/${ms(k.ageMs.p99)}/${ms(k.ageMs.max)} ms; ` +
        `versions behind p50/p99/max ${ms(k.versionsBehind.p50)}/${ms(k.versionsBehind.p99)}/${ms(k.versionsBehind.max)}; ` +
        `fault end to last stale read ${ms(k.lastAfterHealedMs)} ms; fault end to closing sweep's end p50/max ${ms(k.sweepAfterHealedMs.p50)}/${ms(k.sweepAfterHealedMs.max)} ms`,
    );
    if (k.afterSweepStart + k.supersededBeforeFault + k.afterCleanCommit > 0) {
      lines.push(`    beyond the documented bound? sent after the closing sweep began ${k.afterSweepStart}; superseded before the fault began ${k.supersededBeforeFault}; after a non-degraded superseding commit ${k.afterCleanCommit}`);
    }
  }
  return lines;
}

/** Stale reads that the documented bound does not explain (see StalenessByKind). */
export function suspectStaleReads(reads: readonly StaleRead[]): StaleRead[] {
  return reads.filter((r) => r.afterSweepStart || r.supersededBeforeFault || r.superseding.clean > 0);
}

/** One stale read with its window's timings (coordinator clock, ms). */
export function describeStaleRead(r: StaleRead, windows: readonly StaleWindow[]): string {
  const w = windows.find((x) => x.start <= r.end && r.start <= x.until);
  const t = (v: number | undefined): string => (v === undefined ? '-' : v.toFixed(1));
  return (
    `worker ${r.worker} op ${r.seq}: ${r.what} (${r.kind}; ${r.versionsBehind ?? '?'} versions behind, ${ms(r.ageMs)} ms after the superseding commit returned; ` +
    `read ${t(r.start)}-${t(r.end)}, fault ${t(w?.start)}-${t(w?.healed)}, closing sweep ${t(w?.sweepStart)}-${t(w?.until)}; superseding commits: ${JSON.stringify(r.superseding)})`
  );
}
