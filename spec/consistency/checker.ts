/**
 * The history checker: a pure function of what the workers saw (with the coordinator's dispatch and reply times,
 * one monotonic clock) and the committed history (the `c_history` table). It never talks to a server, so a run's
 * log can be checked again offline (`main.js --recheck <log>`).
 */
import type { KeyState, CommittedTx } from './schema.js';
import { isExternal, type Observation, type Op, type OpResult } from './ops.js';
import { explainByMemberRows, itemGroups, type MemberRowsMix } from './member-rows.js';

/** One operation as the coordinator logged it. */
export interface OpRecord {
  readonly worker: number;
  readonly seq: number;
  readonly op: Op;
  /** Tokens the coordinator gave the op (the transaction's, and a savepoint's). */
  readonly tokens: string[];
  /** Coordinator clock (ms): sent to the worker. */
  readonly start: number;
  /** Coordinator clock (ms): the worker's answer arrived; undefined if the worker died first. */
  end?: number;
  result?: OpResult;
  /** Set when a worker was killed mid-promote: its COMMIT had completed at this time. */
  committedBy?: number;
  /** The external writer: when its COMMIT was acknowledged (coordinator clock, between `start` and `end`). */
  ackAt?: number;
}

/** A time in which a fault may have kept the elected follower from applying outside changes (coordinator clock). */
export interface FollowerDisturbance {
  readonly kind: string;
  readonly start: number;
  readonly end: number;
}

/** The outside-writers bound (G13) external commits are held to. */
export interface OutsideBound {
  /**
   * W: a read may return a value an external commit replaced only if it was sent within W ms after that commit's
   * acknowledgement (or, when a disturbance overlaps, within W ms after the disturbance ended plus one follower
   * interval); never later.
   */
  readonly ms: number;
  /** The follower's interval: after a disturbance the leader retries what it could not reach at its next round at the latest. */
  readonly followerIntervalMs: number;
  readonly disturbances: readonly FollowerDisturbance[];
}

/** The default W of the checker (ms): generous against the bound measured under load (docs/benchmarks.md, "Outside writers"). */
export const DEFAULT_OUTSIDE_BOUND_MS = 1000;

/**
 * When no reader may get a value an external commit acknowledged at `ack` replaced any more: W after it, or, while
 * disturbances overlap the window, W after the last of them ended plus one follower interval.
 */
export function outsideDeadline(ack: number, bound: OutsideBound): number {
  let from = ack;
  for (;;) {
    const d = bound.disturbances.find((x) => x.start <= from + bound.ms && x.end + bound.followerIntervalMs > from);
    if (!d) return from + bound.ms;
    from = d.end + bound.followerIntervalMs;
  }
}

/** A time window in which `degrade` may serve stale values: a partition, until the first sweep after it healed. */
export interface StaleWindow {
  readonly start: number;
  /** The end of the first sweep after the fault ended (and the cut workers' transactions in flight had ended). */
  readonly until: number;
  /** The fault that opened it; absent in logs written before staleness was measured. */
  readonly kind?: string;
  /** When the fault ended: the server restarted, the partition healed (coordinator clock). */
  readonly healed?: number;
  /** When the sweep that closes the window began. */
  readonly sweepStart?: number;
}

/** One stale read the `degrade` bound allowed, measured. */
export interface StaleRead {
  readonly worker: number;
  readonly seq: number;
  readonly what: string;
  /** The window's fault kind ('?' for a log without kinds). */
  readonly kind: string;
  /** Coordinator clock: the read was sent, answered. */
  readonly start: number;
  readonly end: number;
  /** Versions between the one read and the newest whose commit had returned before the read was sent; undefined for a collection that mixes two states. */
  readonly versionsBehind?: number;
  /** From the return of the first commit that superseded the version read to the read's dispatch (ms; a lower bound of the staleness). */
  readonly ageMs?: number;
  /** From the fault's end to the read's answer (ms; negative: during the fault; an upper bound of when it was served). */
  readonly sinceHealedMs?: number;
  /** The read was sent after the window's closing sweep had begun. */
  readonly afterSweepStart: boolean;
  /** The first superseding commit had returned before the fault began. */
  readonly supersededBeforeFault: boolean;
  /** Superseding commits (returned before the read) that committed degraded with this key / another key / not degraded / unknown (worker killed) / by the external writer. */
  readonly superseding: { degradedThisKey: number; degradedOther: number; clean: number; unknown: number; external: number };
}

