/**
 * The subset of a PostgreSQL client the protocol uses: `pg`'s `Client`, `PoolClient` and `Pool` fit it, and the
 * MikroORM layer adapts its transaction connection to it. Kept structural so the protocol has no hard dependency on
 * any driver.
 */
export interface SqlRunner {
  query(sql: string, params?: unknown[]): Promise<{ rows: object[] }>;
}
