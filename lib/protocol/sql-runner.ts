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
   * own. A runner that hands out riders must answer texts marked with {@link JOINED_ROWS} as that marker says.
   */
  takeRider?(): StatementRider | undefined;
}

/**
 * A text that starts with this comment holds several statements and no parameters; the runner answers it with the
 * rows of all its statements, in order, as one list (`pg` answers such a text with one result per statement, which
 * layers above it, kysely's among them, would cut down to nothing).
 */
export const JOINED_ROWS = '/* xa-cache: joined rows */ ';

/**
 * A read-only SELECT, its values inlined (no parameters), to run right after another statement of the same
 * transaction, in the same message: it sees the rows it would see on its own, and returns them in its own order.
 */
export interface StatementRider {
  readonly sql: string;
  /** The rows the SELECT returned, as it would have returned them. */
  deliver(rows: object[]): void;
  /** The carrying statement failed: the read failed with it. */
  fail(error: unknown): void;
}
