/**
 * The measuring loop of a contender's process: `inFlight` concurrent async loops, each running one operation after
 * the other until the time is up. Throughput is completed operations over the measured wall time; latencies are
 * exact percentiles of every operation (no sampling). An operation may time a part of itself (`timed`, e.g. the
 * flush of a write) and say what it was and what it saw (`OpOutcome`).
 */

/** Times the part of an operation that is reported apart (the flush of a write transaction). */
export type Timer = <T>(fn: () => Promise<T>) => Promise<T>;

/** What an operation reports beside its latency. */
export interface OpOutcome {
  readonly kind?: 'read' | 'write';
  /** A read that returned a value older than the one committed before it began. */
  readonly stale?: boolean;
  /** A read that sent no statement to PostgreSQL. */
  readonly hit?: boolean;
}

/** One operation; `worker` is the loop's index (0…inFlight-1). */
export type Operation = (worker: number, timed: Timer) => Promise<OpOutcome | void>;

/** Returns the counters' current values; the difference over a run, divided by its operations, is reported. */
export type CounterSnapshot = () => Record<string, number>;

/** One contender's figures for one workload in one round. */
export interface RoundResult {
  readonly inFlight: number;
  readonly ops: number;
  readonly seconds: number;
  readonly opsPerSecond: number;
  /** Milliseconds, whole operations. */
  readonly p50: number;
  readonly p99: number;
  /** Milliseconds of the timed part (`timed`), when the operation has one. */
  readonly timedP50?: number;
  readonly timedP99?: number;
  /** Reads and writes apart (operations that said their kind). */
  readonly readP50?: number;
  readonly writeP50?: number;
  readonly reads: number;
  readonly writes: number;
  readonly staleReads: number;
  /** Reads that sent no statement to PostgreSQL. */
  readonly hits: number;
  /** Counters per operation over the measured window (see the contender's `counters`). */
  readonly perOp: Readonly<Record<string, number>>;
  readonly errors: number;
  readonly firstError?: string;
}

/** Runs `op` for `warmup` seconds unmeasured, then `seconds` measured, `inFlight` at a time. */
export async function measureRound(op: Operation, options: { inFlight: number; warmup: number; seconds: number; counters: CounterSnapshot }): Promise<RoundResult> {
  const run = async (seconds: number, counters: CounterSnapshot | undefined): Promise<RoundResult> => {
    const all: number[] = [];
    const timedMs: number[] = [];
    const byKind = { read: [] as number[], write: [] as number[] };
    let stale = 0;
    let hits = 0;
    let errors = 0;
    let firstError: string | undefined;
    const before = counters?.() ?? {};
    const started = performance.now();
    const deadline = started + seconds * 1000;
    const timed: Timer = async (fn) => {
      const t0 = performance.now();
      const value = await fn();
      timedMs.push(performance.now() - t0);
      return value;
    };
    const loop = async (worker: number): Promise<void> => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        try {
          const outcome = await op(worker, timed);
          const ms = performance.now() - t0;
          all.push(ms);
          if (outcome?.kind) byKind[outcome.kind].push(ms);
          if (outcome?.stale) stale++;
          if (outcome?.hit) hits++;
        } catch (error) {
          errors++;
          firstError ??= error instanceof Error ? `${error.name}: ${error.message}` : String(error);
        }
      }
    };
    await Promise.all(Array.from({ length: options.inFlight }, (_, w) => loop(w)));
    const elapsed = (performance.now() - started) / 1000;
    const after = counters?.() ?? {};
    const ops = all.length;
    const perOp: Record<string, number> = {};
    for (const [name, value] of Object.entries(after)) perOp[name] = ops > 0 ? (value - (before[name] ?? 0)) / ops : 0;
    const p = (xs: number[], q: number): number => percentile(xs.sort((a, b) => a - b), q);
    return {
      inFlight: options.inFlight,
      ops,
      seconds: elapsed,
      opsPerSecond: ops / elapsed,
      p50: p(all, 0.5),
      p99: p(all, 0.99),
      ...(timedMs.length ? { timedP50: p(timedMs, 0.5), timedP99: p(timedMs, 0.99) } : {}),
      ...(byKind.read.length ? { readP50: p(byKind.read, 0.5) } : {}),
      ...(byKind.write.length ? { writeP50: p(byKind.write, 0.5) } : {}),
      reads: byKind.read.length,
      writes: byKind.write.length,
      staleReads: stale,
      hits,
      perOp,
      errors,
      ...(firstError ? { firstError } : {}),
    };
  };
  await run(options.warmup, undefined);
  return run(options.seconds, options.counters);
}

/**
 * Runs `count` operations one after the other and returns the counters' growth per operation, by kind of
 * operation (`all`, and `read`/`write` when the operation says): with one in flight nothing else runs, so every
 * round trip counted is this operation's own. `timed` parts are counted apart as `timed`.
 */
export async function countPerOperation(op: Operation, count: number, counters: CounterSnapshot): Promise<Record<string, Record<string, number>>> {
  const sums: Record<string, Record<string, number>> = {};
  const seen: Record<string, number> = {};
  const add = (kind: string, before: Record<string, number>, after: Record<string, number>): void => {
    seen[kind] = (seen[kind] ?? 0) + 1;
    const s = (sums[kind] ??= {});
    for (const [k, v] of Object.entries(after)) s[k] = (s[k] ?? 0) + v - (before[k] ?? 0);
  };
  const timed: Timer = async (fn) => {
    const before = counters();
    const value = await fn();
    add('timed', before, counters());
    return value;
  };
  for (let i = 0; i < count; i++) {
    const before = counters();
    const outcome = await op(0, timed);
    const after = counters();
    add('all', before, after);
    if (outcome?.kind) add(outcome.kind, before, after);
  }
  const perKind: Record<string, Record<string, number>> = {};
  for (const [kind, s] of Object.entries(sums)) perKind[kind] = Object.fromEntries(Object.entries(s).map(([k, v]) => [k, v / (seen[kind] ?? 1)]));
  return perKind;
}

/** Runs `op` once for every index 0…count-1, `inFlight` at a time (cache fills). */
export async function forEachIndex(count: number, inFlight: number, op: (index: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const loop = async (): Promise<void> => {
    while (next < count) await op(next++);
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, loop));
}

export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index] as number;
}

/** Zipf-distributed integers in [0, n): rank 0 is the most popular (s = 0.99, as YCSB). */
export class Zipf {
  readonly #cdf: Float64Array;

  constructor(
    n: number,
    s = 0.99,
    private readonly random: () => number = Math.random,
  ) {
    this.#cdf = new Float64Array(n);
    let sum = 0;
    for (let k = 0; k < n; k++) this.#cdf[k] = sum += 1 / Math.pow(k + 1, s);
    for (let k = 0; k < n; k++) (this.#cdf as Float64Array)[k] = (this.#cdf[k] as number) / sum;
  }

  next(): number {
    const u = this.random();
    let lo = 0;
    let hi = this.#cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.#cdf[mid] as number) < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** A small seeded generator (mulberry32), so every contender gets the same key sequence. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
