import type { StatementRider } from '../protocol/sql-runner.js';

/**
 * Holds back the first SELECT a committing transaction sends while it is open (write-through's read of the rows it
 * wrote, which the driver sends through the connection's `execute`), so that it rides along the transaction log's
 * statement instead of costing a round trip of its own: the read and the log statement run in the same transaction
 * one after the other anyway, and nothing the read returns depends on the log statement.
 *
 * Life: {@link hold} (by `execute`) → {@link take} (by the log statement's runner) → the rows or the error are
 * delivered, or {@link close}: a read held but never taken runs on its own, so nothing waits forever.
 */
export class HeldRead {
  #held: { sql: string; resolve: (rows: object[]) => void; reject: (error: unknown) => void } | undefined;
  #open = true;
  #signal!: () => void;
  /** Resolves when a read is held. */
  readonly #heldSignal = new Promise<void>((resolve) => (this.#signal = resolve));

  /**
   * Holds `sql` (values inlined) and returns the promise of its rows; undefined when no read can be held any more
   * (one was held already, or the window closed): the caller then runs it itself.
   */
  hold(sql: string): Promise<object[]> | undefined {
    if (!this.#open || this.#held) return undefined;
    const rows = new Promise<object[]>((resolve, reject) => (this.#held = { sql, resolve, reject }));
    this.#signal();
    return rows;
  }

  /**
   * Waits until a read is held or `work` is done, whichever comes first; throws what `work` throws if it failed
   * before holding anything.
   */
  async heldOr(work: Promise<unknown>): Promise<void> {
    const first = await Promise.race([this.#heldSignal.then(() => 'held' as const), work.then(() => 'done' as const, () => 'failed' as const)]);
    if (first === 'failed') await work;
  }

  /** The held read as a rider of the next statement; no more reads are held after this. */
  take(): StatementRider | undefined {
    this.#open = false;
    const held = this.#held;
    if (!held) return undefined;
    this.#held = undefined;
    return { sql: held.sql, deliver: held.resolve, fail: held.reject };
  }

  /** Ends the window: a read held but not taken is run by `run` (or fails with `error`, when given). */
  async close(run: (sql: string) => Promise<object[]>, error?: unknown): Promise<void> {
    const rider = this.take();
    if (!rider) return;
    if (error !== undefined) return rider.fail(error);
    try {
      rider.deliver(await run(rider.sql));
    } catch (failure) {
      rider.fail(failure);
    }
  }
}
