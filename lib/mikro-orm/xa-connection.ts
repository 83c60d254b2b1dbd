import { EventType, isRaw, type EntityMetadata, type Transaction, type TransactionEventBroadcaster, type LogContext, type LoggingOptions, type Dictionary } from '@mikro-orm/core';
import { NativeQueryBuilder, PostgreSqlConnection } from '@mikro-orm/postgresql';
import pg from 'pg';
import { CompiledQuery, type ControlledTransaction, type Kysely } from 'kysely';
import { clientProtocolDialect, markOrmTransaction, type ClientProtocol } from './kysely-client-driver.js';
import type { CacheTransaction } from '../protocol/cache-transaction.js';
import type { SqlRunner } from '../protocol/sql-runner.js';
import { currentCall } from './call-context.js';
import { statementTables, type StatementTables } from './sql-tables.js';
import { TransactionScope, type IsolationLevel } from './transaction-scope.js';
import type { EarlyImages } from './write-through.js';
import { XaCacheAdapter } from './xa-cache-adapter.js';
import { CommitOutcomeError, XaConfigError, type CommitOutcome } from './xa-errors.js';
import { endFailedTransaction, releasingDialect } from './releasing-dialect.js';
import { deferBegin } from './deferred-begin.js';
import { joinMarkedRows } from './joined-rows.js';
import { rejectedByServer } from './connection-loss.js';
import { settledOutcome } from './commit-outcome.js';
import { IdleLogFlush } from './idle-log-flush.js';
import { HeldRead } from './held-read.js';
import { ormProtocolLogger } from './orm-protocol-logger.js';
import type { PromoteTracker } from './promote-tracker.js';
import type { ProtocolLogger } from '../protocol/protocol-options.js';
import { uniqueKeysOf } from './unique-keys.js';
import { entityCacheOf } from './entity-marker.js';
import { MANAGED_SESSION_SETTING } from '../protocol/write-capture.js';
import { DATA_IDENTITY_COLUMNS, dataIdentityOf } from '../protocol/data-identity.js';

type Trx = ControlledTransaction<any, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- MikroORM's own type
/** Write-through's two reads inside the committing transaction `trx` (see `RowWriteThrough`). */
export interface WriteThroughHook {
  /** Before prepare: the rows the ORM's writes named (and the generations `tx` is to read with its locks). */
  early(trx: Transaction, scope: TransactionScope, tx: CacheTransaction): Promise<EarlyImages>;
  /** After prepare, before COMMIT: supplies the images of the rows the capture shows written. */
  supply(trx: Transaction, tx: CacheTransaction, early: EarlyImages): Promise<number>;
}
type BeginOptions = NonNullable<Parameters<PostgreSqlConnection['begin']>[0]>;

const ANALYSIS_CACHE_SIZE = 2000;

/**
 * The PostgreSQL connection of the XA driver: it sees every statement and every transaction boundary, so this is
 * where writes are recorded and the two phases run.
 *
 * - `begin`: a {@link TransactionScope} per transaction and per savepoint, with its isolation level.
 * - `execute`: every write statement's tables go into the scope of its transaction; a write outside any
 *   transaction is run inside one of its own, so it too is prepared before and promoted after its commit.
 * - `commit` (top level): prepare (locks + the log row, inside the transaction) → COMMIT → `afterTransactionCommit`
 *   and return, with promote running in the background (tracked by the adapter's {@link PromoteTracker}): until it
 *   replaces them, the prepare's locks make every reader miss and read the database without filling, so neither
 *   the caller nor after-commit hooks can read what the commit replaced (G2), and no reader can store it (G3).
 * - `rollback`: release.
 */
