import type { ServerProbe } from '../store/cache-store.js';
import type { XaCache } from '../protocol/xa-cache.js';
import type { SqlRunner } from '../protocol/sql-runner.js';
import type { SweepOptions, SweepReport } from '../protocol/recovery-sweeper.js';
import { countInDoubt, type InDoubtCounts } from './in-doubt-counts.js';
import { OperationsError } from './operations-error.js';
import type { OutsideChangesFollower } from './outside-changes-follower.js';
import { prometheusText, type SweeperCounters } from './prometheus-text.js';

/** Settings of the sweeps a {@link XaCacheRuntime} runs. */
export interface RuntimeSweepOptions {
  /** Sweep every this many milliseconds after the startup sweep (0 or absent: only at startup). */
  readonly sweepIntervalMs?: number;
  /** Options of every sweep; `minAgeMs` defaults to 10000 (rows that young may be promotes in flight). */
  readonly sweep?: Omit<SweepOptions, 'onProgress' | 'maxBatches'>;
  /** Called after every sweep, startup included. */
  readonly onSweep?: (report: SweepReport) => void;
}

const DEFAULT_MIN_AGE_MS = 10_000;

/**
 * The operational side of one process's cache: its recovery sweeps (once at startup, then optionally on an
 * interval, never two at once), its statistics and their Prometheus export. Made by {@link startXaCache}.
 */
export class XaCacheRuntime {
  readonly #options: RuntimeSweepOptions;
  #timer: NodeJS.Timeout | undefined;
  #followUp: NodeJS.Timeout | undefined;
  #running: Promise<SweepReport> | undefined;
  #stopped = false;
  #counters = { sweeps: 0, failures: 0, resolved: 0, unresolved: 0, lastSweepAt: undefined as number | undefined };
  #lastReport: SweepReport | undefined;
  #lastError: unknown;
  readonly #onStop: Array<() => Promise<void>> = [];
  #follower: OutsideChangesFollower | undefined;
  /** What the startup probe of `startXaCache` found: one entry per memcached server (empty if not probed). */
  readonly memcachedAtStart: readonly ServerProbe[] = [];

  constructor(
    /** The protocol of the ORM (counters in `cache.stats`). */
    readonly cache: XaCache,
    /** A runner outside any transaction (the ORM's pool). */
    readonly db: SqlRunner,
    options: RuntimeSweepOptions = {},
  ) {
    const interval = options.sweepIntervalMs ?? 0;
    if (!Number.isInteger(interval) || interval < 0) throw OperationsError.invalid('sweepIntervalMs', interval, 'a whole number of milliseconds, 0 or more');
    this.#options = options;
  }

  /** The report of the last sweep that finished, if any. */
  get lastSweep(): SweepReport | undefined {
    return this.#lastReport;
  }

  /** The error of the last sweep that failed, until a sweep succeeds. */
  get lastSweepError(): unknown {
    return this.#lastError;
  }

  /** Sweeps run, failed, and rows resolved and left, so far. */
  get sweeper(): SweeperCounters {
    return { ...this.#counters };
  }

  /** The minimum age of the rows swept and counted as in doubt. */
  get minAgeMs(): number {
    return this.#options.sweep?.minAgeMs ?? DEFAULT_MIN_AGE_MS;
  }

  /**
   * Runs one sweep now, or joins the one already running. Rejects if the sweep fails (it is also counted and
   * logged); the periodic sweeps keep going either way.
   */
  sweepNow(): Promise<SweepReport> {
    if (this.#stopped) return Promise.reject(OperationsError.stopped());
    this.#running ??= this.#sweep().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #sweep(): Promise<SweepReport> {
    const logger = this.cache.options.logger;
    const started = performance.now();
    try {
      const report = await this.cache.sweep(this.db, { ...this.#options.sweep, minAgeMs: this.minAgeMs });
      this.#counters.sweeps++;
      this.#counters.resolved += report.resolved;
      this.#counters.unresolved += report.unresolved;
      this.#counters.lastSweepAt = Date.now();
      this.#lastReport = report;
      this.#lastError = undefined;
      if (report.resolved + report.unresolved > 0) {
        logger?.('info', 'recovery sweep', { ...report, ms: Math.round(performance.now() - started) });
      } else logger?.('debug', 'recovery sweep found nothing in doubt');
      this.#options.onSweep?.(report);
      return report;
    } catch (error) {
      this.#counters.failures++;
      this.#lastError = error;
      logger?.('error', 'recovery sweep failed; the next one retries', { error: error instanceof Error ? error.message : String(error) });
      throw error;
    }
  }

  /** Starts the periodic sweeps (if an interval was given). The timer does not keep the process alive. */
  schedule(): void {
    const interval = this.#options.sweepIntervalMs ?? 0;
    if (interval === 0 || this.#stopped || this.#timer) return;
    const tick = (): void => {
      this.#timer = setTimeout(() => {
        this.sweepNow()
          .catch(() => undefined)
          .finally(() => {
            if (!this.#stopped) tick();
          });
      }, interval);
      this.#timer.unref();
    };
    tick();
  }

  /**
   * After the startup sweep: if log rows were left (too young to sweep, and their writer's database session
   * still open), sweeps once more when they have all reached {@link minAgeMs}, so that with the default options
   * (no periodic sweeps) no row found at startup outlives `minAgeMs` plus one sweep. Rows of a process that died
   * are normally swept at startup already: their session is gone. The timer does not keep the process alive.
   */
  async scheduleFollowUp(): Promise<void> {
    if (this.#stopped || this.#followUp) return;
    if ((await this.cache.log.count(this.db)) === 0) return;
    this.#followUp = setTimeout(() => {
      this.sweepNow().catch(() => undefined);
    }, this.minAgeMs);
    this.#followUp.unref();
  }

  /** Counts the in-doubt rows of the log (older than {@link minAgeMs}). */
  inDoubt(): Promise<InDoubtCounts> {
    return countInDoubt(this.db, this.cache.log.table, this.minAgeMs);
  }

  /**
   * Every counter in Prometheus' text format: the protocol's and per region, the store's, the sweeper's, and the
   * in-doubt rows of the log (read now; omitted if the database cannot be reached, so a scrape still answers).
   */
  async metrics(labels: Readonly<Record<string, string>> = {}): Promise<string> {
    let inDoubt: InDoubtCounts | undefined;
    try {
      inDoubt = await this.inDoubt();
    } catch {
      inDoubt = undefined;
    }
    return prometheusText(
      {
        stats: this.cache.stats,
        store: this.cache.store.counters,
        inDoubt,
        sweeper: this.sweeper,
        pendingLogDeletes: this.cache.pendingLogDeletes,
        ...(this.#follower ? { outsideFeed: this.#follower.health } : {}),
      },
      labels,
    );
  }

  /** The outside-changes follower of this process, if it runs one. */
  get follower(): OutsideChangesFollower | undefined {
    return this.#follower;
  }

  /** @internal the outside-changes follower: exported in the metrics, stopped with the runtime */
  attachFollower(follower: OutsideChangesFollower): void {
    this.#follower = follower;
    this.onStop(() => follower.stop());
  }

  /** @internal work started with the runtime that stops with it */
  onStop(stop: () => Promise<void>): void {
    this.#onStop.push(stop);
  }

  /** Stops the periodic sweeps and waits for a sweep in progress. Call it before `orm.close()`. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#onStop.map((stop) => stop()));
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#followUp) clearTimeout(this.#followUp);
    this.#timer = undefined;
    await this.#running?.catch(() => undefined);
  }
}
