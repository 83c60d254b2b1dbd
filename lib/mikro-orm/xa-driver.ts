import { helper, Utils, type MetadataStorage, type Configuration, type EntityProperty, type Primary, type OrderDefinition, type Transaction, type Dictionary, type EntityData, type EntityMetadata, type FilterQuery, type FindOptions, type NativeInsertUpdateManyOptions, type NativeInsertUpdateOptions, type DeleteOptions, type QueryResult, type EntityDictionary, type EntityName, ReferenceKind } from '@mikro-orm/core';
import { PostgreSqlDriver } from '@mikro-orm/postgresql';
import { inFlightTable, keys, pkString, qualifiedTable, regions } from './cache-keys.js';
import { captureDeriver } from './captured-keys.js';
import { RowWriteThrough } from './write-through.js';
import { captureTargetsOf } from './write-capture-setup.js';
import { currentCall } from './call-context.js';
import { entityCacheOf, type ResolvedEntityCache } from './entity-marker.js';
import { planLookup, type CollectionLookup, type RowLookup, type UniqueLookup } from './lookup-plan.js';
import { rowValues } from './unique-keys.js';
import type { XaCacheAdapter } from './xa-cache-adapter.js';
import type { CacheRead } from '../protocol/cache-reader.js';
import { XaPostgreSqlConnection, validateCachedEntities } from './xa-connection.js';
import { XaPostgreSqlPlatform } from './xa-platform.js';
import { ReadOnlyEntityError } from './xa-errors.js';
import { encodeValue } from './value-codec.js';
import { acceptKeyValue, acceptMemberIds, acceptRow, acceptRowWithPk } from './payload-checks.js';
import { emptyOrder, fillOptions, ownerId, primaryKeysOf, project, type Row } from './driver-rows.js';

type AnyOptions = FindOptions<object, string, string, string> & Record<string | symbol, unknown>;

/** Passed down by a collection read to the row read of its members: whether any member came from the database. */
const READ_TRACE = Symbol('xa-cache read trace');
interface ReadTrace {
  databaseRead(): void;
}

/** MikroORM's builder of `find`'s statement (private in its typings). */
interface QueryBuilding {
  createQueryBuilderFromOptions(meta: EntityMetadata, where: object, options: object): Promise<{ toQuery(): { sql: string; params: readonly unknown[] }; execute(method: 'all'): Promise<unknown> }>;
}

/** Statement shapes `#readInTransaction` keeps at most (then forgets them all). */
const ROW_READ_SHAPES = 1000;

/**
 * The PostgreSQL driver with the second-level cache: rows of cached entities by primary key, and the member ids
 * of their 1:m collections, are read from memcached with one multi-get and filled under leases from the primary;
 * every write path names the rows it changes for the two-phase protocol. Everything it cannot answer exactly goes
 * to the database unchanged.
 */
export class XaPostgreSqlDriver extends PostgreSqlDriver {
  constructor(config: Configuration) {
    super(config);
    const self = this as unknown as { connection: XaPostgreSqlConnection; replicas: unknown[] };
    self.connection = new XaPostgreSqlConnection(this.config);
    self.replicas = this.createReplicas((conf) => new XaPostgreSqlConnection(this.config, conf, 'read'));
    // Before the configuration adopts the platform: its schema tools must keep the cache's database objects.
    (this as unknown as { platform: XaPostgreSqlPlatform }).platform = new XaPostgreSqlPlatform();
  }

  /** Checks the cache markers as soon as discovery is done, so a wrong one fails `MikroORM.init`. */
  override setMetadata(metadata: MetadataStorage): void {
    validateCachedEntities(metadata.getAll().values());
    super.setMetadata(metadata);
    // MikroORM connects at the first query, after the first cache read: the adapter must know now that the
    // driver that invalidates it is in place.
    this.xaConnection.cache.attach();
    // Every prepare takes what the database captured in its transaction and names its keys from this metadata.
    const cache = this.xaConnection.cache;
    cache.useMetadata(metadata);
    cache.xa.useCapture(captureDeriver(metadata.getAll().values(), cache.xa.options.unsafeTestSwitches), inFlightTable);
    if (cache.options.writeThrough !== false) {
      const rows = new RowWriteThrough(metadata.getAll().values());
      const cacheable = (table: string): boolean => cache.isCacheable(table);
      const load = (trx: Transaction) => (meta: EntityMetadata, schema: string, ids: readonly unknown[]) => this.#readInTransaction(meta, schema, ids, trx);
      this.xaConnection.useWriteThrough({
        early: (trx, scope, tx) => rows.readEarly(scope.namedRows, tx, load(trx), cacheable),
        supply: (trx, tx, early) => rows.supply(tx, early, load(trx), { rowTtlSeconds: cache.rowTtlSeconds, cacheable }),
      });
    }
    cache.captureGate.setCheck(async () => {
      const db = await this.xaConnection.sqlRunner();
      const targets = await captureTargetsOf(metadata.getAll().values(), db, cache.defaultSchema, { skipWildcard: true });
      return (await cache.xa.capture.missing(db, targets)).map((t) => `${t.schema}.${t.logicalTable ?? t.table}`);
    });
  }

