import type { CacheAdapter } from '@mikro-orm/core';
import { XaCache } from '../protocol/xa-cache.js';
import type { FillTicket } from '../protocol/cache-reader.js';
import type { ProtocolOptions } from '../protocol/protocol-options.js';
import type { DataIdentity } from '../protocol/data-identity.js';
import { MemcachedStore } from '../store/memcached-store.js';
import type { MemcachedStoreOptions } from '../store/memcached-store-options.js';
import type { MetadataStorage } from '@mikro-orm/core';
import { keys, regions } from './cache-keys.js';
import { schemeName, type SchemeGuard } from '../protocol/conjunction-schemes.js';
import { conjunctionOf, type Conjunction } from './predicate-plan.js';
import { currentCall } from './call-context.js';
import { XaConfigError } from './xa-errors.js';
import { statementTables } from './sql-tables.js';
import { CaptureGate } from './capture-gate.js';
import { encodeValue } from './value-codec.js';
import { acceptDecodable } from './payload-checks.js';
import { SearchPathGuard } from './search-path-guard.js';
import { PromoteTracker } from './promote-tracker.js';

/** Options of {@link XaCacheAdapter}, given as `resultCache.options` (or to `withXaCache`). */
export interface XaCacheOptions extends ProtocolOptions {
  /** memcached servers, `host:port`. Required. */
  servers: readonly string[];
  /** Key prefix, so several applications can share memcached. Default `'xa'`. */
  namespace?: string;
  /** Connection settings of the memcached client (timeouts, back-off, value size, SASL). */
  store?: Omit<MemcachedStoreOptions, 'servers' | 'namespace'>;
  /** Default TTL of cached rows and collections, in seconds. Default `valueTtlSeconds` (3600). */
  rowTtlSeconds?: number;
  /** Schema of unqualified tables. Default `'public'`. */
  defaultSchema?: string;
  /**
   * Mark the pool's sessions as the application's own (`-c xa_cache.managed=on` in their startup options), so
   * the capture does not wake the outside-changes follower for transactions that run prepare. Default true. Set
   * false behind a pooler that refuses startup options (PgBouncer without `options` in
   * `ignore_startup_parameters`): every commit then notifies, which costs a follower run per commit.
   */
  markPoolSessions?: boolean;
  /**
   * Write-through (default true): after a commit, rows of cached entities the transaction inserted or updated hold
   * their committed image instead of being evicted, so the next read is a hit. Costs one SELECT per table written,
   * inside the transaction just before COMMIT (see docs/protocol.md, "Write-through"). Set false for write-heavy
   * tables whose rows are rarely read again soon.
   */
  writeThrough?: boolean;
  /**
   * Query results whose condition is a conjunction of equalities on one table depend on that conjunction instead of
   * the whole table (docs/usage.md, "Which query results are invalidated by what a write changed"). Default true;
   * false makes every result depend on its tables, as before (writers renew conjunctions either way).
   */
  conjunctionRegions?: boolean;
  /** Set by MikroORM from `resultCache.expiration`: default TTL of query results, in milliseconds. */
  expiration?: number;
}

interface PendingFill {
  readonly ticket: FillTicket;
  readonly regions: readonly string[];
  /** For a result read under conjunction regions: its one table, the only one the query may have read. */
  readonly conjunctionOf?: string;
}

/** The regions a read checks, and for conjunction regions the guard of their scheme set. */
interface ReadPlan {
  readonly regions: readonly string[];
  readonly guard?: SchemeGuard;
  readonly table?: string;
}

const MAX_PENDING_FILLS = 10_000;
const MAX_REMEMBERED_REGIONS = 50_000;

/**
 * MikroORM's `CacheAdapter` for the result cache, and the owner of the memcached client and the protocol for
 * the whole ORM: MikroORM builds one per ORM as `new XaCacheAdapter({ expiration, ...options })`, and the
 * XA driver finds it through `config.getResultCacheAdapter()`.
 *
 * A query result is valid while every table it read is unchanged: the tables are those of the SQL the query
 * ran and of the rows and collections it was served from the cache (the driver records both), remembered per key
 * so the next read checks them in the same round trip. Results are never read or stored inside a transaction
 * (the XA entity manager bypasses the cache there).
 */
export class XaCacheAdapter implements CacheAdapter {
  /** The protocol, shared by the driver, the connection and the subscriber. */
  readonly xa: XaCache;
  readonly options: Readonly<XaCacheOptions>;
  /** Which calls may use the cache given what `search_path` makes of unqualified table names. */
  readonly searchPath: SearchPathGuard;
  /** Promotes still running after their commit returned; settled before the memcached client closes. */
  readonly promotes = new PromoteTracker();
  readonly #store: MemcachedStore;
  readonly #pending = new Map<string, PendingFill>();
  readonly #regionsOf = new Map<string, readonly string[]>();
  #attached = false;
  #identity: DataIdentity | undefined;
  #metadata: MetadataStorage | undefined;
  readonly #conjunctions = new Map<string, Conjunction | null>();