export class XaPostgreSqlConnection extends PostgreSqlConnection {
  readonly #scopes = new WeakMap<object, TransactionScope>();
  readonly #analysis = new Map<string, StatementTables>();
  /** Committing transactions whose first read is held to ride along the log statement (see {@link HeldRead}). */
  readonly #heldReads = new WeakMap<object, HeldRead>();
  #defaultIsolation: IsolationLevel | undefined;
  #adapter: XaCacheAdapter | undefined;
  #plainClient: unknown;
  #client: unknown;
  #idleFlush: IdleLogFlush | undefined;
  #sessionOptions: pg.ClientConfig | undefined;
  #writeThrough: WriteThroughHook | undefined;
  #connecting: Promise<void> | undefined;

  /** The adapter that owns the protocol; a clear error when the ORM was not configured with it. */
  get cache(): XaCacheAdapter {
    if (this.#adapter) return this.#adapter;
    const adapter = this.config.getResultCacheAdapter();
    if (!(adapter instanceof XaCacheAdapter)) throw XaConfigError.adapterMissing(adapter?.constructor?.name ?? String(adapter));
    // One adapter per ORM for its whole life (MikroORM builds it once): asked on every read, so kept here.
    return (this.#adapter = adapter);
  }

  /** MikroORM's dialect, with a driver that gives connections back after a failed COMMIT/ROLLBACK (see {@link releasingDialect}). */
  override createKyselyDialect(overrides: Dictionary): ReturnType<PostgreSqlConnection['createKyselyDialect']> {
    const { onPoolCreated: _created, ...poolOverrides } = overrides ?? {};
    // What the pool's clients connect with (URL, credentials, ssl, driverOptions), for sessionClient().
    this.#sessionOptions = this.mapOptions(poolOverrides) as pg.ClientConfig;
    const marked = this.cache.options.markPoolSessions === false ? overrides : { ...overrides, options: managedOptions(this.#sessionOptions.options) };
    // Every client of the pool sends a transaction's BEGIN with its first statement (see deferBegin) and answers a
    // marked text of several statements with all their rows (see joinMarkedRows).
    const onPoolCreated = overrides?.onPoolCreated as ((pool: pg.Pool) => unknown) | undefined;
    const deferred: Dictionary = {
      ...marked,
      onPoolCreated: (pool: pg.Pool) => {
        pool.on('connect', (client: pg.Client) => {
          deferBegin(client);
          joinMarkedRows(client); // the log statement and the read riding along it (TransactionLog.record)
        });
        return onPoolCreated?.(pool);
      },
    };
    // Typed as MikroORM's PostgresDialect, which has private members; kysely only uses the Dialect interface.
    const dialect = clientProtocolDialect(super.createKyselyDialect(deferred), this.#clientProtocol());
    return releasingDialect(dialect) as ReturnType<PostgreSqlConnection['createKyselyDialect']>;
  }

  override connect(options?: { skipOnConnect?: boolean }): Promise<void> {
    return (this.#connecting = this.#connect(options));
  }

  /**
   * Connected, and the cache bound to this database: MikroORM connects lazily, at its first query, and a process
   * may write through Kysely before that; its keys must name the same database as everyone's (G14).
   */
  async #ready(): Promise<void> {
    if (!this.connected || !this.#connecting) await this.ensureConnection();
    await this.#connecting;
  }

  async #connect(options?: { skipOnConnect?: boolean }): Promise<void> {
    await super.connect(options);
    if (this.type !== 'write') return;
    // A Kysely instance or dialect given in `driverOptions` is used as it is: `createKyselyDialect` never ran, so
    // Kysely's own writes would pass unprepared and the pool's clients unpatched (see `createKyselyDialect`).
    if (this.#sessionOptions === undefined) throw XaConfigError.readyMadeKysely();
    const adapter = this.cache;
    adapter.attach();
    // The cache logs where the ORM logs, unless the application gave it a logger of its own.
    (adapter.xa.options as { logger: ProtocolLogger | undefined }).logger ??= ormProtocolLogger(this.logger);
    const pool = await this.sqlRunner();
    this.#idleFlush ??= new IdleLogFlush(adapter.xa, () => this.sqlRunner(), (error) => this.#log('warn', 'could not delete promoted log rows; retrying', error));
    try {
      await adapter.xa.ensureLogTable(pool);
      await adapter.xa.capture.ensureBase(pool);
    } catch (error) {
      throw XaConfigError.logTable(adapter.xa.log.table, error);
    }
    const { rows } = await pool.query(`SELECT current_setting('default_transaction_isolation') AS level, ${DATA_IDENTITY_COLUMNS} FROM pg_control_system()`);
    this.#defaultIsolation = (rows[0] as { level: IsolationLevel }).level;
    await adapter.searchPath.resolve(pool, this.metadata?.getAll().values() ?? [], this.config.getSchema()); // before reads may hit
    adapter.bindIdentity(dataIdentityOf(rows[0] as object)); // keys name this cluster and database (G14)
  }

  override async close(force?: boolean): Promise<void> {
    if (this.type === 'write' && this.connected) {
      await this.cache.promotes.settle(); // their log rows join the final flush below
      await this.#idleFlush?.close();
      this.#idleFlush = undefined;
      try {
        await this.cache.xa.flushLogDeletes(await this.sqlRunner());
      } catch (error) {
        this.#log('warn', 'could not delete promoted log rows on close; the sweeper will', error);
      }
    }
    await super.close(force);
  }

  /**
   * What the Kysely driver needs to run the two phases around what the application sends through Kysely itself
   * (see {@link clientProtocolDialect}).
   */
  #clientProtocol(): ClientProtocol {
    const connection = this; // eslint-disable-line @typescript-eslint/no-this-alias -- a getter reads the live state
    return {
      get active() {
        return connection.type === 'write';
      },
      ready: () => this.#ready(),
      // Not the analysis cache of `execute`: the ORM's statements arrive here with their values inlined.
      mayWrite: (sql) => {
        const analysis = statementTables(sql, this.cache.defaultSchema);
        return analysis.kind === 'write' || (analysis.kind === 'read' && analysis.callsFunctions);
      },
      observe: (sql) => this.cache.searchPath.observe(sql),
      commitWithProtocol: (scope, runner, commit) => this.#commitWithProtocol(scope, runner, commit),
    };
  }

  /** prepare → COMMIT → promote in the background, for a transaction the ORM did not begin (see `ClientProtocol`). */
  async #commitWithProtocol<R>(scope: TransactionScope, runner: SqlRunner, commit: () => Promise<R>): Promise<R> {
    const tx = scope.toCacheTransaction(this.cache.xa);
    await tx.prepare(runner);
    let result: R;
    try {
      result = await commit();
    } catch (error) {
      const outcome = await this.#settleUnknown(tx);
      throw rejectedByServer(error) ? error : new CommitOutcomeError(outcome, error, tx.id);
    }
    this.cache.promotes.track(this.#promote(tx));
    return result;
  }

  /**
   * A new connection of its own, outside the pool, with the pool's settings: for work that needs a session for
   * its whole life (the outside-changes follower holds an advisory lock and LISTENs on it). The caller ends it.
   */
  async sessionClient(applicationName: string): Promise<pg.Client> {
    await this.ensureConnection();
    const client = new pg.Client({ ...this.#sessionOptions, application_name: applicationName });
    await client.connect();
    return client;
  }

  /** A runner outside any transaction (the pool), for the log table and the sweeper. */
  async sqlRunner(): Promise<SqlRunner> {
    return (await this.getNativeClient()) as unknown as SqlRunner;
  }

  /** @internal the driver, at init: before COMMIT, the committed rows are read for promote to write. */
  useWriteThrough(hook: WriteThroughHook): void {
    this.#writeThrough = hook;
  }

  /** The scope of a transaction this connection began; undefined for one it did not. */
  scopeOf(trx: Transaction | undefined): TransactionScope | undefined {
    return trx ? this.#scopes.get(trx as object) : undefined;
  }

  override async begin(options: BeginOptions = {}): Promise<Trx> {
    const parent = this.scopeOf(options.ctx);
    const isolation = (options.isolationLevel as IsolationLevel | undefined) ?? parent?.isolation ?? this.#defaultIsolation ?? 'read committed';
    const scope = new TransactionScope(isolation, parent);
    // Subscribers hear afterTransactionStart before begin returns: the scope must be findable by then.
    const broadcaster = options.eventBroadcaster;
    const eventBroadcaster = broadcaster && {
      context: broadcaster.context,
      dispatchEvent: async (event: EventType, trx?: Transaction): Promise<void> => {
        if (trx && event === EventType.afterTransactionStart) this.#scopes.set(trx as object, scope);
        await broadcaster.dispatchEvent(event as never, trx);
      },
    };
    const trx = await super.begin({ ...options, eventBroadcaster: eventBroadcaster as TransactionEventBroadcaster | undefined });
    // Its COMMIT is prepared here, not by the driver (a savepoint runs on its parent's session, already marked).
    if (!('savepointName' in trx)) await trx.getExecutor().provideConnection(async (session) => markOrmTransaction(session));
    this.#scopes.set(trx, scope);
    return trx;
  }

  override async commit(ctx: Trx, eventBroadcaster?: TransactionEventBroadcaster, loggerContext?: LogContext): Promise<void> {
    const scope = this.#scopes.get(ctx);
    if ('savepointName' in ctx || !scope) {
      await super.commit(ctx, eventBroadcaster, loggerContext);
      if (scope?.parent) scope.parent.absorb(scope);
      return;
    }
    if (ctx.isRolledBack) return;
    await eventBroadcaster?.dispatchEvent(EventType.beforeTransactionCommit, ctx);
    const tx = scope.toCacheTransaction(this.cache.xa);
    const early = await this.#prepareWithEarlyRead(ctx, scope, tx);
    if (early) await this.#supplyRowImages(ctx, tx, early);
    try {
      await ctx.commit().execute();
    } catch (error) {
      throw await this.#commitFailed(ctx, tx, error);
    }
    this.logQuery(this.platform.getCommitTransactionSQL(), loggerContext);
    // Off the commit's critical path: the keys stay locked (misses, no fills) until promote replaces the locks.
    this.cache.promotes.track(this.#promote(tx));
    await eventBroadcaster?.dispatchEvent(EventType.afterTransactionCommit, ctx);
  }

  override async rollback(ctx: Trx, eventBroadcaster?: TransactionEventBroadcaster, loggerContext?: LogContext): Promise<void> {
    const scope = this.#scopes.get(ctx);
    // A failed COMMIT already rolled back to give the connection back; kysely refuses a second rollback.
    if (!('savepointName' in ctx) && (ctx.isRolledBack || ctx.isCommitted)) return;
    try {
      await super.rollback(ctx, eventBroadcaster, loggerContext);
    } finally {
      // A savepoint rolled back: its keys are still evicted at the top-level commit, which is never wrong.
      if (scope?.parent) scope.parent.absorb(scope);
    }
  }

  override async execute<T>(query: string | NativeQueryBuilder | { sql: string; params: unknown[] }, params: readonly unknown[] | Dictionary<unknown> = [], method: 'all' | 'get' | 'run' = 'all', ctx?: Transaction, loggerContext?: LoggingOptions): Promise<T> {
    const analysis = this.#analyse(query);
    const call = currentCall();
    if (analysis.kind === 'read' && call.query) {
      for (const table of analysis.reads) call.query.tables.add(table);
      if (this.type === 'read') call.query.readFromReplica = true;
    }
    // A SELECT that calls a function may write through it; a replica cannot write at all.
    const mayWrite = analysis.kind === 'write' || (analysis.kind === 'read' && analysis.callsFunctions);
    if (!mayWrite || this.type === 'read') {
      const held = ctx && this.#heldReads.get(ctx);
      return ((held && this.#executeHeld<T>(held, query, params, method, loggerContext)) ?? super.execute<never>(query as never, params, method, ctx, loggerContext)) as Promise<T>;
    }
    if (!ctx) {
      // An autocommit write: give it a transaction of its own, so what it (and the database for it) wrote is
      // prepared and promoted like any other.
      return this.transactional((trx) => this.execute<T>(query, params, method, trx, loggerContext));
    }
    const scope = this.scopeOf(ctx);
    if (!scope) throw XaConfigError.foreignTransaction();
    scope.recordWrite(analysis.writes);
    return super.execute<never>(query as never, params, method, ctx, loggerContext) as Promise<T>;
  }

  /**
   * Prepare, with write-through's early read of the rows the ORM wrote riding along the log statement (see
   * {@link HeldRead}): the read is started first, its SELECT held back when it reaches `execute`, then carried by
   * prepare's statement. Returns the early images; throws what prepare or the read throws.
   */
  async #prepareWithEarlyRead(ctx: Trx, scope: TransactionScope, tx: CacheTransaction): Promise<EarlyImages | undefined> {
    if (!this.#writeThrough) {
      await tx.prepare(transactionRunner(ctx));
      return undefined;
    }
    const held = new HeldRead();
    this.#heldReads.set(ctx, held);
    const reading = this.#writeThrough.early(ctx as unknown as Transaction, scope, tx);
    reading.catch(() => undefined); // awaited below, or superseded by prepare's error
    try {
      await held.heldOr(reading);
      await tx.prepare(transactionRunner(ctx, held));
    } catch (error) {
      await held.close(() => Promise.reject(error), error);
      throw error;
    } finally {
      this.#heldReads.delete(ctx);
    }
    // Not carried (no log statement ran): it runs on its own now.
    await held.close(async (sql) => (await ctx.executeQuery(CompiledQuery.raw(sql))).rows as object[]);
    return reading;
  }

  /**
   * Write-through, after prepare: the images of the rows the transaction wrote (read before prepare, or now). A
   * failed read aborted the database transaction (PostgreSQL would answer the COMMIT with a rollback): release and
   * throw, as a failed prepare does.
   */
  async #supplyRowImages(ctx: Trx, tx: CacheTransaction, early: EarlyImages): Promise<void> {
    if (!this.#writeThrough || tx.captured.length === 0) return;
    try {
      await this.#writeThrough.supply(ctx as unknown as Transaction, tx, early);
    } catch (error) {
      await tx.release();
      throw error;
    }
  }

  /** A read of a committing transaction, held to ride along its log statement; undefined: run it as usual. */
  #executeHeld<T>(held: HeldRead, query: unknown, params: unknown, method: 'all' | 'get' | 'run', loggerContext: LoggingOptions | undefined): Promise<T> | undefined {
    // MikroORM's own steps of `execute` (onQuery, values inlined, logging), with the rows from the log statement.
    const q = (this as unknown as { prepareQuery(query: unknown, params: unknown): { query: string; params: unknown[]; formatted: string } }).prepareQuery(query, params);
    const rows = held.hold(q.formatted);
    if (!rows) return undefined;
    return this.executeQuery(this.getSql(q.query, q.formatted, loggerContext), async () => this.transformRawResult<T>({ rows: await rows }, method), { ...q, ...loggerContext });
  }

  #log(level: 'warn' | 'error', message: string, error?: unknown): void {
    const logger = this.cache.xa.options.logger ?? ormProtocolLogger(this.logger);
    logger(level, message, error === undefined ? undefined : { error: error instanceof Error ? error.message : String(error) });
  }

  #analyse(query: unknown): StatementTables {
    const sql = typeof query === 'string' ? query : query instanceof NativeQueryBuilder ? query.toRaw().sql : isRaw(query) ? query.sql : String(query);
    let analysis = this.#analysis.get(sql);
    if (!analysis) {
      analysis = statementTables(sql, this.cache.defaultSchema);
      this.cache.searchPath.observe(sql); // a changed search_path makes unqualified names ambiguous
      if (this.#analysis.size >= ANALYSIS_CACHE_SIZE) this.#analysis.clear();
      this.#analysis.set(sql, analysis);
    }
    return analysis;
  }

  async #promote(tx: CacheTransaction): Promise<void> {
    try {
      await tx.promote();
      this.#idleFlush?.poke();
    } catch (error) {
      // The data is committed; the caller must not see an error. Locks expire and the sweeper finishes the job.
      this.#log('warn', `promote of ${tx.id} failed; left to lock expiry and the sweeper`, error);
    }
  }

  /**
   * COMMIT failed: give the connection back (kysely keeps it after a failed COMMIT), ask PostgreSQL whether the
   * transaction committed, finish the cache side accordingly, and return the error to throw: the server's own
   * answer when it rejected the COMMIT, else a {@link CommitOutcomeError} saying what became of the transaction.
   */
  async #commitFailed(ctx: Trx, tx: CacheTransaction | undefined, error: unknown): Promise<unknown> {
    await endFailedTransaction(ctx);
    const outcome = tx ? await this.#settleUnknown(tx) : 'unknown';
    return rejectedByServer(error) ? error : new CommitOutcomeError(outcome, error, tx?.id);
  }

  /** Asks PostgreSQL from another connection whether the transaction committed, and promotes or releases. */
  async #settleUnknown(tx: CacheTransaction): Promise<CommitOutcome> {
    let outcome: CommitOutcome = 'unknown';
    try {
      outcome = tx.xid ? await settledOutcome(this.cache.xa, await this.sqlRunner(), tx.xid) : 'unknown';
      if (outcome === 'committed') await this.#promote(tx);
      else if (outcome === 'aborted') await tx.release();
      // unknown: locks expire; if it committed, its log row is there for the sweeper.
    } catch (error) {
      this.#log('warn', `could not settle ${tx.id} after a failed COMMIT`, error);
    }
    return outcome;
  }
}

/**
 * Entities marked for the cache that the row cache cannot serve fail at startup, not at the first query: the row
 * cache names rows by one primary-key column.
 */
export function validateCachedEntities(all: Iterable<EntityMetadata>): void {
  for (const meta of all) {
    if (!entityCacheOf(meta)) continue;
    if (meta.embeddable) throw XaConfigError.entity(meta.className, 'is an embeddable; mark the entity that embeds it instead');
    if (meta.primaryKeys.length === 0) throw XaConfigError.entity(meta.className, 'has no primary key, so its rows cannot be cached by key; remove xaCache');
    if (meta.primaryKeys.length > 1) throw XaConfigError.entity(meta.className, `has a composite primary key (${meta.primaryKeys.join(', ')}); the row cache supports single-column keys only, so remove xaCache (its query results are still cached)`);
    for (const field of entityCacheOf(meta)?.secretFields ?? []) {
      const prop = meta.properties[field];
      if (!prop) throw XaConfigError.entity(meta.className, `secretFields names "${field}", which is not a property`);
      if (!prop.lazy) throw XaConfigError.entity(meta.className, `secret field "${field}" must be lazy (e.g. p.string().lazy()), so that the rows MikroORM loads by default, which are what the cache keeps, leave it out`);
    }
    uniqueKeysOf(meta);
  }
}

/**
 * Runs the log statement inside the transaction itself, bypassing MikroORM's formatting and our own tracking; with
 * `held`, the read held back there rides along it.
 */
function transactionRunner(trx: Trx, held?: HeldRead): SqlRunner {
  return {
    async query(sql: string, params: unknown[] = []) {
      const result = await trx.executeQuery(CompiledQuery.raw(sql, params));
      return { rows: result.rows as object[] };
    },
    takeRider: held && (() => held.take()),
  };
}

/**
 * The pool's startup `options` with the setting that marks the application's own sessions (see
 * `MANAGED_SESSION_SETTING`): a startup option rather than a `SET`, so `RESET ALL` (MikroORM's session context)
 * keeps it. Other options given in `driverOptions` are kept.
 */
function managedOptions(given: string | undefined): string {
  return [given, `-c ${MANAGED_SESSION_SETTING}=on`].filter(Boolean).join(' ');
}
