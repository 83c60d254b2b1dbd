/**
 * Counters of what the protocol did, in the spirit of Hibernate's statistics: read them in-process
 * (`cache.stats.snapshot()`); the operations layer exports them.
 */
export class CacheStats {
  /** Reads served from the cache. */
  hits = 0;
  /** Reads not served from the cache. */
  misses = 0;
  /** Misses because a transaction held the key (the reader went to the database and did not fill). */
  lockBypasses = 0;
  /** Values stored by readers after a miss. */
  puts = 0;
  /** Fills refused because the key changed after the lease was taken: the stale fills this protocol prevents. */
  staleFillsRefused = 0;
  /** Times a reader waited for another reader's lease. */
  leaseWaits = 0;
  /** Entries whose bytes were not ours (foreign, corrupt, truncated): read as misses. */
  foreignEntries = 0;
  /** Values found but read under a region generation that is no longer current. */
  staleResults = 0;
  /** Transactions prepared, promoted, released. */
  prepares = 0;
  promotes = 0;
  releases = 0;
  /** Keys evicted by promote or the sweeper. */
  evictions = 0;
  /** Keys a promote or release could not reach; left to lock expiry and the sweeper. */
  unresolvedKeys = 0;
  /** Transactions committed under the `degrade` policy with keys that could not be locked. */
  degradedCommits = 0;
  /** Log rows resolved by the recovery sweeper. */
  sweptTransactions = 0;
  /** Store errors by kind. */
  readonly errors: Record<string, number> = {};

  /** Counts a store error of a kind. */
  error(kind: string): void {
    this.errors[kind] = (this.errors[kind] ?? 0) + 1;
  }

  /** A plain copy of every counter. */
  snapshot(): Record<string, number | Record<string, number>> {
    const copy: Record<string, number | Record<string, number>> = {};
    for (const [name, value] of Object.entries(this)) copy[name] = typeof value === 'number' ? value : { ...(value as Record<string, number>) };
    return copy;
  }
}
