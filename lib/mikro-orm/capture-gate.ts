/**
 * The safety net under the database-side write capture: before this process serves anything from the cache,
 * it checks once (one catalog query) that every entity table has its capture triggers, and stops caching the
 * tables that lack them (logged), so an application that skipped the installation or `startXaCache` is never
 * served what a write it cannot see left stale. `installWriteCapture` asks for a new check. While an
 * outside-changes follower runs, its periodic check (over every captured table) is the gate's answer
 * ({@link report}), so a capture dropped or disabled later stops its table being served too.
 */
export class CaptureGate {
  #missing: ReadonlySet<string> | undefined;
  #checking: Promise<void> | undefined;
  #check: (() => Promise<string[]>) | undefined;
  #answers = 0;

  constructor(private readonly onMissing: (tables: readonly string[]) => void) {}

  /** @internal set by the driver once metadata is known: resolves to the `schema.table`s without capture */
  setCheck(check: () => Promise<string[]>): void {
    this.#check = check;
    this.#missing = undefined;
  }

  /** Whether the check has run or an answer was reported (then {@link allows} answers at once). */
  get ready(): boolean {
    return this.#missing !== undefined || this.#check === undefined;
  }

  /** @internal the follower's check: the `schema.table`s without capture now (replaces the last answer) */
  report(missing: Iterable<string>): void {
    this.#missing = new Set(missing);
    this.#answers++;
  }

  /** Runs the check if it has not run yet; concurrent callers share one. A failed check is retried next time. */
  async ensure(): Promise<void> {
    if (this.ready || this.#check === undefined) return;
    const answered = this.#answers;
    this.#checking ??= (this.#check as () => Promise<string[]>)()
      .then((missing) => {
        if (this.#answers !== answered) return; // the follower answered meanwhile (over more tables): it stands
        this.#missing = new Set(missing);
        if (missing.length > 0) this.onMissing(missing);
      })
      .finally(() => (this.#checking = undefined));
    await this.#checking;
  }

  /** Whether a table may be cached: checked and found with its capture (no answer yet, or a failed check: no). */
  allows(table: string): boolean {
    if (this.#missing !== undefined) return !this.#missing.has(table);
    return this.#check === undefined;
  }

  /** Forgets the last answer: the next cache use checks again (after an installation). */
  recheck(): void {
    this.#missing = undefined;
  }
}
