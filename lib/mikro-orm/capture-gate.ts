/**
 * The safety net under the database-side write capture: before this process serves anything from the cache,
 * it checks once (one catalog query) that every entity table has its capture triggers, and stops caching the
 * tables that lack them (logged), so an application that skipped the installation or `startXaCache` is never
 * served what a write it cannot see left stale. `installWriteCapture` asks for a new check.
 */
export class CaptureGate {
  #missing: ReadonlySet<string> | undefined;
  #checking: Promise<void> | undefined;
  #check: (() => Promise<string[]>) | undefined;

  constructor(private readonly onMissing: (tables: readonly string[]) => void) {}

  /** @internal set by the driver once metadata is known: resolves to the `schema.table`s without capture */
  setCheck(check: () => Promise<string[]>): void {
    this.#check = check;
    this.#missing = undefined;
  }

  /** Whether the check has run (then {@link allows} answers at once). */
  get ready(): boolean {
    return this.#missing !== undefined || this.#check === undefined;
  }

  /** Runs the check if it has not run yet; concurrent callers share one. A failed check is retried next time. */
  async ensure(): Promise<void> {
    if (this.ready || this.#check === undefined) return;
    this.#checking ??= (this.#check as () => Promise<string[]>)()
      .then((missing) => {
        this.#missing = new Set(missing);
        if (missing.length > 0) this.onMissing(missing);
      })
      .finally(() => (this.#checking = undefined));
    await this.#checking;
  }

  /** Whether a table may be cached: checked and found with its capture (no answer yet, or a failed check: no). */
  allows(table: string): boolean {
    if (this.#check === undefined) return true;
    return this.#missing !== undefined && !this.#missing.has(table);
  }

  /** Forgets the last answer: the next cache use checks again (after an installation). */
  recheck(): void {
    if (this.#check) this.#missing = undefined;
  }
}
