import type { DatabaseConnection, Dialect, Driver, TransactionSettings } from 'kysely';

/**
 * A kysely driver that hands every call to `inner`: the base of the wrappers around MikroORM's PostgreSQL driver,
 * each of which overrides only what it changes.
 */
export class DelegatingDriver implements Driver {
  constructor(readonly inner: Driver) {}

  init(...args: Parameters<Driver['init']>): Promise<void> {
    return this.inner.init(...args);
  }

  acquireConnection(...args: Parameters<Driver['acquireConnection']>): Promise<DatabaseConnection> {
    return this.inner.acquireConnection(...args);
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return this.inner.beginTransaction(connection, settings);
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.inner.commitTransaction(connection);
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return this.inner.rollbackTransaction(connection);
  }

  // Savepoints are optional in kysely's Driver; PostgreSQL's driver has them.
  savepoint(...args: Parameters<NonNullable<Driver['savepoint']>>): Promise<void> {
    return (this.inner.savepoint as NonNullable<Driver['savepoint']>).apply(this.inner, args);
  }

  rollbackToSavepoint(...args: Parameters<NonNullable<Driver['rollbackToSavepoint']>>): Promise<void> {
    return (this.inner.rollbackToSavepoint as NonNullable<Driver['rollbackToSavepoint']>).apply(this.inner, args);
  }

  releaseSavepoint(...args: Parameters<NonNullable<Driver['releaseSavepoint']>>): Promise<void> {
    return (this.inner.releaseSavepoint as NonNullable<Driver['releaseSavepoint']>).apply(this.inner, args);
  }

  releaseConnection(...args: Parameters<Driver['releaseConnection']>): Promise<void> {
    return this.inner.releaseConnection(...args);
  }

  destroy(...args: Parameters<Driver['destroy']>): Promise<void> {
    return this.inner.destroy(...args);
  }
}

/** The dialect with its driver wrapped by `wrap`; compiler, adapter and introspector unchanged. */
export function withDriver(dialect: Dialect, wrap: (driver: Driver) => Driver): Dialect {
  return {
    createDriver: () => wrap(dialect.createDriver()),
    createQueryCompiler: () => dialect.createQueryCompiler(),
    createAdapter: () => dialect.createAdapter(),
    createIntrospector: (db) => dialect.createIntrospector(db),
  };
}
