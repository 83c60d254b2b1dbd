import type pg from 'pg';
import type { SqlRunner } from '../protocol/sql-runner.js';
import type { XaCache } from '../protocol/xa-cache.js';
import { suspensionReason, type OutsideFeedHealth } from './feed-health.js';
import { FollowerLease } from './follower-lease.js';

/** Settings of an {@link OutsideChangesFollower}. */
export interface FollowerOptions {
  /** Check the feed (and, leading, apply it) every this many ms, even without notifications (0: never). */
  readonly intervalMs: number;
  /** Serving stops when the feed is down for longer than this (see {@link suspensionReason}). */
  readonly maxLagMs: number;
  /**
   * A new database session for the follower's whole life (advisory lock + LISTEN). Absent: no election, every
   * such follower applies changes, on its interval only.
   */
  readonly session?: () => Promise<pg.Client>;
  /** The cached tables: checked for capture every round, renewed when changes may have been missed. */
  readonly tables: () => Promise<ReadonlyArray<{ schema: string; table: string; logicalTable?: string }>>;
  /** Told when serving must stop (a reason) and when it may go on (`undefined`). */
  readonly onSuspend?: (reason: string | undefined) => void;
  /**
   * Told, every check, which cached tables lack capture now (missing, disabled, out of date): they must not be
   * served (the ORM's capture gate takes this as its answer). `undefined` once stopped: no answer any more.
   */
  readonly onUncaptured?: (tables: readonly string[] | undefined) => void;
}

/**
 * Applies the changes the database captured for transactions that did not run this library's prepare (psql,
 * other programs, statements outside the library's transactions): see `XaCache.applyOutsideChanges`.
 *
 * - **Who**: with `session`, the process holding the follower lock ({@link FollowerLease}); the others only check.
 * - **When**: at once when a capturing transaction commits (the capture function's `pg_notify`, delivered to the
 *   leader's LISTEN), and every `intervalMs` in any case (a notification is lost with its connection).
 * - **Nothing lost**: a change is deleted only once its keys were reached. When the feed itself may have lost
 *   changes (the change table truncated or re-created, capture triggers installed, dropped or disabled: its
 *   identity changed), the leader renews every cached table and records the identity it renewed for in
 *   memcached; until the two agree, no process serves.
 * - **Health**: every process checks the feed every interval (three small catalog and index queries, one
 *   memcached get) and suspends serving when it cannot vouch for the bound ({@link suspensionReason}).
 */
export class OutsideChangesFollower {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;
  #again = false;
  #ticking: Promise<void> | undefined;
  #stopped = false;
  readonly #lease: FollowerLease | undefined;
  readonly #startedAt = Date.now();
  readonly #markerKey: string;
  #markerCurrent = true;
  #uncaptured: string[] = [];
  #lagMs: number | undefined;
  #lastCheckAt: number | undefined;
  #errors = 0;
  #suspended: string | undefined;
  #suspensions = 0;
  #renewals = 0;
  /** When the last run finished without error (ms since the epoch), and the last error, until a run succeeds. */
  lastSuccessAt: number | undefined;
  lastError: unknown;

