/** Transactions remembered at most; past it the registry starts again (a waiter then only polls, as for another process's). */
const MAX_TRACKED = 10_000;

/**
 * The transactions of this process between prepare and the end of their promote or release, each with a promise
 * that settles then: a reader that meets a lock only this process's transactions hold waits for that instead of
 * polling (see `CacheReader.readManyWaiting`), so it reads the committed value as soon as promote wrote it.
 * Locks of other processes' transactions are polled as before.
 */
export class LocalTransactions {
  readonly #ends = new Map<string, { promise: Promise<void>; resolve: () => void }>();

  /** A transaction of this process holds locks from now on. */
  started(txId: string): void {
    if (this.#ends.size >= MAX_TRACKED) this.ended(...this.#ends.keys());
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.#ends.set(txId, { promise, resolve });
  }

  /** Its promote or release is over (or will not happen here): wakes whoever waits for it. */
  ended(...txIds: string[]): void {
    for (const txId of txIds) {
      this.#ends.get(txId)?.resolve();
      this.#ends.delete(txId);
    }
  }

  /**
   * Settles when every one of `holders` has ended, if all are transactions of this process still in flight;
   * undefined when any is not (another process's, or one already over).
   */
  endOf(holders: readonly string[]): Promise<unknown> | undefined {
    const ends: Promise<void>[] = [];
    for (const holder of holders) {
      const end = this.#ends.get(holder);
      if (!end) return undefined;
      ends.push(end.promise);
    }
    return ends.length === 1 ? ends[0] : Promise.all(ends);
  }

  get size(): number {
    return this.#ends.size;
  }
}
