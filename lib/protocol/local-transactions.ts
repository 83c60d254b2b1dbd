import type { Entry } from './entry.js';

/** Transactions remembered at most; past it the registry starts again (a waiter then only polls, as for another process's). */
const MAX_TRACKED = 10_000;

/**
 * The transactions of this process between prepare and the end of their promote or release, each with a promise
 * that settles then: a reader that meets a lock only this process's transactions hold waits for that instead of
 * polling (see `CacheReader.readManyWaiting`), so it reads the committed value as soon as promote wrote it.
 * Locks of other processes' transactions are polled as before.
 */
export class LocalTransactions {
  readonly #ends = new Map<string, { promise: Promise<void>; resolve: () => void; promoting: Promise<void>; promoted: () => void }>();
  /** What committed transactions of this process are promoting: their keys and the values promote may write. */
  readonly #promoting = new Map<string, ReadonlyMap<string, Entry | undefined>>();

  /** A transaction of this process holds locks from now on. */
  started(txId: string): void {
    if (this.#ends.size >= MAX_TRACKED) this.ended(...this.#ends.keys());
    let resolve!: () => void;
    let promoted!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    const promoting = new Promise<void>((r) => (promoted = r));
    this.#ends.set(txId, { promise, resolve, promoting, promoted });
  }

  /** Its promote or release is over (or will not happen here): wakes whoever waits for it. */
  ended(...txIds: string[]): void {
    for (const txId of txIds) {
      const end = this.#ends.get(txId);
      end?.promoted();
      end?.resolve();
      this.#ends.delete(txId);
      this.#promoting.delete(txId);
    }
  }

  /**
   * Its COMMIT was acknowledged and its promote begins: `items` are its item keys with the values promote writes
   * where the lock was never shared (undefined: evicted). Until it ends, readers of this process that meet its lock
   * can apply promote's own rule and read what it is about to write (see `CacheReader`).
   */
  promoting(txId: string, items: ReadonlyMap<string, Entry | undefined>): void {
    const end = this.#ends.get(txId);
    if (!end) return;
    this.#promoting.set(txId, items);
    end.promoted();
  }

  /** The value a committed transaction of this process holds for `key` while it promotes; undefined if none. */
  valueOf(txId: string, key: string): Entry | undefined {
    return this.#promoting.get(txId)?.get(key);
  }

  /**
   * Settles when every one of `holders` has ended, if all are transactions of this process still in flight;
   * undefined when any is not (another process's, or one already over). With `key` and a lone holder that has not
   * begun its promote, it settles when that promote begins too: the value it is about to write for `key` can be
   * read from then on (`valueOf`).
   */
  endOf(holders: readonly string[], key?: string): Promise<unknown> | undefined {
    const ends: Promise<void>[] = [];
    for (const holder of holders) {
      const end = this.#ends.get(holder);
      if (!end) return undefined;
      ends.push(end.promise);
    }
    const lone = holders.length === 1 ? this.#ends.get(holders[0] as string) : undefined;
    if (lone && key !== undefined && !this.#promoting.has(holders[0] as string)) return Promise.race([lone.promise, lone.promoting]);
    return ends.length === 1 ? ends[0] : Promise.all(ends);
  }

  get size(): number {
    return this.#ends.size;
  }
}
