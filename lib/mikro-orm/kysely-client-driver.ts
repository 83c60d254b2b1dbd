import { CompiledQuery, type DatabaseConnection, type Dialect, type Driver, type QueryResult } from 'kysely';
import { DelegatingDriver, withDriver } from './delegating-driver.js';
import type { SqlRunner } from '../protocol/sql-runner.js';
import { TransactionScope } from './transaction-scope.js';

/**
 * What the driver needs from the XA connection: how a statement's SQL reads (the same analysis the ORM's own
 * statements get) and the two phases around a COMMIT.
 */
export interface ClientProtocol {
  /** False on a read replica (it cannot write): every statement passes. */
  readonly active: boolean;
  /** Resolves once the connection is connected and the cache bound to its database (MikroORM connects lazily). */
  ready(): Promise<void>;
  /** Whether a statement sent outside a transaction may write (a write, or a SELECT calling a function that may). */
  mayWrite(sql: string): boolean;
  /** Every statement passes here: one that changes `search_path` stops this process caching unqualified names. */
  observe(sql: string): void;
  /**
   * prepare (inside the transaction, on `runner`) → `commit()` → promote in the background. Throws what prepare
   * threw (the transaction is still open: the caller rolls back) or what the COMMIT threw (settled first).
   */
  commitWithProtocol<R>(scope: TransactionScope, runner: SqlRunner, commit: () => Promise<R>): Promise<R>;
}

/**
 * Marks the session of a transaction the ORM began (the XA connection calls it right after BEGIN): the connection
 * runs that transaction's two phases itself, so the driver leaves its COMMIT alone. (The session is marked, not the
 * call: an AsyncLocalStorage would put a promise hook on every promise of the process.)
 */
export function markOrmTransaction(connection: DatabaseConnection): void {
  if (connection instanceof ProtocolConnection) connection.markOrm();
}

/**
 * Wraps the dialect so that what the application sends through Kysely itself (`em.getKysely()` outside a
 * transaction, `sql\`…\``, Kysely's own `transaction()` / `startTransaction()`, `BEGIN … COMMIT` sent as SQL)
 * keeps the same promise as a flush: a write outside any transaction runs in a transaction of its own on the same
 * connection, and every such transaction is prepared before and promoted after its COMMIT. Applying the captured
 * changes after the statement instead (the earlier design) left a window: a process cut off from one memcached
 * server could not evict there, returned anyway, and others kept reading the old value from that server.
 *
 * The ORM's transactions (see {@link markOrmTransaction}) pass untouched; its autocommit statements are reads (the
 * XA connection gives its writes a transaction of its own), which pass after the same quick look as any statement.
 */
export function clientProtocolDialect(dialect: Dialect, protocol: ClientProtocol): Dialect {
  return withDriver(dialect, (driver) => new ClientProtocolDriver(driver, protocol));
}

type Control = 'begin' | 'commit' | 'commit-and-chain' | 'rollback' | undefined;

