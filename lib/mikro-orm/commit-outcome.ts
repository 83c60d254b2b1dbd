import type { SqlRunner } from '../protocol/sql-runner.js';
import type { XaCache } from '../protocol/xa-cache.js';
import type { CommitOutcome } from './xa-errors.js';

const IN_PROGRESS_WAIT_MS = 2000;

/**
 * What PostgreSQL says became of a transaction whose COMMIT lost its connection, asked from another connection.
 * Asked again for up to two seconds while the answer is not final: a backend terminated during its COMMIT may
 * still be finishing it (`in progress`), and the question itself may fail on a pooled connection the same fault
 * killed, or while the server restarts (`unknown`: `pg_xact_status` of a fresh xid is never unknown).
 */
export async function settledOutcome(xa: XaCache, db: SqlRunner, xid: string): Promise<CommitOutcome> {
  const deadline = Date.now() + IN_PROGRESS_WAIT_MS;
  for (let wait = 10; ; wait = Math.min(wait * 2, 200)) {
    const outcome = await xa.log.outcome(db, xid);
    if (outcome === 'committed' || outcome === 'aborted') return outcome;
    if (Date.now() > deadline) return 'unknown';
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}
