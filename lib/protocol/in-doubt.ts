import { lockHolders } from './entry.js';
import { regionWriteKeys, type ProtocolContext } from './protocol-context.js';
import type { SqlRunner } from './sql-runner.js';
import type { DatabaseOutcome } from './transaction-log.js';

/** What a key of an in-doubt transaction holds in memcached right now. */
export type KeyState =
  | 'locked-by-this'
  | 'locked-by-others'
  | 'value'
  | 'lease'
  | 'generation'
  | 'absent'
  | 'foreign'
  | 'unavailable';

/** One transaction of the log, as the operator script shows it. */
export interface InDoubtTransaction {
  readonly txId: string;
  readonly xid: string;
  readonly ageMs: number;
  readonly outcome: DatabaseOutcome;
  readonly keys: ReadonlyArray<{ readonly key: string; readonly region: boolean; readonly state: KeyState; readonly holders?: readonly string[] }>;
}

/**
 * Lists the transactions of the log (committed, with a promote that may not have finished), oldest first, with
 * PostgreSQL's word on each and the state of each of their keys in memcached, read in one round trip per server.
 */
export async function listInDoubt(ctx: ProtocolContext, db: SqlRunner, limit = 100): Promise<InDoubtTransaction[]> {
  const rows = await ctx.log.list(db, limit);
  const storeKeys = new Set<string>();
  for (const row of rows) {
    for (const key of row.keys) storeKeys.add(key);
    for (const region of row.regions) for (const key of regionWriteKeys(region, ctx.store)) storeKeys.add(key);
  }
  const fetched = await ctx.store.getMulti([...storeKeys]);
  return rows.map((row) => {
    const describe = (key: string, region: boolean): InDoubtTransaction['keys'][number] => {
      if (fetched.failed.has(key)) return { key, region, state: 'unavailable' };
      const item = fetched.items.get(key);
      if (!item) return { key, region, state: 'absent' };
      const entry = ctx.codec.decode(key, item.value);
      if (entry.kind === 'lock') {
        const holders = lockHolders(entry);
        if (holders.length === 0) return { key, region, state: 'absent' };
        return { key, region, state: holders.includes(row.txId) ? 'locked-by-this' : 'locked-by-others', holders };
      }
      return { key, region, state: entry.kind };
    };
    return {
      txId: row.txId,
      xid: row.xid,
      ageMs: row.ageMs,
      outcome: row.outcome,
      keys: [...row.keys.map((k) => describe(k, false)), ...row.regions.flatMap((r) => regionWriteKeys(r, ctx.store).map((key) => describe(key, true)))],
    };
  });
}