  /**
   * Rows by primary key inside a transaction, through `find` with a fill's options: what a fill would store. Every
   * commit that writes rows through runs this, so the statement `find` builds is kept per entity, schema and number
   * of keys (with `?` where the keys go), and later reads send it with their keys and map the rows as `find` does:
   * MikroORM's QueryBuilder was most of a write-through read's CPU. Kept only when the statement's parameters are
   * exactly the keys given (no conversion by a custom type) and the entity's rows map without the builder (no
   * table-per-type inheritance).
   */
  async #readInTransaction(meta: EntityMetadata, schema: string, ids: readonly unknown[], trx: Transaction): Promise<Row[]> {
    const shape = `${meta.className}\u0000${schema}\u0000${ids.length}`;
    const known = this.#rowReads.get(shape);
    if (known) {
      const rows = await this.connection.execute<Row[]>(known, [...ids], 'all', trx as never);
      return rows.map((row) => this.mapResult(row as never, meta, []) as Row);
    }
    const where = { [meta.primaryKeys[0] as string]: { $in: ids } };
    const options = { populate: [], orderBy: [], connectionType: 'write', ctx: trx, schema };
    const qb = await (this as unknown as QueryBuilding).createQueryBuilderFromOptions(meta, where, options);
    const query = qb.toQuery();
    if (known === undefined) {
      if (this.#rowReads.size >= ROW_READ_SHAPES) this.#rowReads.clear();
      const reusable = meta.inheritanceType !== 'tpt' && query.params.length === ids.length && query.params.every((param, i) => param === ids[i]);
      this.#rowReads.set(shape, reusable ? query.sql : null);
    }
    return (await this.rethrow(qb.execute('all'))) as Row[];
  }

  /** The statements of `#readInTransaction` by entity, schema and number of keys; null: that shape is not kept. */
  readonly #rowReads = new Map<string, string | null>();

  /** The primary connection, which runs the protocol. */
  get xaConnection(): XaPostgreSqlConnection {
    return this.connection as unknown as XaPostgreSqlConnection;
  }

