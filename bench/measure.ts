/**
 * The measuring loop: `inFlight` concurrent async loops in one process, each running one operation after the
 * other until the time is up, recording every operation's latency. Throughput is completed operations over the
 * measured wall time; latencies are exact percentiles of every operation (no sampling).
 */
export interface Measurement {
  readonly inFlight: number;
  readonly ops: number;
  readonly seconds: number;
  readonly opsPerSecond: number;
  /** Milliseconds. */
  readonly p50: number;
  readonly p99: number;
  /** Counters (database statements, cache calls, …) per operation, over the measured operations. */
  readonly perOp: Readonly<Record<string, number>>;
  readonly errors: number;
  readonly firstError?: string;
}

/** One operation; `worker` is the loop's index (0…inFlight-1), `i` counts that loop's operations. */
export type Operation = (worker: number, i: number) => Promise<unknown>;

/** Returns the counters' current values; the difference over a run, divided by its operations, is reported. */
export type CounterSnapshot = () => Record<string, number>;

export async function measure(op: Operation, options: { inFlight: number; seconds: number; counters?: CounterSnapshot; maxOps?: number }): Promise<Measurement> {
  const { inFlight, seconds } = options;
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const before = options.counters?.() ?? {};
  const started = performance.now();
  const deadline = started + seconds * 1000;
  let issued = 0;
  const loop = async (worker: number): Promise<void> => {
    for (let i = 0; performance.now() < deadline && (options.maxOps === undefined || issued < options.maxOps); i++) {
      issued++;
      const t0 = performance.now();
      try {
        await op(worker, i);
        latencies.push(performance.now() - t0);
      } catch (error) {
        errors++;
        firstError ??= error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, (_, w) => loop(w)));
  const elapsed = (performance.now() - started) / 1000;
  const after = options.counters?.() ?? {};
  const perOp: Record<string, number> = {};
  const ops = latencies.length;
  for (const [name, value] of Object.entries(after)) perOp[name] = ops > 0 ? (value - (before[name] ?? 0)) / ops : 0;
  latencies.sort((a, b) => a - b);
  return {
    inFlight,
    ops,
    seconds: elapsed,
    opsPerSecond: ops / elapsed,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    perOp,
    errors,
    ...(firstError ? { firstError } : {}),
  };
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