/** Distribution of one measure. */
export interface Spread {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** Staleness of the allowed stale reads, per fault kind. */
export interface StalenessByKind {
  readonly kind: string;
  readonly windows: number;
  readonly staleReads: number;
  /** Collections that mixed two committed states (no single version to measure). */
  readonly mixed: number;
  readonly ageMs: Spread;
  readonly versionsBehind: Spread;
  /** Fault end to the last stale read's answer, the largest over the windows (ms); undefined without stale reads. */
  readonly lastAfterHealedMs?: number;
  /** Fault end to the end of the closing sweep (the bound as the run realised it): p50 / max over the windows. */
  readonly sweepAfterHealedMs: Spread;
  /** Stale reads sent after the closing sweep began; stale reads of a version superseded before the fault began; stale reads after a superseding commit that locked every key (not degraded). */
  readonly afterSweepStart: number;
  readonly supersededBeforeFault: number;
  readonly afterCleanCommit: number;
}

const spread = (values: readonly number[]): Spread => {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!);
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted.length === 0 ? NaN : sorted[sorted.length - 1]! };
};

/** The allowed stale reads measured per fault kind (every kind that opened a window is listed, stale reads or not). */
export function stalenessByKind(reads: readonly StaleRead[], windows: readonly StaleWindow[]): StalenessByKind[] {
  const kinds = [...new Set([...windows.map((w) => w.kind ?? '?'), ...reads.map((r) => r.kind)])];
  return kinds.map((kind) => {
    const rs = reads.filter((r) => r.kind === kind);
    const ws = windows.filter((w) => (w.kind ?? '?') === kind);
    const since = rs.map((r) => r.sinceHealedMs).filter((v): v is number => v !== undefined);
    return {
      kind,
      windows: ws.length,
      staleReads: rs.length,
      mixed: rs.filter((r) => r.versionsBehind === undefined).length,
      ageMs: spread(rs.map((r) => r.ageMs).filter((v): v is number => v !== undefined)),
      versionsBehind: spread(rs.map((r) => r.versionsBehind).filter((v): v is number => v !== undefined)),
      lastAfterHealedMs: since.length === 0 ? undefined : Math.max(...since),
      sweepAfterHealedMs: spread(ws.filter((w) => w.healed !== undefined).map((w) => w.until - w.healed!)),
      afterSweepStart: rs.filter((r) => r.afterSweepStart).length,
      supersededBeforeFault: rs.filter((r) => r.supersededBeforeFault).length,
      afterCleanCommit: rs.filter((r) => r.superseding.clean > 0).length,
    };
  });
}

export type Guarantee = 'G1' | 'G2' | 'G4' | 'G5' | 'G6' | 'G7' | 'G12' | 'G13';
export const GUARANTEES: readonly Guarantee[] = ['G1', 'G2', 'G4', 'G5', 'G6', 'G7', 'G12', 'G13'];

export interface Anomaly {
  readonly guarantee: Guarantee;
  readonly what: string;
  readonly worker?: number;
  readonly seq?: number;
}

export interface CheckSummary {
  /** Operations of the workers with an answer, and how many of them failed (errors are allowed: faults make them). */
  readonly operations: number;
  readonly failed: number;
  readonly lost: number;
  /** Observations checked (rows, collections, counts, query results; plain and snapshot). */
  readonly observations: number;
  readonly committed: number;
  readonly rolledBack: number;
  /** Stale reads inside a `degrade` window (allowed by the documented bound). */
  readonly allowedStale: number;
  /** Each of them, measured: how old, how many versions behind, how long after the fault ended. */
  readonly staleReads: StaleRead[];
  /** Commits of the external writer (acknowledged). */
  readonly externalCommits: number;
  /** The bound external commits were held to (W, ms). */
  readonly outsideBoundMs: number;
  /**
   * Reads that returned a value an external commit had replaced, sent within its bound (allowed): from the
   * acknowledgement of the first such commit to the read's dispatch (the staleness window observed: its max is
   * the largest), and to the read's answer (an upper bound).
   */
  readonly outsideStale: { readonly sent: Spread; readonly answered: Spread };
  /**
   * Collection reads equal to an allowed membership minus members whose row was read in an allowed version that
   * places them in another group (see member-rows.ts); absent in summaries written before they were recognised.
   */
  readonly memberRowMixes?: number;
  readonly anomalies: Anomaly[];
}