  #cache(): XaCacheAdapter {
    return this.xaConnection.cache;
  }

  #table(meta: EntityMetadata, schema: string | undefined): string {
    return qualifiedTable(meta, schema, this.#cache().defaultSchema);
  }

  override async find<T extends object, P extends string = never, F extends string = never, E extends string = never>(entityName: EntityName<T>, where: FilterQuery<T>, options: FindOptions<T, P, F, E> = {} as FindOptions<T, P, F, E>): Promise<EntityData<T>[]> {
    const meta = this.metadata.get(entityName) as EntityMetadata;
    // Before the first connect the database's identity is unknown, and with it which keys are this database's.
    if (!entityCacheOf(meta) || this.#cache().identity === undefined) return super.find(entityName, where as never, options);
    const opts = options as unknown as AnyOptions;
    const joined = this.joinedProps(meta, this.autoJoinOneToOneOwner(meta, (opts.populate ?? []) as never[], opts.fields as never), opts as never).length;
    const plan = planLookup(meta, where, opts, joined);
    if (!plan || !this.#referenceOrNoRefresh(meta, plan, opts)) return super.find(entityName, where as never, options);
    const schema = this.getSchemaName(meta, opts as never);
    const table = this.#table(meta, schema);
    currentCall().query?.tables.add(table);
    if (!(await this.#cacheable(table))) return super.find(entityName, where as never, options);
    if (!this.#cache().searchPath.allows(schema, meta, ...(plan.kind === 'collection' ? [plan.ownerMeta] : []))) return super.find(entityName, where as never, options);
    // Inside a transaction the database answers (see docs/protocol.md, "Reads inside transactions").
    if (opts.ctx) return super.find(entityName, where as never, options);
    if (plan.kind === 'rows') return (await this.#findRows(entityName as EntityName<object>, meta, table, plan, opts)) as EntityData<T>[];
    if (plan.kind === 'unique') return (await this.#findByUnique(entityName as EntityName<object>, meta, table, plan, opts)) as EntityData<T>[];
    return (await this.#findCollection(entityName as EntityName<object>, meta, table, plan, opts)) as EntityData<T>[];
  }

  /**
   * Whether a row of `meta` by primary key, read in `schema`, goes through the row cache right now, decided without
   * I/O: the database's identity is bound, the capture was checked, the table is cached here and its schema known.
   * (The lean `findOne` asks before skipping the entity manager's general query preparation.)
   */
  servesRowsOf(meta: EntityMetadata, schema: string | undefined): boolean {
    const cache = this.#cache();
    if (cache.identity === undefined || !cache.captureGate.ready) return false;
    const resolved = this.getSchemaName(meta, { schema } as never);
    return cache.isCacheable(this.#table(meta, resolved)) && cache.searchPath.allows(resolved, meta);
  }

  /**
   * A row by primary key for the lean `findOne`, which asked {@link servesRowsOf} first: a clean hit is served from
   * one multi-get (`CacheReader.readHit`); anything else takes `findOne`'s path, as without the lean path.
   */
  async rowById(meta: EntityMetadata, schema: string | undefined, id: unknown, em: object): Promise<Row | null> {
    const pkProp = meta.primaryKeys[0] as string;
    const table = this.#table(meta, this.getSchemaName(meta, { schema } as never));
    const pk = pkString(id);
    const hit = await this.#cache().xa.reader.readHit(keys.row(table, pk), regions.rows(table), acceptRowWithPk(pkProp, pk));
    if (hit) return hit.value as Row;
    return (await this.findOne(meta.class as EntityName<object>, { [pkProp]: id } as never, { em, populate: [], schema } as never)) as Row | null;
  }

  /** Whether this process caches the table: its write capture is in place (checked once) and caching was not stopped. */
  async #cacheable(table: string): Promise<boolean> {
    const cache = this.#cache();
    if (!cache.captureGate.ready) await cache.captureGate.ensure().catch((error: unknown) => cache.xa.options.logger?.('warn', 'could not check the write capture; reading the database', { error: String(error) }));
    return cache.isCacheable(table);
  }

  /** A refresh asked by the user reads the database; a reference being initialised (also sent as refresh) may hit. */
  #referenceOrNoRefresh(meta: EntityMetadata, plan: RowLookup | CollectionLookup | UniqueLookup, opts: AnyOptions): boolean {
    if (!opts.refresh) return true;
    if (plan.kind !== 'rows' || plan.ids.length !== 1) return false;
    const em = opts.em as { getUnitOfWork(useContext?: boolean): { getById(name: unknown, id: unknown, schema?: string): object | undefined } } | undefined;
    const entity = em?.getUnitOfWork(false).getById(meta.class, plan.ids[0], opts.schema as string | undefined);
    return entity !== undefined && !helper(entity).__initialized;
  }

  async #findRows(entityName: EntityName<object>, meta: EntityMetadata, table: string, plan: RowLookup, opts: AnyOptions): Promise<Row[]> {
    const xa = this.#cache().xa;
    const ids = [...new Map(plan.ids.map((id) => [pkString(id), id])).values()];
    const rowKeys = ids.map((id) => keys.row(table, pkString(id)));
    const pkOfKey = new Map(ids.map((id, i) => [rowKeys[i] as string, pkString(id)]));
    // Started first, in the same tick: its multi-get leaves in the same socket write as the rows'.
    this.#prefetchCollections(meta, ids, opts);
    const reads = await xa.reader.readManyWaiting(rowKeys, { regions: [regions.rows(table)], accept: acceptRow(plan.pkProp, pkOfKey) });
    const found = new Map<string, Row>();
    const missing: Array<(typeof ids)[number]> = [];
    ids.forEach((id, i) => {
      const read = reads.get(rowKeys[i] as string);
      if (read?.status === 'hit') return void found.set(pkString(id), read.value as Row);
      missing.push(id);
    });
    if (missing.length > 0) {
      const loaded = await super.find(entityName, { [plan.pkProp]: { $in: missing } } as never, fillOptions(opts) as never);
      const ttl = plan.cache.ttlSeconds ?? this.#cache().rowTtlSeconds;
      const fills: Promise<unknown>[] = [];
      const loadedIds = new Set<string>();
      for (const row of loaded as Row[]) {
        const id = pkString(row[plan.pkProp]);
        loadedIds.add(id);
        found.set(id, row);
        const ticket = reads.get(keys.row(table, id));
        if (ticket?.status === 'miss' && ticket.ticket) fills.push(xa.reader.fill(ticket.ticket, encodeValue(row), ttl));
      }
      // Rows that do not exist are not cached: a later insert then needs no invalidation of its key.
      for (const id of missing) {
        const ticket = reads.get(keys.row(table, pkString(id)));
        if (!loadedIds.has(pkString(id)) && ticket?.status === 'miss' && ticket.ticket) fills.push(xa.reader.abandon(ticket.ticket));
      }
      await Promise.all(fills);
    }
    const hitKeys = rowKeys.filter((key) => reads.get(key)?.status === 'hit');
    if (missing.length > 0) (opts[READ_TRACE] as ReadTrace | undefined)?.databaseRead();
    if (missing.length > 0 && hitKeys.length > 0 && !(await xa.reader.unchanged(reads, hitKeys, { regions: [regions.rows(table)] }))) {
      // A write committed between the cache read and the database read: the two halves would mix two states.
      const all = (await super.find(entityName, { [plan.pkProp]: { $in: ids } } as never, fillOptions(opts) as never)) as Row[];
      found.clear();
      for (const row of all) found.set(pkString(row[plan.pkProp]), row);
    }
    const rows: Row[] = [];
    for (const id of plan.ids) {
      const row = found.get(pkString(id));
      if (row) rows.push(project(row, opts.fields as string[] | undefined, plan.pkProp, meta));
      if (opts.limit === 1 && rows.length === 1) break;
    }
    return rows;
  }

  /**
   * Rows by the values of a declared unique key: one multi-get of the index entries (value → primary key), then the
   * rows through the row cache (a second multi-get). A row is served only if it still holds the values asked for:
   * an index entry read just before a commit that moved the value may name a row that no longer has it, and then
   * the database answers for that value. Misses read the rows by value from the primary and fill the index
   * entries under the leases the multi-get took; values no row holds are not cached.
   */
  async #findByUnique(entityName: EntityName<object>, meta: EntityMetadata, table: string, plan: UniqueLookup, opts: AnyOptions): Promise<Row[]> {
    const xa = this.#cache().xa;
    const { key, pkProp } = plan;
    const indexKeyOf = (values: readonly string[]): string => keys.unique(table, key.columns, values);
    const tuples = [...new Map(plan.tuples.map((t) => [indexKeyOf(t.map(pkString)), t])).entries()];
    const reads = await xa.reader.readManyWaiting(
      tuples.map(([k]) => k),
      { regions: [regions.rows(table)], accept: acceptKeyValue },
    );
    const pks = new Map<string, unknown>();
    for (const [indexKey] of tuples) {
      const read = reads.get(indexKey);
      if (read?.status === 'hit') pks.set(indexKey, read.value);
    }
    const byPk = new Map<string, Row>();
    if (pks.size > 0) {
      const rows = (await this.find(entityName, { [pkProp]: { $in: [...new Set(pks.values())] } } as never, { ctx: opts.ctx, schema: opts.schema, em: opts.em } as never)) as Row[];
      for (const row of rows) byPk.set(pkString(row[pkProp]), row);
    }
    const found = new Map<string, Row>();
    const missing: Array<readonly unknown[]> = [];
    for (const [indexKey, tuple] of tuples) {
      const pk = pks.get(indexKey);
      const row = pk === undefined ? undefined : byPk.get(pkString(pk));
      const values = row ? rowValues(key, row) : undefined;
      if (row && values && indexKeyOf(values) === indexKey) found.set(indexKey, row);
      else missing.push(tuple);
    }
    const loaded: Row[] = [];
    if (missing.length > 0) {
      const where = key.props.length === 1 ? { [key.props[0] as string]: { $in: missing.map((t) => t[0]) } } : { $or: missing.map((t) => Object.fromEntries(key.props.map((p, i) => [p, t[i]]))) };
      loaded.push(...((await super.find(entityName, where as never, fillOptions(opts) as never)) as Row[]));
      const ttl = plan.cache.ttlSeconds ?? this.#cache().rowTtlSeconds;
      const fills: Promise<unknown>[] = [];
      const filled = new Set<string>();
      for (const row of loaded) {
        const values = rowValues(key, row);
        if (!values) continue;
        // The entry is keyed by the row's own text of the values, as writes name it; a value asked in another form
        // the database equates with it ('01' for 1, an upper-case uuid) has no ticket here and is never cached.
        const indexKey = indexKeyOf(values);
        const read = reads.get(indexKey);
        if (read?.status === 'miss' && read.ticket) {
          filled.add(indexKey);
          fills.push(xa.reader.fill(read.ticket, encodeValue(row[pkProp]), ttl));
        }
      }
      // A value no row holds is not cached: an insert of it then needs no invalidation of a negative entry.
      for (const tuple of missing) {
        const indexKey = indexKeyOf(tuple.map(pkString));
        const read = reads.get(indexKey);
        if (!filled.has(indexKey) && read?.status === 'miss' && read.ticket) fills.push(xa.reader.abandon(read.ticket));
      }
      await Promise.all(fills);
    }
    // Served rows first in the order asked, then what the database found for the rest; each row once.
    const rows: Row[] = [];
    const seen = new Set<string>();
    for (const row of [...tuples.map(([indexKey]) => found.get(indexKey)), ...loaded]) {
      if (!row || seen.has(pkString(row[pkProp]))) continue;
      seen.add(pkString(row[pkProp]));
      rows.push(project(row, opts.fields as string[] | undefined, pkProp, meta));
      if (opts.limit === 1 && rows.length === 1) break;
    }
    return rows;
  }

  /**
   * The member ids of the owners' cached 1:m collections the call will populate next (`populate: ['books']`), read
   * alongside the owners' rows: the populate then finds them here instead of waiting one more round trip. Taken
   * without leases and uncounted (a miss here is only a miss: the populate reads again, fills, and counts; hits
   * count when used), kept per entity manager for that populate only.
   */
  #prefetchCollections(meta: EntityMetadata, owners: readonly unknown[], opts: AnyOptions): void {
    const em = opts.em as object | undefined;
    const hints = opts.populate as Array<{ field?: string; children?: unknown[] }> | undefined;
    if (!em || !Array.isArray(hints) || hints.length === 0 || opts.ctx) return;
    const cache = entityCacheOf(meta);
    if (!cache?.collections) return;
    const pending = new Map<string, Promise<CacheRead | undefined>>();
    for (const hint of hints) {
      const prop = meta.properties[(hint.field ?? '').split(':')[0] as string];
      const child = prop?.targetMeta;
      if (!prop || prop.kind !== ReferenceKind.ONE_TO_MANY || !child || !entityCacheOf(child) || child.primaryKeys.length !== 1) continue;
      const schema = this.getSchemaName(child, opts as never);
      const ownerTable = this.#table(meta, schema);
      const childTable = this.#table(child, schema);
      const collKeys = owners.map((o) => keys.collection(ownerTable, prop.name, pkString(o)));
      const read = this.#cache().xa.reader.readMany(collKeys, { regions: [regions.collections(childTable)], accept: acceptMemberIds, lease: false, uncounted: true });
      for (const key of collKeys) pending.set(key, read.then((r) => r.get(key), () => undefined));
    }
    if (pending.size > 0) prefetches.set(em, pending);
  }

  async #findCollection(entityName: EntityName<object>, meta: EntityMetadata, childTable: string, plan: CollectionLookup, opts: AnyOptions): Promise<Row[]> {
    const xa = this.#cache().xa;
    const ownerTable = this.#table(plan.ownerMeta, this.getSchemaName(meta, opts as never));
    const owners = [...new Map(plan.owners.map((o) => [pkString(o), o])).values()];
    const collKeys = owners.map((o) => keys.collection(ownerTable, plan.collection.name, pkString(o)));
    // Concurrent missers wait for the first one's fill (bounded by leaseWaitMs) rather than all read the database.
    const collRegions = [regions.collections(childTable)];
    const ahead = await prefetched(opts.em, collKeys);
    if (ahead) xa.reader.countHits(ahead.size, collRegions);
    const reads = ahead ?? (await xa.reader.readManyWaiting(collKeys, { regions: collRegions, accept: acceptMemberIds }));
    const members = new Map<string, unknown[]>();
    const missing: Array<(typeof owners)[number]> = [];
    owners.forEach((owner, i) => {
      const read = reads.get(collKeys[i] as string);
      if (read?.status === 'hit') return void members.set(pkString(owner), read.value as unknown[]);
      missing.push(owner);
    });
    if (missing.length > 0) {
      const idRows = (await super.find(
        entityName,
        { [plan.fkProp]: { $in: missing } } as never,
        { ...fillOptions(opts), fields: [plan.pkProp, plan.fkProp], orderBy: opts.orderBy } as never,
      )) as Row[];
      for (const owner of missing) members.set(pkString(owner), []);
      for (const row of idRows) members.get(pkString(ownerId(row[plan.fkProp])))?.push(row[plan.pkProp]);
      const ttl = plan.cache.ttlSeconds ?? this.#cache().rowTtlSeconds;
      await Promise.all(
        missing.map((owner) => {
          const read = reads.get(keys.collection(ownerTable, plan.collection.name, pkString(owner)));
          return read?.status === 'miss' && read.ticket ? xa.reader.fill(read.ticket, encodeValue(members.get(pkString(owner))), ttl) : undefined;
        }),
      );
    }
    const allIds = [...members.values()].flat();
    if (allIds.length === 0) return [];
    // The members themselves come through the row cache: one multi-get, the database only for rows not cached.
    let databaseRead = missing.length > 0;
    const trace: ReadTrace = { databaseRead: () => void (databaseRead = true) };
    const rows = (await this.find(entityName, { [plan.pkProp]: { $in: allIds } } as never, { ctx: opts.ctx, schema: opts.schema, em: opts.em, [READ_TRACE]: trace } as never)) as Row[];
    const hitKeys = collKeys.filter((key) => reads.get(key)?.status === 'hit');
    if (databaseRead && hitKeys.length > 0 && !(await xa.reader.unchanged(reads, hitKeys, { regions: [regions.collections(childTable)] }))) {
      // Member ids from the cache, rows (or other owners' ids) from after a commit that changed them: ask the database.
      return (await super.find(entityName, { [plan.fkProp]: { $in: owners } } as never, { ...fillOptions(opts), orderBy: opts.orderBy } as never)) as Row[];
    }
    const byId = new Map(rows.map((r) => [pkString(r[plan.pkProp]), r]));
    const ordered: Row[] = [];
    for (const owner of owners) for (const id of members.get(pkString(owner)) ?? []) {
      const row = byId.get(pkString(id));
      if (row) ordered.push(row);
    }
    return ordered;
  }

  override async loadFromPivotTable<T extends object, O extends object>(
    prop: EntityProperty,
    owners: Primary<O>[][],
    where: FilterQuery<object> = {},
    orderBy?: OrderDefinition<T>,
    ctx?: Transaction,
    options?: FindOptions<T, string, string, string>,
    pivotJoin?: boolean,
  ): Promise<Dictionary<T[]>> {
    const plan = this.#pivotPlan(prop, where, orderBy, options as AnyOptions | undefined, owners);
    const opts = (options ?? {}) as AnyOptions;
    if (!plan || ctx || this.#cache().identity === undefined) return super.loadFromPivotTable(prop, owners, where, orderBy, ctx, options, pivotJoin);
    const pivotTable = this.#table(plan.pivotMeta, this.getSchemaName(plan.pivotMeta, opts as never));
    if (!(await this.#cacheable(pivotTable))) return super.loadFromPivotTable(prop, owners, where, orderBy, ctx, options, pivotJoin);
    const xa = this.#cache().xa;
    const schema = this.getSchemaName(plan.ownerMeta, opts as never);
    if (!this.#cache().searchPath.allows(schema, plan.ownerMeta, plan.pivotMeta)) return super.loadFromPivotTable(prop, owners, where, orderBy, ctx, options, pivotJoin);
    const ownerTable = this.#table(plan.ownerMeta, schema);
    const targetMeta = prop.targetMeta as EntityMetadata;
    currentCall().query?.tables.add(pivotTable);
    const collKeys = owners.map((owner) => keys.collection(ownerTable, prop.name, pkString(owner[0])));
    const reads = await xa.reader.readManyWaiting(collKeys, { regions: [regions.collections(pivotTable)], accept: acceptMemberIds });
    const members = new Map<string, unknown[]>();
    const missing: Primary<O>[][] = [];
    owners.forEach((owner, i) => {
      const read = reads.get(collKeys[i] as string);
      if (read?.status === 'hit') return void members.set(Utils.getPrimaryKeyHash(owner as never), read.value as unknown[]);
      missing.push(owner);
    });
    if (missing.length > 0) {
      const loaded = await super.loadFromPivotTable(prop, missing, where, orderBy, ctx, { ...opts, connectionType: 'write' } as never, true);
      const ttl = plan.cache.ttlSeconds ?? this.#cache().rowTtlSeconds;
      const fills: Promise<unknown>[] = [];
      for (const owner of missing) {
        const hash = Utils.getPrimaryKeyHash(owner as never);
        const ids = ((loaded as Dictionary<unknown[]>)[hash] ?? []).map(ownerId);
        members.set(hash, ids);
        const read = reads.get(keys.collection(ownerTable, prop.name, pkString(owner[0])));
        if (read?.status === 'miss' && read.ticket) fills.push(xa.reader.fill(read.ticket, encodeValue(ids), ttl));
      }
      await Promise.all(fills);
    }
    const result: Dictionary<T[]> = {};
    if (pivotJoin) {
      for (const [hash, ids] of members) result[hash] = ids as T[];
      return result;
    }
    const allIds = [...new Set([...members.values()].flat())];
    const pkProp = targetMeta.primaryKeys[0] as string;
    const rows = allIds.length === 0 ? [] : ((await this.find(targetMeta.class as never, { [pkProp]: { $in: allIds } } as never, { ctx, schema: opts.schema, em: opts.em } as never)) as Row[]);
    const byId = new Map(rows.map((r) => [pkString(r[pkProp]), r]));
    for (const [hash, ids] of members) result[hash] = ids.map((id) => byId.get(pkString(id))).filter((r): r is Row => r !== undefined) as T[];
    return result;
  }

  /** An m:n load the collection cache can answer: whole collections, default order, both sides cached. */
  #pivotPlan(prop: EntityProperty, where: unknown, orderBy: unknown, options: AnyOptions | undefined, owners: unknown[][]): { ownerMeta: EntityMetadata; pivotMeta: EntityMetadata; cache: ResolvedEntityCache } | undefined {
    if (prop.kind !== ReferenceKind.MANY_TO_MANY || prop.polymorphic || prop.discriminatorColumn || !prop.pivotEntity) return undefined;
    if (owners.some((o) => o.length !== 1) || (where && Object.keys(where).length > 0) || !emptyOrder(orderBy)) return undefined;
    const o = options ?? ({} as AnyOptions);
    if (!emptyOrder(o.orderBy) || !emptyOrder(o.populateOrderBy) || (o.populate as unknown[] | undefined)?.length || o.fields || (o.exclude as unknown[] | undefined)?.length || o._partitionLimit || o.lockMode) return undefined;
    if ((o.populateFilter && Object.keys(o.populateFilter).length) || (o.em as { getSessionContext?: () => unknown } | undefined)?.getSessionContext?.()) return undefined;
    const pivotMeta = this.metadata.get(prop.pivotEntity) as EntityMetadata;
    const ownerMeta = pivotMeta.relations[prop.owner ? 0 : 1]?.targetMeta;
    const targetMeta = prop.targetMeta;
    const ownerCache = ownerMeta ? entityCacheOf(ownerMeta) : undefined;
    const targetCache = targetMeta ? entityCacheOf(targetMeta) : undefined;
    if (!ownerMeta || !ownerCache?.collections || !targetCache || targetMeta?.primaryKeys.length !== 1) return undefined;
    return { ownerMeta, pivotMeta, cache: ownerCache };
  }

  override async nativeInsert<T extends object>(entityName: EntityName<T>, data: EntityDictionary<T>, options: NativeInsertUpdateOptions<T> = {}): Promise<QueryResult<T>> {
    return this.#write(entityName as EntityName<object>, options, [], (o) => super.nativeInsert(entityName, data, o), this.#givenKeys(entityName as EntityName<object>, [data]));
  }

  override async nativeInsertMany<T extends object>(entityName: EntityName<T>, data: EntityDictionary<T>[], options: NativeInsertUpdateManyOptions<T> = {}, transform?: (sql: string) => string): Promise<QueryResult<T>> {
    return this.#write(entityName as EntityName<object>, options, [], (o) => super.nativeInsertMany(entityName, data, o, transform), this.#givenKeys(entityName as EntityName<object>, data));
  }

  override async nativeUpdate<T extends object>(entityName: EntityName<T>, where: FilterQuery<T>, data: EntityData<T>, options: NativeInsertUpdateOptions<T> & { upsert?: boolean } = {}): Promise<QueryResult<T>> {
    const meta = this.metadata.get(entityName) as EntityMetadata;
    const ids = options.upsert ? undefined : primaryKeysOf(meta, [where]);
    return this.#write(entityName as EntityName<object>, options, ids, (o) => super.nativeUpdate(entityName, where, data, o), ids);
  }

  override async nativeUpdateMany<T extends object>(entityName: EntityName<T>, where: FilterQuery<T>[], data: EntityData<T>[], options: NativeInsertUpdateManyOptions<T> & { upsert?: boolean } = {}, transform?: (sql: string, params: unknown[]) => string): Promise<QueryResult<T>> {
    const meta = this.metadata.get(entityName) as EntityMetadata;
    const ids = options.upsert ? undefined : primaryKeysOf(meta, where);
    return this.#write(entityName as EntityName<object>, options, ids, (o) => super.nativeUpdateMany(entityName, where, data, o, transform as never), ids);
  }

  override async nativeDelete<T extends object>(entityName: EntityName<T>, where: FilterQuery<T>, options: DeleteOptions<T> = {}): Promise<QueryResult<T>> {
    const meta = this.metadata.get(entityName) as EntityMetadata;
    return this.#write(entityName as EntityName<object>, options, primaryKeysOf(meta, [where]), (o) => super.nativeDelete(entityName, where, o));
  }

  /** The primary keys inserted rows are given in `data` (none when the database generates them: the capture names those). */
  #givenKeys(entityName: EntityName<object>, data: readonly object[]): unknown[] {
    const meta = this.metadata.get(entityName) as EntityMetadata;
    if (meta.primaryKeys.length !== 1) return [];
    const pk = meta.primaryKeys[0] as string;
    return data.map((row) => (row as Record<string, unknown>)[pk]).filter((id) => id !== undefined && id !== null && (typeof id !== 'object' || id instanceof Date));
  }

  /**
   * Every write of the driver: refuses writes to read-only cached entities, gives an autocommit write a
   * transaction of its own, and names the rows it changes by primary key where the `where` says, so prepare locks
   * them while its log statement runs. What the statement really changed reaches prepare through the database's
   * capture either way.
   */
  async #write<O extends { ctx?: unknown; schema?: string }, R>(entityName: EntityName<object>, options: O, ids: readonly unknown[] | undefined, run: (options: O) => Promise<R>, written?: readonly unknown[]): Promise<R> {
    const meta = this.metadata.get(entityName) as EntityMetadata;
    if (entityCacheOf(meta)?.strategy === 'read-only') throw new ReadOnlyEntityError(meta.className);
    if (!options.ctx) return this.xaConnection.transactional((trx) => this.#write(entityName, { ...options, ctx: trx }, ids, run, written));
    const scope = this.xaConnection.scopeOf(options.ctx as never);
    if ((ids || written) && scope && entityCacheOf(meta)) {
      const table = this.#table(meta, this.getSchemaName(meta, options as never));
      const schema = table.slice(0, table.length - (meta.root ?? meta).tableName.length - 1);
      if (ids) scope.invalidate(ids.map((id) => keys.row(table, pkString(id))));
      // Rows an insert or update leaves in place: write-through reads them before prepare (the capture still
      // decides which of them were written).
      if (written) scope.nameRows(written.map((id) => [keys.row(table, pkString(id)), { meta, schema, id }]));
    }
    return run(options);
  }
}

/** Collection reads started with their owners' rows, per entity manager (see `#prefetchCollections`). */
const prefetches = new WeakMap<object, Map<string, Promise<CacheRead | undefined>>>();

/** The prefetched reads of exactly these keys when every one is a hit (each used once), else undefined. */
async function prefetched(em: unknown, collKeys: readonly string[]): Promise<Map<string, CacheRead> | undefined> {
  const pending = em ? prefetches.get(em as object) : undefined;
  if (!pending || !collKeys.every((key) => pending.has(key))) return undefined;
  const started = collKeys.map((key) => pending.get(key));
  for (const key of collKeys) pending.delete(key);
  const reads = new Map<string, CacheRead>();
  for (const [i, read] of (await Promise.all(started)).entries()) {
    if (read?.status !== 'hit') return undefined;
    reads.set(collKeys[i] as string, read);
  }
  return reads;
}
