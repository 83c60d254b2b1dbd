import type { SqlRunner } from '../protocol/sql-runner.js';
import type { XaCache } from '../protocol/xa-cache.js';

/** How long after a promote the log rows still waiting for deletion are deleted, if no transaction carried them. */
export const IDLE_LOG_FLUSH_MS = 2000;

/**
 * Deletes the log rows of promoted transactions when no later transaction deletes them.
 *
 * Why: a promoted transaction's row is normally deleted by the next transaction's log statement, for free. In an
 * app that goes idle after a commit, that next transaction never comes, the row ages past the sweeper's and
 * `inspect`'s minimum age, and a healthy app looks like it left a transaction in doubt (`inspect` exits 1,
 * `xa_cache_in_doubt_transactions` is 1). So after each promote, if rows are still queued {@link IDLE_LOG_FLUSH_MS}
 * later, they are deleted in one statement. Under load the queue is drained by transactions and this costs at
 * most one statement per interval. The timer never keeps the process alive.
 */
export class IdleLogFlush {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #closed = false;

  constructor(
    private readonly xa: XaCache,
    private readonly runner: () => Promise<SqlRunner>,
    private readonly onError: (error: unknown) => void,
    private readonly delayMs = IDLE_LOG_FLUSH_MS,
  ) {}

  /** Called after a promote: arms the timer if rows wait for deletion and it is not armed yet. */
  poke(): void {
    if (this.#closed || this.#timer || this.xa.pendingLogDeletes === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.#flush().finally(() => (this.#running = undefined));
    }, this.delayMs);
    this.#timer.unref();
  }

  async #flush(): Promise<void> {
    if (this.xa.pendingLogDeletes === 0) return;
    try {
      await this.xa.flushLogDeletes(await this.runner());
    } catch (error) {
      // The ids went back to the queue: try again after the next interval (the database may be restarting).
      this.onError(error);
      this.poke();
    }
  }

  /** Stops the timer and waits for a flush in progress (before the connection's own final flush). */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }
}