  constructor(
    private readonly cache: XaCache,
    private readonly db: SqlRunner,
    readonly options: FollowerOptions,
  ) {
    this.#markerKey = `feed:${cache.capture.table}`;
    const { session } = options;
    this.#lease = session
      ? new FollowerLease(session, cache.capture.table, cache.capture.channel, () => this.#wake(), (error) => this.#log('warn', 'lost the follower lock (its connection); another process may take over', error))
      : undefined;
  }

  get intervalMs(): number {
    return this.options.intervalMs;
  }

  /** Whether this process applies the feed (holds the lock, or election is off). */
  get leading(): boolean {
    return this.#lease ? this.#lease.leading : true;
  }

  /** The follower's view of the feed, for statistics. */
  get health(): OutsideFeedHealth {
    return {
      leading: this.leading,
      lagMs: this.#lagMs,
      lastSuccessAt: this.lastSuccessAt,
      lastCheckAt: this.#lastCheckAt,
      lastError: this.lastError === undefined ? undefined : message(this.lastError),
      errors: this.#errors,
      suspended: this.#suspended,
      suspensions: this.#suspensions,
      renewals: this.#renewals,
    };
  }

  /** Applies once now (or joins the run in progress, and runs once more after it). Never rejects. */
  runNow(): Promise<unknown> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = this.cache
      .applyOutsideChanges(this.#lease?.session ?? this.db)
      .then(
        () => {
          this.lastSuccessAt = Date.now();
          this.lastError = undefined;
        },
        (error: unknown) => this.#failed('applying outside changes failed; the next run retries', error),
      )
      .finally(() => {
        this.#running = undefined;
        if (this.#again && !this.#stopped) {
          this.#again = false;
          void this.runNow();
        }
      });
    return this.#running;
  }

  /**
   * One round: take the lead if free; leading, renew the cached tables if changes may have been missed and
   * apply what is pending; then check the feed and decide whether to serve. Never rejects.
   */
  tick(): Promise<void> {
    this.#ticking ??= this.#round().finally(() => (this.#ticking = undefined));
    return this.#ticking;
  }

  async #round(): Promise<void> {
    if (this.#lease && !this.#stopped) {
      const was = this.#lease.leading;
      const got = await this.#lease.tryLead().catch((error: unknown) => this.#failed('could not reach the follower session; retrying', error));
      if (got === true && !was) {
        this.#log('info', 'this process follows the outside-changes feed (it holds the follower lock)');
        // A predecessor that died mid-run left claims that would hold its rows for up to 30 s.
        await this.cache.capture.releaseClaims(this.#lease.session ?? this.db).catch((error: unknown) => this.#failed('could not release old claims', error));
      }
    }
    if (this.leading && !this.#stopped) await this.runNow();
    await this.#check();
  }

  async #check(): Promise<void> {
    try {
      const { identity, oldestAgeMs } = await this.cache.capture.feedState(this.db);
      const missing = await this.cache.capture.missing(this.db, await this.options.tables());
      const uncaptured = missing.map((t) => `${t.schema}.${t.logicalTable ?? t.table}`).sort();
      if (uncaptured.join() !== this.#uncaptured.join() && uncaptured.length > 0) {
        this.cache.options.logger?.('error', `write capture missing or disabled on ${uncaptured.join(', ')}: these tables are not served until it is back`, { tables: uncaptured });
      }
      this.#uncaptured = uncaptured;
      // Every round, not only on a change: a recheck (after an installation) may have replaced the answer since.
      if (!this.#stopped) this.options.onUncaptured?.(uncaptured);
      this.#lagMs = oldestAgeMs;
      this.#lastCheckAt = Date.now();
      const marker = await this.cache.store.get(this.#markerKey);
      // A marker memcached cannot read is no news either way: the last verdict stands.
      if (marker.status !== 'error') this.#markerCurrent = marker.status === 'hit' && marker.item.value.toString() === identity;
      if (!this.#markerCurrent && this.leading && !this.#stopped) await this.#renew(identity);
    } catch (error) {
      this.#failed('checking the outside-changes feed failed; the next check retries', error);
    }
    this.#decide();
  }

  /** Renews every cached table, then records the feed identity it did so for (only once all were reached). */
  async #renew(identity: string): Promise<void> {
    const tables = (await this.options.tables()).map((t) => ({ schema: t.schema, table: t.logicalTable ?? t.table }));
    const unreached = await this.cache.renewTables(tables);
    if (unreached.length > 0) {
      this.#log('warn', `could not renew ${unreached.length} regions after the change feed changed; retrying`);
      return;
    }
    const stored = await this.cache.store.execute([{ op: 'set', key: this.#markerKey, value: Buffer.from(identity), ttl: 0 }] as const);
    if (stored[0].status !== 'stored') return;
    this.#markerCurrent = true;
    this.#renewals++;
    this.#log('warn', `the change table or the capture triggers changed: renewed every cached table (${tables.length}), as changes may have been missed`);
  }

  #decide(): void {
    const reason = suspensionReason({
      now: Date.now(),
      maxLagMs: this.options.maxLagMs,
      startedAt: this.#startedAt,
      leading: this.leading,
      lagMs: this.#lagMs,
      lastCheckAt: this.#lastCheckAt,
      lastSuccessAt: this.lastSuccessAt,
      markerCurrent: this.#markerCurrent,
      lastError: this.lastError === undefined ? undefined : message(this.lastError),
    });
    if (reason === this.#suspended) return;
    const was = this.#suspended;
    this.#suspended = reason;
    if (reason !== undefined && was === undefined) {
      this.#suspensions++;
      this.cache.options.logger?.('error', `the cache stops serving (reads go to the database): ${reason}`, { reason });
    } else if (reason === undefined) this.cache.options.logger?.('info', 'the outside-changes feed caught up: the cache serves again', {});
    this.options.onSuspend?.(reason);
  }

  /** Runs the first round, then one every `intervalMs`; the timer does not keep the process alive. */
  async start(): Promise<void> {
    if (this.#stopped) return;
    await this.tick();
    if (this.options.intervalMs <= 0 || this.#timer) return;
    const next = (): void => {
      this.#timer = setTimeout(() => void this.tick().finally(() => !this.#stopped && next()), this.options.intervalMs);
      this.#timer.unref();
    };
    next();
  }

  /**
   * Stops the rounds, waits for one in progress and ends the follower session (releasing the lock). Lifts its
   * suspensions: the process is then as one that never ran a follower (shutting down, or following elsewhere).
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#ticking;
    await this.#running;
    await this.#lease?.close();
    if (this.#suspended !== undefined) this.options.onSuspend?.((this.#suspended = undefined));
    this.#uncaptured = [];
    this.options.onUncaptured?.(undefined);
  }

  #wake(): void {
    if (!this.#stopped && this.leading) void this.runNow();
  }

  #failed(what: string, error: unknown): void {
    this.lastError = error;
    this.#errors++;
    this.#log('warn', what, error);
  }

  #log(level: 'info' | 'warn', text: string, error?: unknown): void {
    this.cache.options.logger?.(level, text, error === undefined ? {} : { error: message(error) });
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