const LEADING = /^(?:\s|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*/;

/** What a statement does to the session's transaction, if anything (`ROLLBACK TO`, `COMMIT PREPARED`: nothing). */
export function transactionControl(sql: string): Control {
  const start = LEADING.exec(sql)?.[0].length ?? 0;
  const first = sql.charCodeAt(start) | 0x20; // lower case of an ASCII letter
  // Most statements are SELECT, INSERT, UPDATE, DELETE, WITH: decided by their first letter.
  if (first !== 0x62 && first !== 0x73 && first !== 0x63 && first !== 0x65 && first !== 0x72 && first !== 0x61) return undefined;
  const text = sql.slice(start, start + 64).toLowerCase();
  const word = /^[a-z]+/.exec(text)?.[0];
  const rest = text.slice(word?.length ?? 0).trim().replace(/;\s*$/, '');
  switch (word) {
    case 'begin':
      return 'begin';
    case 'start':
      return /^transaction\b/.test(rest) ? 'begin' : undefined;
    case 'commit':
    case 'end':
      if (/^prepared\b/.test(rest)) return undefined;
      return /\band\s+chain$/.test(rest) && !/\band\s+no\s+chain$/.test(rest) ? 'commit-and-chain' : 'commit';
    case 'rollback':
    case 'abort':
      return /^(to|prepared)\b/.test(rest) ? undefined : 'rollback';
    default:
      return undefined;
  }
}

// Transaction statements need no override: PostgreSQL's driver sends them with `connection.executeQuery` on the
// connection handed out, so the wrapper sees BEGIN/COMMIT/ROLLBACK however they were sent.
class ClientProtocolDriver extends DelegatingDriver {
  readonly #wrapped = new WeakMap<DatabaseConnection, ProtocolConnection>();

  constructor(
    inner: Driver,
    readonly protocol: ClientProtocol,
  ) {
    super(inner);
  }

  override async acquireConnection(...args: Parameters<Driver['acquireConnection']>): Promise<DatabaseConnection> {
    const connection = await this.inner.acquireConnection(...args);
    let wrapped = this.#wrapped.get(connection);
    if (!wrapped) this.#wrapped.set(connection, (wrapped = new ProtocolConnection(connection, this.protocol)));
    return wrapped;
  }

  override releaseConnection(connection: DatabaseConnection, ...rest: unknown[]): Promise<void> {
    const inner = connection instanceof ProtocolConnection ? connection.inner : connection;
    return (this.inner.releaseConnection as (c: DatabaseConnection, ...r: unknown[]) => Promise<void>)(inner, ...rest);
  }
}

/**
 * One pooled session, with what it is doing: idle, inside a transaction the ORM runs (it prepares it), or inside
 * one the application began through Kysely (prepared here, at its COMMIT). Statements inside a transaction are
 * not parsed: the database's capture tells prepare what they wrote.
 */
class ProtocolConnection implements DatabaseConnection {
  /** `open`: a transaction the application began (until the ORM marks it as its own: `orm`). */
  #state: 'idle' | 'open' | 'orm' = 'idle';

  markOrm(): void {
    if (this.#state === 'open') this.#state = 'orm';
  }

  constructor(
    readonly inner: DatabaseConnection,
    readonly protocol: ClientProtocol,
  ) {
    // Optional capabilities kysely probes for (query cancellation on abort).
    if (inner.cancelQuery) this.cancelQuery = inner.cancelQuery.bind(inner);
    if (inner.killSession) this.killSession = inner.killSession.bind(inner);
    if (inner.collectSessionInfo) this.collectSessionInfo = inner.collectSessionInfo.bind(inner);
  }

  cancelQuery?: DatabaseConnection['cancelQuery'];
  killSession?: DatabaseConnection['killSession'];
  collectSessionInfo?: DatabaseConnection['collectSessionInfo'];

  streamQuery<R>(...args: Parameters<DatabaseConnection['streamQuery']>): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(...args);
  }

  async executeQuery<R>(query: CompiledQuery, ...rest: unknown[]): Promise<QueryResult<R>> {
    const run = (q: CompiledQuery): Promise<QueryResult<R>> => (this.inner.executeQuery as (q: CompiledQuery, ...r: unknown[]) => Promise<QueryResult<R>>)(q, ...rest);
    if (!this.protocol.active) return run(query);
    this.protocol.observe(query.sql);
    const state = this.#state;
    if (state === 'orm') {
      const control = transactionControl(query.sql);
      if (control === 'commit' || control === 'rollback') this.#state = 'idle';
      return run(query);
    }
    const control = transactionControl(query.sql);
    if (state === 'idle') {
      if (control === 'begin') {
        const result = await run(query);
        this.#state = 'open';
        return result;
      }
      if (control || !this.protocol.mayWrite(query.sql)) return run(query);
      return this.#autocommit(query, run);
    }
    // A transaction the application began through Kysely.
    if (control === 'commit' || control === 'commit-and-chain') {
      await this.protocol.ready();
      // What it wrote is what the database captured: prepare takes it (no statement needs parsing here).
      const result = await this.protocol.commitWithProtocol(clientScope(), this.#runner(), () => run(query));
      this.#state = control === 'commit' ? 'idle' : 'open';
      return result;
    }
    if (control === 'rollback') this.#state = 'idle';
    return run(query);
  }

  /** A statement that may write, sent outside any transaction: BEGIN, it, prepare, COMMIT, promote. */
  async #autocommit<R>(query: CompiledQuery, run: (q: CompiledQuery) => Promise<QueryResult<R>>): Promise<QueryResult<R>> {
    await this.protocol.ready();
    const scope = clientScope();
    await this.inner.executeQuery(CompiledQuery.raw('BEGIN'));
    let result: QueryResult<R>;
    try {
      result = await run(query);
    } catch (error) {
      await this.#rollbackQuietly();
      throw error;
    }
    let committing = false;
    try {
      return await this.protocol.commitWithProtocol(scope, this.#runner(), async () => {
        committing = true;
        await this.inner.executeQuery(CompiledQuery.raw('COMMIT'));
        return result;
      });
    } catch (error) {
      // prepare refused (the transaction is still open): roll it back; a failed COMMIT already ended it.
      if (!committing) await this.#rollbackQuietly();
      throw error;
    }
  }

  async #rollbackQuietly(): Promise<void> {
    await this.inner.executeQuery(CompiledQuery.raw('ROLLBACK')).catch(() => undefined);
  }

  /** The log statement runs on this session, inside its transaction. */
  #runner(): SqlRunner {
    return {
      query: async (sql: string, params: unknown[] = []) => ({ rows: (await this.inner.executeQuery<object>(CompiledQuery.raw(sql, params))).rows }),
    };
  }
}

function clientScope(): TransactionScope {
  // The isolation level only guides the ORM's own reads, which never run on these sessions.
  return new TransactionScope('read committed', undefined);
}
