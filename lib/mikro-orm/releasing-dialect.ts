import { CompiledQuery, type ControlledTransaction, type DatabaseConnection, type Dialect, type TransactionSettings } from 'kysely';
import { DelegatingDriver, withDriver } from './delegating-driver.js';
import { isConnectionLoss } from './connection-loss.js';

/**
 * Wraps MikroORM's kysely dialect so that a transaction whose COMMIT or ROLLBACK fails still gives its pooled
 * connection back.
 *
 * Why: kysely 0.29.6's `ControlledTransaction.commit()` and `.rollback()` call the connection's release callback
 * only after the statement succeeded. When PostgreSQL terminates the backend mid-transaction (or restarts), both
 * statements fail on the dead socket, the callback is never called, and the pool slot is lost for good; after
 * `pool.max` such events every query waits forever and `orm.close()` (`pool.end()`) never returns. The only way to
 * reach that callback from outside is a `rollback()` that succeeds, so this driver makes ROLLBACK succeed whenever
 * the session is over: the transaction is then rolled back (or, for a COMMIT in flight, decided) by the server
 * anyway. pg-pool discards a released client whose connection is dead instead of reusing it. A failed BEGIN leaks
 * the same way, and is released here directly.
 */
export function releasingDialect(dialect: Dialect): Dialect {
  return withDriver(dialect, (driver) => new ReleasingDriver(driver));
}

class ReleasingDriver extends DelegatingDriver {
  /**
   * BEGIN. When it fails, kysely has already taken the connection out of the pool and, having no transaction to
   * return, never releases it (its release callback is reachable only through the transaction): release it here.
   * kysely will not release it again, since that callback can no longer be called.
   */
  override async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    try {
      await this.inner.beginTransaction(connection, settings);
    } catch (error) {
      await this.inner.releaseConnection(connection).catch(() => undefined);
      throw error;
    }
  }

  /**
   * ROLLBACK, which resolves whenever the transaction is over, so kysely releases the connection:
   * - the connection is lost: the server already ended the session, and with it the transaction;
   * - any other failure (not expected from a ROLLBACK): the session's state is unknown, so it is ended
   *   (`pg_terminate_backend` of itself) rather than handed to the next user possibly still inside a transaction.
   */
  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await this.inner.rollbackTransaction(connection);
    } catch (error) {
      if (isConnectionLoss(error)) return;
      await connection.executeQuery(CompiledQuery.raw('SELECT pg_terminate_backend(pg_backend_pid())')).catch(() => undefined);
    }
  }
}

/**
 * Ends a top-level transaction whose COMMIT failed, so that its connection goes back to the pool: kysely releases
 * it only on a successful `commit()` or `rollback()`, and with {@link releasingDialect} a rollback always succeeds
 * once the session is over. A no-op if the transaction already ended.
 */
export async function endFailedTransaction(trx: ControlledTransaction<any, any>): Promise<void> { // eslint-disable-line @typescript-eslint/no-explicit-any -- MikroORM's own type
  if (trx.isCommitted || trx.isRolledBack) return;
  await trx.rollback().execute().catch(() => undefined);
}
