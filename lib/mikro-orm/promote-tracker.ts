/**
 * The promotes still running in the background, so a clean shutdown waits for them.
 *
 * Why promotes run in the background at all: once COMMIT returned, every key the transaction changed is still
 * locked by its prepare, so readers anywhere miss and cannot fill (G2, G3) until promote replaces the locks; the
 * commit call need not wait for it. What must not happen is a clean shutdown cutting a promote short: the locks
 * would then stay until they expire (or the sweeper runs) and the keys would be misses all that time. So
 * `orm.close()` (the connection's close, then the adapter's) settles every tracked promote before it closes the
 * memcached client. A crash still leaves them to the sweeper, as it always did.
 */
export class PromoteTracker {
  readonly #running = new Set<Promise<void>>();

  /** Tracks a promote that never rejects (its errors are logged where it runs). */
  track(promote: Promise<void>): void {
    this.#running.add(promote);
    void promote.finally(() => this.#running.delete(promote));
  }

  /** How many promotes are in flight. */
  get size(): number {
    return this.#running.size;
  }

  /** Resolves once every promote tracked so far, and any they were racing with, has finished. */
  async settle(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }
}
