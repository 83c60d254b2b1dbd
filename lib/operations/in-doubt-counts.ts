import type { DatabaseOutcome } from '../protocol/transaction-log.js';
import type { SqlRunner } from '../protocol/sql-runner.js';

/** How many log rows are in doubt, by what PostgreSQL says of their transactions. */
export interface InDoubtCounts {
  /** Rows at least `minAgeMs` old. */
  readonly total: number;
  readonly byOutcome: Readonly<Record<DatabaseOutcome, number>>;
  /** Age of the oldest row, in milliseconds (database clock); 0 when there is none. */
  readonly oldestAgeMs: number;
  /** The age threshold the counts used. */
  readonly minAgeMs: number;
}

/**
 * Counts the rows of the transaction log at least `minAgeMs` old (by the database's clock), in one statement.
 * Younger rows are normal: promotes in flight, and rows waiting for lazy deletion by the next transaction.
 */
export async function countInDoubt(db: SqlRunner, logTable: string, minAgeMs: number): Promise<InDoubtCounts> {
  const { rows } = await db.query(
    `SELECT coalesce(pg_xact_status(xid), 'unknown') AS outcome, count(*)::int AS n,
            coalesce(max(extract(epoch FROM now() - created_at)) * 1000, 0)::float8 AS oldest_ms
       FROM ${logTable}
      WHERE created_at <= now() - make_interval(secs => $1::float8 / 1000)
      GROUP BY 1`,
    [minAgeMs],
  );
  const byOutcome: Record<DatabaseOutcome, number> = { committed: 0, aborted: 0, 'in progress': 0, unknown: 0 };
  let total = 0;
  let oldestAgeMs = 0;
  for (const raw of rows as Array<{ outcome: string; n: number; oldest_ms: number }>) {
    const outcome = (raw.outcome in byOutcome ? raw.outcome : 'unknown') as DatabaseOutcome;
    byOutcome[outcome] += raw.n;
    total += raw.n;
    oldestAgeMs = Math.max(oldestAgeMs, Number(raw.oldest_ms));
  }
  return { total, byOutcome, oldestAgeMs: Math.round(oldestAgeMs), minAgeMs };
}