  constructor(options: XaCacheOptions) {
    if (options === null || typeof options !== 'object') throw XaConfigError.missingOptions();
    if (!Array.isArray(options.servers) || options.servers.length === 0) throw XaConfigError.noServers();
    const rowTtl = options.rowTtlSeconds;
    if (rowTtl !== undefined && (!Number.isInteger(rowTtl) || rowTtl < 0)) throw XaConfigError.invalid('rowTtlSeconds', rowTtl, 'a whole number of seconds, 0 or more');
    if (options.writeThrough !== undefined && typeof options.writeThrough !== 'boolean') throw XaConfigError.invalid('writeThrough', options.writeThrough, 'true or false');
    if (options.conjunctionRegions !== undefined && typeof options.conjunctionRegions !== 'boolean') throw XaConfigError.invalid('conjunctionRegions', options.conjunctionRegions, 'true or false');
    if (options.expiration !== undefined && (typeof options.expiration !== 'number' || !(options.expiration >= 0))) {
      throw XaConfigError.invalid('resultCache.expiration', options.expiration, 'a number of milliseconds, 0 or more');
    }
    this.options = options;
    this.#store = new MemcachedStore({ ...saslFromEnvironment(options.store), servers: options.servers, namespace: options.namespace });
    const { servers: _s, namespace: _n, store: _st, rowTtlSeconds: _r, defaultSchema: _d, expiration: _e, markPoolSessions: _m, writeThrough: _w, conjunctionRegions: _c, ...protocol } = options;
    this.xa = new XaCache(this.#store, { logNamespace: options.namespace ?? 'xa', ...protocol });
    this.searchPath = new SearchPathGuard(this.defaultSchema, this.xa.stats, () => this.xa.options.logger);
  }

  /** The schema of unqualified tables. */
  get defaultSchema(): string {
    return this.options.defaultSchema ?? 'public';
  }

  /** Default TTL of rows and collections, in seconds. */
  get rowTtlSeconds(): number {
    return this.options.rowTtlSeconds ?? this.xa.options.valueTtlSeconds;
  }

  /** Tables (`schema.table`) this process no longer caches (their write capture is missing). */
  readonly stoppedTables = new Set<string>();

  /**
   * Why nothing is served from the cache in this process right now, if so: the outside-changes feed is down (the
   * follower has not applied outside writers' changes within `outsideChangesMaxLagMs`, or changes may have been
   * missed and not yet renewed), so cached entries may predate a committed write. Every read, of rows,
   * collections and query results, then goes to the database (and stores nothing); set and cleared by the
   * follower's health check.
   */
  servingSuspended: string | undefined;

  /** Stops caching rows, collections and query results of these tables in this process. */
  stopCaching(tables: Iterable<string>): void {
    for (const table of tables) this.stoppedTables.add(table);
  }

  /** Checks, at the first cache use, that every entity table has its write capture (see {@link CaptureGate}). */
  /** @internal Set once any entity manager of the ORM had a filter added (see `leanFindOne`). */
  entityManagerFilters = false;

  readonly captureGate = new CaptureGate((tables) =>
    this.xa.options.logger?.('warn', `write capture missing on ${tables.join(', ')}: these tables are not cached by this process; run "mikro-orm-xa-cache capture --apply" or installWriteCapture(orm)`, { tables }),
  );

  /**
   * Whether rows, collections and results of a table may be served and stored by this process: serving is not
   * suspended ({@link servingSuspended}), caching of the table was not stopped, and the capture gate (or the
   * follower's check, which feeds it) found its write capture.
   */
  isCacheable(table: string): boolean {
    return this.servingSuspended === undefined && !this.stoppedTables.has(table) && this.captureGate.allows(table);
  }

  /**
   * The identity of the database the cache serves (`<system identifier>.<database>`), known once the primary
   * connection connected; until then every read goes to the database (MikroORM connects lazily, at the first
   * query, which may come after the first cache lookup).
   */
  get identity(): DataIdentity | undefined {
    return this.#identity;
  }

  /**
   * @internal the connection, at connect: scopes every key (the store's prefix, and what entries are bound and
   * authenticated for) to the database's identity, so databases sharing memcached and a namespace never meet.
   */
  bindIdentity(identity: DataIdentity): void {
    if (identity === this.#identity) return;
    this.#store.scopeTo(identity);
    this.xa.scopeTo(identity);
    this.#pending.clear(); // leases taken in another scope must not be filled in this one
    this.#identity = identity;
  }

  /** @internal the driver, once metadata is known: query results may then depend on conjunctions. */
  useMetadata(metadata: MetadataStorage): void {
    this.#metadata = metadata;
  }

  /** @internal the XA connection announces itself; without it nothing would invalidate what is cached. */
  attach(): void {
    this.#attached = true;
  }

  #assertAttached(): void {
    if (!this.#attached) throw XaConfigError.driverMissing();
  }

  /** @inheritDoc */
  async get<T = unknown>(name: string): Promise<T | undefined> {
    this.#assertAttached();
    if (this.#identity === undefined) return undefined; // not connected yet: the database answers, nothing is stored
    if (!this.searchPath.allowsResults()) return undefined;
    if (this.servingSuspended !== undefined) return undefined; // the outside-changes feed is down: see servingSuspended
    const key = this.#queryKey(name);
    const scoped = key; // leases and remembered regions are per schema too: two schemas may ask one name at once
    if (!this.captureGate.ready) await this.captureGate.ensure().catch(() => undefined);
    const remembered = this.#regionsOf.get(scoped);
    let plan: ReadPlan = remembered ? { regions: remembered } : await this.#plan(name);
    if (plan.regions.some((region) => region.startsWith('t:') && !this.isCacheable(region.slice(2)))) return undefined;
    if (plan.table !== undefined && !this.isCacheable(plan.table)) return undefined;
    // A miss on a result another reader is computing waits for it (bounded by leaseWaitMs): a herd costs one query.
    // Statistics of results read by conjunction are counted under their table, as before (one label per table).
    const label = plan.table === undefined ? undefined : regions.query(plan.table);
    let read = await this.xa.reader.readWaiting(key, label === undefined ? { regions: plan.regions, accept: acceptDecodable } : { regions: plan.regions, guard: plan.guard, label, accept: acceptDecodable });
    if (read.status === 'miss' && read.reason === 'unguarded') {
      // The table's scheme set is not the one this process knew (lost, re-created): depend on the table this time.
      plan = { regions: this.#regionsKnownNow(name) };
      read = await this.xa.reader.readWaiting(key, { regions: plan.regions, accept: acceptDecodable });
    }
    const stored = read.status === 'miss' ? read.storedRegions : undefined;
    // Conjunction regions are trusted only with their scheme set's guard: never re-read under them without it. A
    // result planned by conjunction that was stored under its table is replaced by this read's fill.
    if (stored && plan.table === undefined && !stored.some(isConjunctive)) {
      // Stored under tables this process did not know yet: check those instead (one more round trip, once).
      plan = { regions: stored };
      this.#remember(scoped, stored);
      if (read.status === 'miss' && read.ticket) await this.xa.reader.abandon(read.ticket);
      read = await this.xa.reader.readWaiting(key, { regions: stored, accept: acceptDecodable });
    }
    if (read.status === 'hit') return read.value as T;
    if (read.ticket) {
      if (this.#pending.size >= MAX_PENDING_FILLS) this.#pending.clear();
      this.#pending.set(scoped, plan.table === undefined ? { ticket: read.ticket, regions: plan.regions } : { ticket: read.ticket, regions: plan.regions, conjunctionOf: plan.table });
    }
    return undefined;
  }

  /**
   * The regions of a result: its conjunctions (with the table-wide generation and the scheme guard) when its key
   * names a conjunction of one table whose scheme is established, else the tables known now.
   */
  async #plan(name: string): Promise<ReadPlan> {
    const fallback: ReadPlan = { regions: this.#regionsKnownNow(name) };
    const query = currentCall().query;
    if (!this.#metadata || !query || this.options.conjunctionRegions === false) return fallback;
    const conjunction = this.#conjunctionOf(name, query.schema);
    if (!conjunction || [...query.tables].some((table) => table !== conjunction.table)) return fallback;
    const { table, columns, combos } = conjunction;
    const scheme = schemeName(columns);
    let set = this.xa.schemes.cached(table);
    if (!set?.schemes.some((s) => s.established && schemeName(s.columns) === scheme)) {
      set = await this.xa.schemes.establish(table, columns, regions.query(table));
      if (!set) return fallback;
    }
    const version = set.version;
    const names = [regions.tableWide(table), ...combos.map((values) => regions.conjunction(table, version, columns, values))].sort();
    return { regions: names, guard: this.xa.schemes.guard(table, columns, version), table };
  }

  /** @inheritDoc */
  async set(name: string, data: unknown, _origin: string, expiration?: number): Promise<void> {
    this.#assertAttached();
    const scoped = this.#queryKey(name);
    const pending = this.#pending.get(scoped);
    if (!pending) return; // no lease: a writer held the key, or another reader is filling it
    this.#pending.delete(scoped);
    if (currentCall().query?.readFromReplica) {
      // A replica may not have replayed the commit that invalidated this key: its answer must not be stored.
      await this.xa.reader.abandon(pending.ticket);
      return;
    }
    const needed = this.#regionsKnownNow(name);
    const table = pending.conjunctionOf;
    const covered = table === undefined ? needed.every((region) => pending.regions.includes(region)) : [...(currentCall().query?.tables ?? [])].every((t) => t === table);
    if (!covered) {
      // The query read tables whose generations were not checked before it ran: a fill could be stale.
      this.#remember(scoped, needed);
      await this.xa.reader.abandon(pending.ticket);
      return;
    }
    const ms = expiration ?? this.options.expiration ?? 1000;
    await this.xa.reader.fill(pending.ticket, encodeValue(data), Math.max(1, Math.ceil(ms / 1000)));
  }

  /** @inheritDoc — `em.clearCache(key)`: evicts the result now. */
  async remove(name: string): Promise<void> {
    const key = this.#queryKey(name);
    this.#regionsOf.delete(key);
    await this.xa.evict([key]);
  }

  /**
   * The key of a result: MikroORM's key, scoped by the schema of the call when that is not the default schema
   * (MikroORM's key does not say it for a named key, nor for its `schema` option). Without the scope, two tenants
   * asking one name would share one entry.
   */
  #queryKey(name: string): string {
    const schema = currentCall().query?.schema;
    return schema === undefined || schema === this.defaultSchema ? keys.query(name) : keys.schemaQuery(schema, name);
  }

  /**
   * memcached cannot drop one application's keys without dropping everything, so clearing is refused rather than
   * pretended. MikroORM itself never calls it; evict named results with `em.clearCache(key)`.
   */
  clear(): never {
    throw XaConfigError.clearUnsupported();
  }

  /** @inheritDoc */
  async close(): Promise<void> {
    await this.promotes.settle(); // a promote cut short would leave its keys locked until they expire
    await this.#store.close();
  }

  /** The regions of a key known at this point of the query: from the key itself and the tables seen so far. */
  #regionsKnownNow(name: string): string[] {
    const known = new Set(regionsFromKey(name, this.defaultSchema));
    for (const table of currentCall().query?.tables ?? []) known.add(regions.query(table));
    return [...known].sort();
  }

  /** {@link conjunctionOf}, remembered per key and schema (the hit path asks it on every read). */
  #conjunctionOf(name: string, schema: string | undefined): Conjunction | undefined {
    const id = `${schema ?? ''}\u0000${name}`;
    const known = this.#conjunctions.get(id);
    if (known !== undefined) return known ?? undefined;
    const found = conjunctionOf(name, this.#metadata as MetadataStorage, schema, this.defaultSchema);
    if (this.#conjunctions.size >= MAX_REMEMBERED_REGIONS) this.#conjunctions.clear();
    this.#conjunctions.set(id, found ?? null);
    return found;
  }

  #remember(name: string, names: readonly string[]): void {
    if (this.#regionsOf.size >= MAX_REMEMBERED_REGIONS) this.#regionsOf.clear();
    this.#regionsOf.set(name, names);
  }
}

/** Whether a region is one of those trusted only under a scheme guard (conjunctions and the table-wide generation). */
function isConjunctive(region: string): boolean {
  return region.startsWith('p:') || region.startsWith('tw:');
}

/**
 * Regions known from the key alone: the root table of an `em.find`-style key (`[[schema, table, …], …]`), or
 * every table of a QueryBuilder key's SQL (`["qb.execute", sql, …]`).
 */
function regionsFromKey(name: string, defaultSchema: string): string[] {
  if (!name.startsWith('[')) return [];
  try {
    const parsed: unknown = JSON.parse(name);
    if (!Array.isArray(parsed)) return [];
    if (parsed[0] === 'qb.execute' && typeof parsed[1] === 'string') {
      return [...new Set(statementTables(parsed[1], defaultSchema).reads.map(regions.query))].sort();
    }
    const [entity] = parsed as [unknown];
    if (Array.isArray(entity) && typeof entity[1] === 'string') {
      return [regions.query(`${typeof entity[0] === 'string' ? entity[0] : defaultSchema}.${entity[1]}`)];
    }
  } catch {
    // a named key: nothing to learn from it
  }
  return [];
}

/**
 * SASL credentials come from the options, or else from `MEMCACHED_USERNAME` / `MEMCACHED_PASSWORD`, so they can stay
 * out of configuration files. They are handed to the store, which never logs or prints them.
 */
function saslFromEnvironment(store: XaCacheOptions['store']): XaCacheOptions['store'] {
  if (store?.username !== undefined || store?.password !== undefined) return store;
  const username = process.env.MEMCACHED_USERNAME;
  const password = process.env.MEMCACHED_PASSWORD;
  return username !== undefined && password !== undefined ? { ...store, username, password } : store;
}
