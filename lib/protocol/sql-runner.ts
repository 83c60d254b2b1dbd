/**
 * The subset of a PostgreSQL client the protocol uses: `pg`'s `Client`, `PoolClient` and `Pool` fit it, and the
 * MikroORM layer adapts its transaction connection to it. Kept structural so the protocol has no hard dependency on
 * any driver.
 */
export interface SqlRunner {
  query(sql: string, params?: unknown[]): Promise<{ rows: object[] }>;
  /**
   * A read waiting to ride along the next statement that can carry one, if the runner holds one; taken once. The
   * transaction log's statement carries it (see `TransactionLog.record`), which saves the read a round trip of its
   * own.
   */
  takeRider?(): StatementRider | undefined;
}

/**
 * A read-only SELECT, its values inlined (no parameters), to run inside another statement of the same transaction,
 * which sees the same rows it would see on its own. The order of its rows is not kept.
 */
export interface StatementRider {
  readonly sql: string;
  /** The rows the SELECT returned, as it would have returned them. */
  deliver(rows: object[]): void;
  /** The carrying statement failed: the read failed with it. */
  fail(error: unknown): void;
}
