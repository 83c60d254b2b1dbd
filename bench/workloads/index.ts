import { collection, pkHit, queryHit, uniqueHit } from './hit-workloads.js';
import { mixed } from './mixed.js';
import { writeTransaction } from './write-transaction.js';
import type { Workload } from './workload.js';

export type { Point, Workload, WorkloadResult } from './workload.js';

/** Run order per contender: the hit workloads, then the mixed one (re-filled), then writes. */
export const allWorkloads: readonly Workload[] = [pkHit, uniqueHit, queryHit, collection, mixed, writeTransaction];