interface State extends KeyState {
  readonly xid: bigint;
  /** The token of the transaction that committed this state. */
  readonly tx: string;
  /** When the commit's caller got the answer (coordinator clock); Infinity if it never did. */
  readonly returnedAt: number;
  /** Whether the external writer committed it. */
  readonly external: boolean;
  /** From when no read may return an older version: `returnedAt` for the library's commits, its bound's end for external ones. */
  readonly dueAt: number;
}

/** Checks G1, G2/G3, G4, G5 and G7 on a history; G6 and G12 findings come from the coordinator's audits. */
export function checkHistory(
  records: readonly OpRecord[],
  history: readonly CommittedTx[],
  options: { windows?: readonly StaleWindow[]; extra?: readonly Anomaly[]; outside?: OutsideBound } = {},
): CheckSummary {
  const bound = options.outside ?? { ms: DEFAULT_OUTSIDE_BOUND_MS, followerIntervalMs: 1000, disturbances: [] };
  const returned = new Map<string, number>();
  /** Tokens of the external writer's acknowledged commits. */
  const external = new Set<string>();
  const rolledBack = new Set<string>();
  /** When each transaction's op was sent: none of its states can have been read by an op answered before. */
  const dispatched = new Map<string, number>([['seed', -Infinity]]);
  /** Per committed token: the keys it committed without locking ([] none); absent: unknown (its worker died). */
  const degradedBy = new Map<string, readonly string[]>();
  for (const r of records) {
    for (const t of r.tokens) dispatched.set(t, r.start);
    if (isExternal(r.op)) {
      if (r.result?.ok && r.result.token && r.end !== undefined) {
        external.add(r.result.token);
        returned.set(r.result.token, r.ackAt ?? r.end);
      }
      continue;
    }
    if (r.result?.ok && r.result.token) degradedBy.set(r.result.token, r.result.degraded ?? []);
    if (r.result?.ok && r.result.token && r.end !== undefined) returned.set(r.result.token, r.end);
    else if (r.committedBy !== undefined) for (const t of r.tokens) returned.set(t, r.committedBy);
    for (const t of r.result?.rolledBack ?? []) rolledBack.add(t);
  }
  const byKey = new Map<string, State[]>();
  for (const tx of history) {
    for (const s of tx.states) {
      const list = byKey.get(s.key) ?? [];
      const returnedAt = tx.token === 'seed' ? -Infinity : (returned.get(tx.token) ?? Infinity);
      const byOutsider = external.has(tx.token);
      list.push({ ...s, xid: BigInt(tx.xid), tx: tx.token, returnedAt, external: byOutsider, dueAt: byOutsider ? outsideDeadline(returnedAt, bound) : returnedAt });
      byKey.set(s.key, list);
    }
  }
  for (const list of byKey.values()) list.sort((a, b) => a.version - b.version);

  const anomalies: Anomaly[] = [...(options.extra ?? [])];
  let observations = 0;
  let allowedStale = 0;
  let memberRowMixes = 0;
  const groups = itemGroups(history);
  const staleReads: StaleRead[] = [];
  const outsideSent: number[] = [];
  const outsideAnswered: number[] = [];
  const windows = options.windows ?? [];
  /** The library key of an observation, to match it against a transaction's degraded keys. */
  const libraryKey = (o: Observation): string | undefined => {
    const [kind, id] = o.key.split(':') as [string, string];
    return kind === 'i' ? `e:public.c_item:${id}` : kind === 'g' ? `e:public.c_group:${id}` : kind === 'm' && 'via' in o && o.via !== 'query' ? `c:public.c_group.items:${id}` : undefined;
  };
  const measure = (r: OpRecord, o: Observation, states: State[], found: State[], min: number | undefined): void => {
    const w = windows.find((x) => x.start <= (r.end as number) && r.start <= x.until)!;
    const read = found.length === 0 ? undefined : Math.max(...found.map((s) => s.version));
    const superseding = read === undefined || min === undefined ? [] : states.filter((s) => s.version > read && s.version <= min && s.returnedAt < r.start);
    const first = superseding.length === 0 ? undefined : Math.min(...superseding.map((s) => s.returnedAt));
    const lk = libraryKey(o);
    const counts = { degradedThisKey: 0, degradedOther: 0, clean: 0, unknown: 0, external: 0 };
    for (const s of superseding) {
      const keys = degradedBy.get(s.tx);
      if (s.external) counts.external++;
      else if (keys === undefined) counts.unknown++;
      else if (keys.length === 0) counts.clean++;
      else if (lk === undefined || keys.some((k) => k === '?' || k.endsWith(lk))) counts.degradedThisKey++;
      else counts.degradedOther++;
    }
    staleReads.push({
      worker: r.worker,
      seq: r.seq,
      what: describe(o),
      kind: w.kind ?? '?',
      start: r.start,
      end: r.end as number,
      versionsBehind: read === undefined || min === undefined ? undefined : min - read,
      ageMs: first === undefined ? undefined : r.start - first,
      sinceHealedMs: w.healed === undefined ? undefined : (r.end as number) - w.healed,
      afterSweepStart: w.sweepStart !== undefined && r.start >= w.sweepStart,
      supersededBeforeFault: first !== undefined && first < w.start,
      superseding: counts,
    });
  };

  const rowKey = (o: Observation): string => (o.key.startsWith('m:') || o.key.startsWith('n:') ? `g:${o.key.slice(2)}` : o.key);
  /** Newest version whose commit had returned before `start`. */
  const floor = (states: State[], start: number): number => {
    let v = -Infinity;
    for (const s of states) if (s.returnedAt < start && s.version > v) v = s.version;
    return v;
  };
  /** Newest version no read sent at `start` may be older than (external commits count from their bound's end). */
  const floorDue = (states: State[], start: number): number => {
    let v = -Infinity;
    for (const s of states) if (s.dueAt < start && s.version > v) v = s.version;
    return v;
  };
  /** States a read sent at `r.start` may return on their own (none an older one that is due), committed by an op sent before it was answered. */
  const allowed = (states: State[], r: OpRecord): State[] => {
    const due = floorDue(states, r.start);
    return states.filter((s) => s.version >= due && (dispatched.get(s.tx) ?? Infinity) < (r.end as number));
  };
  /**
   * A collection read that matches no allowed membership may still be one allowed membership's ids with members
   * left out because their rows, each read in an allowed version, name another group (MikroORM files a child
   * under the owner its foreign key names). Rows stale within the outside-writers bound are measured as such.
   */
  const memberRowsMix = (r: OpRecord, o: Observation): MemberRowsMix | undefined => {
    if (!('members' in o) || o.via !== 'collection') return undefined;
    const g = Number(o.key.slice(2));
    const rows = (id: number): State[] => byKey.get(`i:${id}`) ?? [];
    const mix = explainByMemberRows(o.members, g, allowed(byKey.get(`g:${g}`) ?? [], r), (id) => allowed(rows(id), r).map((s) => s.version), groups);
    for (const left of mix?.left ?? []) {
      const replaced = rows(left.id).filter((s) => s.version > left.version && s.returnedAt < r.start);
      if (replaced.length === 0) continue;
      const first = Math.min(...replaced.map((s) => s.returnedAt));
      outsideSent.push(r.start - first);
      outsideAnswered.push((r.end as number) - first);
    }
    return mix;
  };
  /** The committed states an observation can be (by token and version, or by members / count). */
  const matches = (o: Observation, states: State[]): State[] => {
    if ('token' in o) return states.filter((s) => s.token === o.token && (o.token === null || s.version === o.version));
    if ('members' in o) return states.filter((s) => s.members?.join(',') === o.members.join(','));
    if ('owner' in o) return states.filter((s) => s.owner === o.owner);
    return states.filter((s) => s.members?.length === o.count);
  };
  const describe = (o: Observation): string =>
    'token' in o ? `${o.key}=v${o.version ?? '-'}/${o.token ?? 'absent'}` : 'members' in o ? `${o.key} (${o.via})=[${o.members}]` : 'owner' in o ? `${o.key} owned by ${o.owner ?? 'none'}` : `${o.key}=${o.count}`;

  for (const r of records) {
    const res = r.result;
    if (!res || r.end === undefined) continue;
    const at = { worker: r.worker, seq: r.seq };
    for (const failure of res.ownWriteFailures ?? []) anomalies.push({ guarantee: 'G4', what: `own write not visible: ${failure}`, ...at });
    for (const o of res.obs) {
      observations++;
      const states = byKey.get(rowKey(o)) ?? [];
      const found = matches(o, states);
      const inWindow = windows.some((w) => w.start <= (r.end as number) && r.start <= w.until);
      if (found.length === 0 && 'members' in o && inWindow) {
        // Under `degrade`, a collection is assembled from an id list and rows that may each be stale within the
        // policy's bound: a mix of two committed states is that staleness, not a read of uncommitted data.
        allowedStale++;
        measure(r, o, states, found, undefined);
        continue;
      }
      if (found.length === 0 && memberRowsMix(r, o)) {
        memberRowMixes++;
        continue;
      }
      if (found.length === 0) {
        if ('token' in o && o.token && rolledBack.has(o.token)) anomalies.push({ guarantee: 'G7', what: `read a rolled-back write: ${describe(o)}`, ...at });
        else if ('token' in o || 'members' in o || 'owner' in o) anomalies.push({ guarantee: 'G1', what: `read a value never committed: ${describe(o)}`, ...at });
        else anomalies.push({ guarantee: 'G2', what: `count matches no committed state: ${describe(o)}`, ...at });
        continue;
      }
      const min = floor(states, r.start);
      if (found.some((s) => s.version >= min)) continue;
      const read = Math.max(...found.map((s) => s.version));
      if (found.some((s) => s.version >= floorDue(states, r.start))) {
        // Replaced only by external commits whose bound had not passed when the read was sent (G13): allowed, measured.
        const first = Math.min(...states.filter((s) => s.version > read && s.returnedAt < r.start).map((s) => s.returnedAt));
        outsideSent.push(r.start - first);
        outsideAnswered.push((r.end as number) - first);
        continue;
      }
      if (inWindow) {
        allowedStale++;
        measure(r, o, states, found, min);
        continue;
      }
      if (memberRowsMix(r, o)) {
        memberRowMixes++;
        continue;
      }
      const late = states.filter((s) => s.version > read && s.dueAt < r.start);
      if (late.every((s) => s.external)) {
        const e = late[late.length - 1]!;
        const past = outsideDeadline(e.returnedAt, bound) - e.returnedAt;
        anomalies.push({
          guarantee: 'G13',
          what: `stale read past the outside-writers bound: ${describe(o)}, but the external commit of v${e.version}/${e.token ?? 'absent'} was acknowledged ${Math.round(r.start - e.returnedAt)} ms before the read began (bound ${past === bound.ms ? `${bound.ms} ms` : `${Math.round(past)} ms, extended by a fault`})`,
          ...at,
        });
        continue;
      }
      const newest = late.filter((s) => !s.external).pop()!;
      const was = newest.owner !== undefined ? `owner ${newest.owner ?? 'none'}` : (newest.token ?? 'absent');
      anomalies.push({ guarantee: 'G2', what: `stale read: ${describe(o)}, but v${newest.version}/${was} had returned before the read began`, ...at });
    }
    if (res.rr) {
      const snap = parseSnapshot(res.rr.snapshot);
      for (const o of res.rr.obs) {
        observations++;
        const states = byKey.get(rowKey(o)) ?? [];
        const visible = states.filter((s) => snap.visible(s.xid));
        const expected = visible[visible.length - 1];
        const ok = expected !== undefined && matches(o, [expected]).length === 1;
        if (!ok) anomalies.push({ guarantee: 'G5', what: `snapshot ${res.rr.snapshot} read ${describe(o)}, its snapshot holds v${expected?.version}/${expected?.token ?? 'absent'}`, ...at });
      }
    }
  }
  return {
    // The applications' operations; the external writer's are counted apart (externalCommits).
    operations: records.filter((r) => r.result && !isExternal(r.op)).length,
    failed: records.filter((r) => r.result && !r.result.ok && !isExternal(r.op)).length,
    lost: records.filter((r) => !r.result && !isExternal(r.op)).length,
    observations,
    committed: history.length - 1,
    rolledBack: rolledBack.size,
    allowedStale,
    staleReads,
    externalCommits: external.size,
    outsideBoundMs: bound.ms,
    outsideStale: { sent: spread(outsideSent), answered: spread(outsideAnswered) },
    memberRowMixes,
    anomalies,
  };
}

/** `xmin:xmax:xip,...` of `pg_current_snapshot()`. */
export function parseSnapshot(text: string): { visible(xid: bigint): boolean } {
  const [xmin, xmax, xip] = text.split(':') as [string, string, string];
  const lo = BigInt(xmin);
  const hi = BigInt(xmax);
  const inProgress = new Set((xip ?? '').split(',').filter(Boolean).map((x) => BigInt(x)));
  return { visible: (xid) => xid < lo || (xid < hi && !inProgress.has(xid)) };
}

/** Anomalies per guarantee (every guarantee listed, zeros included). */
export function countByGuarantee(anomalies: readonly Anomaly[]): Record<Guarantee, number> {
  const out = Object.fromEntries(GUARANTEES.map((g) => [g, 0])) as Record<Guarantee, number>;
  for (const a of anomalies) out[a.guarantee]++;
  return out;
}
