import { collection50, collection500, pkHit } from './hit-workloads.js';
import { mixed } from './mixed.js';
import { flush10 } from './write-transaction.js';
import type { Workload } from './workload.js';

export type { DataShape, Workload, WorkloadSpec } from './workload.js';

/** Every workload of `npm run bench`, in the order of a round (the writing ones last). */
export const allWorkloads: readonly Workload[] = [pkHit, collection50, collection500, flush10, mixed];

/** The workload of a key, or an error naming the known ones. */
export function workloadOf(key: string): Workload {
  const w = allWorkloads.find((x) => x.key === key);
  if (!w) throw new Error(`unknown workload ${key} (known: ${allWorkloads.map((x) => x.key).join(', ')})`);
  return w;
}
