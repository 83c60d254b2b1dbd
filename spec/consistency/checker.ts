/**
 * The history checker: a pure function of what the workers saw (with the coordinator's dispatch and reply times,
 * one monotonic clock) and the committed history (the `c_history` table). It never talks to a server, so a run's
 * log can be checked again offline (`main.js --recheck <log>`).
 */
import type { KeyState, CommittedTx } from './schema.js';
import type { Observation, Op, OpResult } from './ops.js';

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
  /** Superseding commits (returned before the read) that committed degraded with this key / another key / not degraded / unknown (worker killed). */
  readonly superseding: { degradedThisKey: number; degradedOther: number; clean: number; unknown: number };
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

export type Guarantee = 'G1' | 'G2' | 'G4' | 'G5' | 'G6' | 'G7' | 'G12';
export const GUARANTEES: readonly Guarantee[] = ['G1', 'G2', 'G4', 'G5', 'G6', 'G7', 'G12'];

export interface Anomaly {
  readonly guarantee: Guarantee;
  readonly what: string;
  readonly worker?: number;
  readonly seq?: number;
}

export interface CheckSummary {
  /** Operations with an answer, and how many of them failed (errors are allowed: faults make them). */
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
  readonly anomalies: Anomaly[];
}

interface State extends KeyState {
  readonly xid: bigint;
  /** The token of the transaction that committed this state. */
  readonly tx: string;
  /** When the commit's caller got the answer (coordinator clock); Infinity if it never did. */
  readonly returnedAt: number;
}

/** Checks G1, G2/G3, G4, G5 and G7 on a history; G6 and G12 findings come from the coordinator's audits. */
export function checkHistory(records: readonly OpRecord[], history: readonly CommittedTx[], options: { windows?: readonly StaleWindow[]; extra?: readonly Anomaly[] } = {}): CheckSummary {
  const returned = new Map<string, number>();
  const rolledBack = new Set<string>();
  /** Per committed token: the keys it committed without locking ([] none); absent: unknown (its worker died). */
  const degradedBy = new Map<string, readonly string[]>();
  for (const r of records) {
    if (r.result?.ok && r.result.token) degradedBy.set(r.result.token, r.result.degraded ?? []);
    if (r.result?.ok && r.result.token && r.end !== undefined) returned.set(r.result.token, r.end);
    else if (r.committedBy !== undefined) for (const t of r.tokens) returned.set(t, r.committedBy);
    for (const t of r.result?.rolledBack ?? []) rolledBack.add(t);
  }
  const byKey = new Map<string, State[]>();
  for (const tx of history) {
    for (const s of tx.states) {
      const list = byKey.get(s.key) ?? [];
      list.push({ ...s, xid: BigInt(tx.xid), tx: tx.token, returnedAt: tx.token === 'seed' ? -Infinity : (returned.get(tx.token) ?? Infinity) });
      byKey.set(s.key, list);
    }
  }
  for (const list of byKey.values()) list.sort((a, b) => a.version - b.version);

  const anomalies: Anomaly[] = [...(options.extra ?? [])];
  let observations = 0;
  let allowedStale = 0;
  const staleReads: StaleRead[] = [];
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
    const counts = { degradedThisKey: 0, degradedOther: 0, clean: 0, unknown: 0 };
    for (const s of superseding) {
      const keys = degradedBy.get(s.tx);
      if (keys === undefined) counts.unknown++;
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
      if (found.length === 0) {
        if ('token' in o && o.token && rolledBack.has(o.token)) anomalies.push({ guarantee: 'G7', what: `read a rolled-back write: ${describe(o)}`, ...at });
        else if ('token' in o || 'members' in o || 'owner' in o) anomalies.push({ guarantee: 'G1', what: `read a value never committed: ${describe(o)}`, ...at });
        else anomalies.push({ guarantee: 'G2', what: `count matches no committed state: ${describe(o)}`, ...at });
        continue;
      }
      const min = floor(states, r.start);
      if (found.some((s) => s.version >= min)) continue;
      if (inWindow) {
        allowedStale++;
        measure(r, o, states, found, min);
        continue;
      }
      const newest = states.filter((s) => s.version === min)[0];
      const was = newest?.owner !== undefined ? `owner ${newest.owner ?? 'none'}` : (newest?.token ?? 'absent');
      anomalies.push({ guarantee: 'G2', what: `stale read: ${describe(o)}, but v${min}/${was} had returned before the read began`, ...at });
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
    operations: records.filter((r) => r.result).length,
    failed: records.filter((r) => r.result && !r.result.ok).length,
    lost: records.filter((r) => !r.result).length,
    observations,
    committed: history.length - 1,
    rolledBack: rolledBack.size,
    allowedStale,
    staleReads,
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
