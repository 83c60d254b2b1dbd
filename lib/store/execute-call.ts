import type { StoreCounters, StoreResult } from './cache-store.js';

/**
 * The shared state of one `execute` call: its results, in the order of its operations, and how many per-server
 * batches are still out. It resolves once every batch has settled, and never rejects.
 */
export class ExecuteCall {
  readonly results: StoreResult[];
  /** Batches not yet settled; the call resolves when this reaches zero after {@link ExecuteCall.start}. */
  #pending = 1;
  #resolve!: (value: StoreResult[] | StoreResult) => void;
  readonly promise: Promise<StoreResult[] | StoreResult>;

  constructor(
    size: number,
    /** Resolve with the only result rather than the array, which saves `get` a promise hop. */
    readonly single: boolean,
    readonly counters: StoreCounters,
  ) {
    this.results = new Array<StoreResult>(size);
    this.promise = new Promise((resolve) => (this.#resolve = resolve));
  }

  /** Records a result, counting errors by name. */
  settle(index: number, result: StoreResult): void {
    this.results[index] = result;
    if (result.status === 'error') {
      const name = result.error.name;
      this.counters.errors[name] = (this.counters.errors[name] ?? 0) + 1;
    }
  }

  /** Registers one more batch to wait for. */
  addBatch(): void {
    this.#pending++;
  }

  /** Called by each batch once all its results are recorded. */
  batchSettled(): void {
    if (--this.#pending === 0) this.#resolve(this.single ? (this.results[0] as StoreResult) : this.results);
  }

  /** Ends the set-up phase: batches settling before this cannot resolve the call early. */
  start(): void {
    this.batchSettled();
  }
}
