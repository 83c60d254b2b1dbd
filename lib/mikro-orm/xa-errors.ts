/** The ORM setup or an entity's cache settings are wrong; the message says what to change. */
export class XaConfigError extends Error {
  constructor(message: string) {
    super(`mikro-orm-xa-cache: ${message}`);
    this.name = new.target.name;
  }

  static missingOptions(): XaConfigError {
    return new XaConfigError('resultCache.options is missing; give at least { servers: ["host:11211"] }');
  }

  static noServers(): XaConfigError {
    return new XaConfigError('resultCache.options.servers must list at least one memcached server as "host:port"');
  }

  static invalid(option: string, value: unknown, expected: string): XaConfigError {
    return new XaConfigError(`option "${option}" is ${JSON.stringify(value) ?? String(value)}; expected ${expected}`);
  }

  static driverMissing(): XaConfigError {
    return new XaConfigError(
      'XaCacheAdapter needs the XA driver, which invalidates the cache on every write: build the ORM config with withXaCache(config, options) (or set driver: XaPostgreSqlDriver, entityManager: XaEntityManager and subscribers: [new XaSubscriber()])',
    );
  }

  static adapterMissing(found: string): XaConfigError {
    return new XaConfigError(`the XA driver needs resultCache.adapter to be XaCacheAdapter (found ${found}); build the ORM config with withXaCache(config, options)`);
  }

  static foreignTransaction(): XaConfigError {
    return new XaConfigError('a write ran in a transaction that was not started through the ORM connection, so the cache cannot be invalidated with it; start transactions with em.transactional() or em.begin()');
  }

  static readyMadeKysely(): XaConfigError {
    return new XaConfigError('driverOptions gives a ready-made Kysely instance or dialect, which the cache cannot wrap: writes through it would not be prepared (and its pool clients not set up). Give pool and connection options in driverOptions instead, and reach Kysely through em.getKysely()');
  }

  static logTable(table: string, cause: unknown): XaConfigError {
    const error = new XaConfigError(`could not create or reach the transaction log table ${table} (${cause instanceof Error ? cause.message : String(cause)}); grant CREATE on the schema, or create it in a migration with the DDL of TransactionLog.ddl()`);
    error.cause = cause;
    return error;
  }

  static clearUnsupported(): XaConfigError {
    return new XaConfigError('clear() is not supported: memcached cannot drop one namespace; evict named results with em.clearCache(key)');
  }

  static entity(entity: string, problem: string): XaConfigError {
    return new XaConfigError(`entity ${entity}: ${problem}`);
  }
}

/** A write to an entity cached with the `read-only` strategy. */
export class ReadOnlyEntityError extends Error {
  constructor(readonly entity: string) {
    super(`mikro-orm-xa-cache: ${entity} is cached read-only (xaCache: { strategy: 'read-only' }) and cannot be written`);
    this.name = new.target.name;
  }
}

/** What PostgreSQL says became of a transaction whose COMMIT lost its connection. */
export type CommitOutcome = 'committed' | 'aborted' | 'unknown';

/**
 * COMMIT did not return normally (the connection was lost, or the client gave up), so the application cannot
 * tell from the call whether its transaction committed. The library asked PostgreSQL from another connection
 * (`pg_xact_status`) and finished the cache side accordingly; {@link outcome} is that answer:
 *
 * - `committed`: the data is committed and the cache was promoted: treat the call as successful (do not retry a
 *   non-idempotent transaction);
 * - `aborted`: nothing was committed; retrying is safe;
 * - `unknown`: PostgreSQL could not be asked (it is down or restarting). Its cache keys stay locked until
 *   `lockTtlSeconds` or the next sweep; check the data before retrying.
 *
 * `cause` is the error COMMIT failed with.
 */
export class CommitOutcomeError extends Error {
  constructor(
    readonly outcome: CommitOutcome,
    cause: unknown,
    /** The cache transaction id (as in the log and `inspect`), when the transaction wrote cached tables. */
    readonly txId?: string,
  ) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    const said = outcome === 'unknown' ? 'its outcome could not be determined' : `PostgreSQL says it ${outcome === 'committed' ? 'committed' : 'was rolled back'}`;
    super(`mikro-orm-xa-cache: COMMIT failed (${reason}); ${said}`, { cause });
    this.name = new.target.name;
  }
}
