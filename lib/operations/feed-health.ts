/** What a process knows about the outside-changes feed, as exported in its statistics. */
export interface OutsideFeedHealth {
  /** Whether this process is the elected follower (always true when election is off). */
  readonly leading: boolean;
  /** Age (database clock) of the oldest committed outside change not applied yet, at the last check; 0: none. */
  readonly lagMs: number | undefined;
  /** When this process last applied outside changes without error (ms since the epoch), if it leads. */
  readonly lastSuccessAt: number | undefined;
  /** When the feed was last checked without error. */
  readonly lastCheckAt: number | undefined;
  /** The last error of an apply run or a check, until one succeeds. */
  readonly lastError: string | undefined;
  /** Apply runs and checks that failed. */
  readonly errors: number;
  /** Why reads are not served from the cache now (the feed is down), if they are not. */
  readonly suspended: string | undefined;
  /** Times serving was suspended. */
  readonly suspensions: number;
  /** Times every cached table was renewed because changes may have been missed. */
  readonly renewals: number;
}

/** The facts a health decision is made from. */
export interface FeedFacts {
  readonly now: number;
  readonly maxLagMs: number;
  readonly startedAt: number;
  readonly leading: boolean;
  readonly lagMs: number | undefined;
  readonly lastCheckAt: number | undefined;
  readonly lastSuccessAt: number | undefined;
  /** False when the change table or the capture triggers changed and the cached tables are not renewed yet. */
  readonly markerCurrent: boolean;
  readonly lastError: string | undefined;
}

/**
 * Whether the cache may vouch for the bound (G13), and if not why: serving stops when
 *
 * - changes may have been missed and the tables are not renewed yet (at once: entries may be stale now);
 * - the oldest outside change has waited more than `maxLagMs` (nobody applies them, or too slowly);
 * - the leader has not completed a run for `maxLagMs`, or nobody could read the feed for `maxLagMs`.
 *
 * (A table whose capture is missing or disabled stops being served on its own: see the follower's `onUncaptured`.)
 * The last two count from the follower's start, so a process that just started is not judged before it tried.
 */
export function suspensionReason(f: FeedFacts): string | undefined {
  const since = (t: number | undefined): number => f.now - (t ?? f.startedAt);
  const error = f.lastError ? `: ${f.lastError}` : '';
  if (!f.markerCurrent) return 'outside changes may have been missed (the change table or the capture triggers changed) and the cached tables are not renewed yet';
  if (f.lagMs !== undefined && f.lagMs > f.maxLagMs) return `the oldest outside change has waited ${Math.round(f.lagMs)} ms to be applied (bound ${f.maxLagMs} ms)`;
  if (since(f.lastCheckAt) > f.maxLagMs) return `the change feed could not be read for ${Math.round(since(f.lastCheckAt))} ms${error}`;
  if (f.leading && since(f.lastSuccessAt) > f.maxLagMs) return `outside changes could not be applied for ${Math.round(since(f.lastSuccessAt))} ms${error}`;
  return undefined;
}
