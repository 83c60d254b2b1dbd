import type { BenchConfig } from '../config.js';
import type { OpenContender } from '../contenders/index.js';
import type { Measurement } from '../measure.js';

/** One measured line of a workload (a concurrency, or a size at a concurrency). */
export interface Point extends Measurement {
  readonly label: string;
  /** Extra latencies (ms) reported by the workload, e.g. of the flush alone. */
  readonly extra?: Readonly<Record<string, number>>;
}

/** What one contender did in one workload. */
export interface WorkloadResult {
  readonly points: Point[];
  /** Figures that are not per point (stale reads, sweep time, …). */
  readonly facts?: Readonly<Record<string, number>>;
}

export interface WorkloadContext {
  readonly contender: OpenContender;
  readonly contenderKey: string;
  readonly config: BenchConfig;
  readonly progress: (line: string) => void;
}

export interface Workload {
  readonly key: string;
  readonly title: string;
  /** What an operation is, for the report. */
  readonly operation: string;
  run(ctx: WorkloadContext): Promise<WorkloadResult>;
}

/** The label of a throughput point. */
export const inFlightLabel = (n: number): string => `${n} in flight`;
