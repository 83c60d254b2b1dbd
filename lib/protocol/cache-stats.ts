import { startAll, type CacheObserver, type CacheOperation, type ObservedAttributes, type OperationEnd } from './cache-observer.js';

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
  /** Times a reader waited for a writer's promote (`lockWaitMs`). */
  lockWaits = 0;
  /** Entries whose bytes were not ours (foreign, corrupt, truncated): read as misses. */
  foreignEntries = 0;
  /** Entries refused because their authentication failed (forged, copied from another key, or undecryptable). */
  forgedEntries = 0;
  /**
   * Entries that were not written for the key they were read under: a value bound to another key or database
   * (copied), or whose payload names other data than its key (a row of another primary key). Misses, replaced by
   * the next fill. Also counted in `foreignEntries` when the envelope itself named another key.
   */
  keyMismatches = 0;
  /** Values with a valid envelope whose payload the reader could not decode: misses, replaced by the next fill. */
  undecodablePayloads = 0;
  /**
   * Reads of the MikroORM layer sent to the database because the schema their unqualified tables resolve to is not
   * known (`search_path` changed by a statement, or resolving elsewhere than the default schema at connect).
   */
  searchPathBypasses = 0;
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
  /** Keys and regions that only the database-side capture named (triggers, cascades, Kysely, functions…). */
  capturedKeys = 0;
  /** Captured changes of outside writers (transactions that did not run prepare) applied as invalidations. */
  outsideChanges = 0;
  /** Log rows resolved by the recovery sweeper. */
  sweptTransactions = 0;
  /** memcached servers that did not answer the probe of `startXaCache` (each start adds the servers it missed). */
  serversUnreachableAtStart = 0;
  /** Store errors by kind. */
  readonly errors: Record<string, number> = {};
  /** Timing hooks; private so `snapshot()` stays flat. */
  #observers: readonly CacheObserver[] = [];
  /** Read counters per region label (see {@link CacheStats.region}); private so `snapshot()` stays flat. */
  readonly #regions = new Map<string, RegionStats>();

  /** Whether any observer is installed: the one check the hot paths make before timing anything. */
  get observed(): boolean {
    return this.#observers.length > 0;
  }

  /** Installs a timing observer (metrics histograms, tracing); returns the function that removes it. */
  observe(observer: CacheObserver): () => void {
    this.#observers = [...this.#observers, observer];
    return () => {
      this.#observers = this.#observers.filter((o) => o !== observer);
    };
  }

  /** Starts an observed operation; call only when {@link observed} (callers build `attributes` only then). */
  start(operation: CacheOperation, attributes: ObservedAttributes): OperationEnd {
    return startAll(this.#observers, operation, attributes);
  }

  /** Counts a store error of a kind. */
  error(kind: string): void {
    this.errors[kind] = (this.errors[kind] ?? 0) + 1;
  }

  /**
   * The read counters of one region label, created on first use: `rows:<schema>.<table>` (an entity's rows),
   * `coll:<schema>.<table>` (collections kept in a table), `t:<schema>.<table>` (query results; results over
   * several tables are labelled with their regions joined by `+`). Past {@link MAX_REGION_LABELS} labels, new
   * ones are counted under `other`, so a stream of distinct queries cannot grow memory without bound.
   */
  region(label: string): RegionStats {
    let counters = this.#regions.get(label);
    if (!counters) {
      if (this.#regions.size >= MAX_REGION_LABELS) return this.region('other');
      counters = new RegionStats();
      this.#regions.set(label, counters);
    }
    return counters;
  }

  /** Every region label seen so far with a copy of its counters. */
  regions(): Map<string, RegionStats> {
    return new Map([...this.#regions].map(([label, counters]) => [label, Object.assign(new RegionStats(), counters)]));
  }

  /** A plain copy of every counter. */
  snapshot(): Record<string, number | Record<string, number>> {
    const copy: Record<string, number | Record<string, number>> = {};
    for (const [name, value] of Object.entries(this)) copy[name] = typeof value === 'number' ? value : { ...(value as Record<string, number>) };
    return copy;
  }
}

/** How many region labels {@link CacheStats.region} tracks before it counts new ones under `other`. */
export const MAX_REGION_LABELS = 1000;

/** The read-side counters of one region label. */
export class RegionStats {
  hits = 0;
  misses = 0;
  puts = 0;
  lockBypasses = 0;
  leaseWaits = 0;
  staleFillsRefused = 0;
}

/** The region label of a read over these regions (`options.label` wins); `''` when the read named none. */
export function regionLabel(regions: readonly string[] | ReadonlyMap<string, string> | undefined, label?: string): string {
  if (label !== undefined) return label;
  if (regions === undefined) return '';
  const names = Array.isArray(regions) ? (regions as readonly string[]) : [...(regions as ReadonlyMap<string, string>).keys()];
  return names.length <= 1 ? (names[0] ?? '') : [...names].sort().join('+');
}
