import type { SqlRunner } from '../protocol/sql-runner.js';
import type { XaCache } from '../protocol/xa-cache.js';

/**
 * Applies, every `intervalMs`, the changes the database captured for transactions that did not run this
 * library's prepare (psql, other programs, statements outside the library's transactions): see
 * `XaCache.applyOutsideChanges`. Every process may run one: claims keep them from applying the same change twice,
 * and a change is deleted only once its keys were reached, so none is lost when a process dies.
 */
export class OutsideChangesFollower {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;
  #stopped = false;
  /** When the last run finished without error (ms since the epoch), and the last error, until a run succeeds. */
  lastSuccessAt: number | undefined;
  lastError: unknown;

  constructor(
    private readonly cache: XaCache,
    private readonly db: SqlRunner,
    readonly intervalMs: number,
  ) {}

  /** Runs once now (or joins the run in progress). */
  runNow(): Promise<unknown> {
    this.#running ??= this.cache
      .applyOutsideChanges(this.db)
      .then(
        () => {
          this.lastSuccessAt = Date.now();
          this.lastError = undefined;
        },
        (error: unknown) => {
          this.lastError = error;
          this.cache.options.logger?.('warn', 'applying outside changes failed; the next run retries', { error: error instanceof Error ? error.message : String(error) });
        },
      )
      .finally(() => (this.#running = undefined));
    return this.#running;
  }

  /** Starts the periodic runs; the timer does not keep the process alive. */
  start(): void {
    if (this.intervalMs <= 0 || this.#timer || this.#stopped) return;
    const tick = (): void => {
      this.#timer = setTimeout(() => void this.runNow().finally(() => !this.#stopped && tick()), this.intervalMs);
      this.#timer.unref();
    };
    tick();
  }

  /** Stops the periodic runs and waits for one in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#running;
  }
}
