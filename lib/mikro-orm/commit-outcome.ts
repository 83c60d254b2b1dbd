import type { SqlRunner } from '../protocol/sql-runner.js';
import type { XaCache } from '../protocol/xa-cache.js';
import type { CommitOutcome } from './xa-errors.js';

const IN_PROGRESS_WAIT_MS = 2000;

/**
 * What PostgreSQL says became of a transaction whose COMMIT lost its connection. A backend terminated during its
 * COMMIT may still be finishing it when we ask (`in progress`); it ends within moments, so ask again for up to
 * two seconds before calling it unknown.
 */
export async function settledOutcome(xa: XaCache, db: SqlRunner, xid: string): Promise<CommitOutcome> {
  const deadline = Date.now() + IN_PROGRESS_WAIT_MS;
  for (let wait = 10; ; wait = Math.min(wait * 2, 200)) {
    const outcome = await xa.log.outcome(db, xid);
    if (outcome !== 'in progress') return outcome;
    if (Date.now() > deadline) return 'unknown';
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}
