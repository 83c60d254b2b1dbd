import { applyTransitions } from './cas-batch.js';
import { composeTransitions } from './compose-transitions.js';
import { promoteTransition, type KeyRole } from './key-transitions.js';
import { regionWriteKeys, unreachedRegions, type ProtocolContext } from './protocol-context.js';
import type { SqlRunner } from './sql-runner.js';
import type { LogRow } from './transaction-log.js';

/** Settings of one sweep. */
export interface SweepOptions {
  /** Only rows at least this old (database clock), so live processes finish their own promotes. Default 10000. */
  readonly minAgeMs?: number;
  /** Rows claimed and resolved per batch. Default 500. */
  readonly batchSize?: number;
  /** How long a claim keeps other sweepers off a batch. Default 60000. */
  readonly claimMs?: number;
  /** Stop after this many batches (default: until no row is left). */
  readonly maxBatches?: number;
  /** Called after each batch. */
  readonly onProgress?: (progress: SweepReport) => void;
}

/** What a sweep did. */
export interface SweepReport {
  /** Log rows whose keys were all resolved, and deleted. */
  resolved: number;
  /** Log rows left for a later sweep because some key could not be reached. */
  unresolved: number;
  /** Keys resolved. */
  keys: number;
  batches: number;
}

/**
 * The recovery sweeper: every log row is a committed transaction whose promote may not have finished (the process
 * died, memcached was unreachable, or the row simply was not deleted yet). For each, it does what promote would
 * have done without a value: removes the transaction from its locks, evicts items, renews region generations.
 * That is idempotent and safe while the owner is still promoting, so many sweepers may run at once; claims only
 * keep them from doing the same work twice.
 */
export async function sweep(ctx: ProtocolContext, db: SqlRunner, options: SweepOptions = {}): Promise<SweepReport> {
  const report: SweepReport = { resolved: 0, unresolved: 0, keys: 0, batches: 0 };
  const batchSize = options.batchSize ?? 500;
  const leftOver: string[] = [];
  try {
    for (;;) {
      if (options.maxBatches !== undefined && report.batches >= options.maxBatches) break;
      const rows = await ctx.log.claim(db, batchSize, options.minAgeMs ?? 10_000, options.claimMs ?? 60_000);
      if (rows.length === 0) break;
      report.batches++;
      leftOver.push(...(await resolveBatch(ctx, db, rows, report)));
      options.onProgress?.({ ...report });
      if (rows.length < batchSize) break;
    }
  } finally {
    // Rows left in doubt (a server was unreachable) go back to the pool at the end of the run, not inside it:
    // the next sweep must retry them at once, but this one must not claim them again and again.
    if (leftOver.length > 0) await ctx.log.unclaim(db, leftOver);
  }
  return report;
}

async function resolveBatch(ctx: ProtocolContext, db: SqlRunner, rows: LogRow[], report: SweepReport): Promise<string[]> {
  const owners = new Map<string, { role: KeyRole; txIds: string[] }>();
  const add = (key: string, role: KeyRole, txId: string): void => {
    const owner = owners.get(key);
    if (owner) owner.txIds.push(txId);
    else owners.set(key, { role, txIds: [txId] });
  };
  for (const row of rows) {
    for (const key of row.keys) add(key, 'item', row.txId);
    for (const region of row.regions) for (const key of regionWriteKeys(region, ctx.store)) add(key, 'region', row.txId);
  }
  const outcomes = await applyTransitions(
    ctx.store,
    [...owners.keys()],
    (key, current) => {
      const { role, txIds } = owners.get(key) as { role: KeyRole; txIds: string[] };
      return composeTransitions(current, txIds.map((txId) => (entry) => promoteTransition(entry, txId, role, undefined)));
    },
    ctx.ttls(),
    { codec: ctx.codec, maxRounds: ctx.options.maxCasRounds, onForeign: () => ctx.stats.foreignEntries++ },
  );
  const done: string[] = [];
  for (const row of rows) {
    // A paired region is resolved when one of its copies is, a spread one when all are (docs/protocol.md).
    const reached = (key: string): boolean => outcomes.get(key)?.status === 'done';
    const regions = row.regions.map((region) => [region, regionWriteKeys(region, ctx.store)] as const);
    if (row.keys.every(reached) && unreachedRegions(regions, reached).length === 0) done.push(row.txId);
  }
  for (const outcome of outcomes.values()) if (outcome.status === 'done') report.keys++;
  await ctx.log.deleteRows(db, done);
  report.resolved += done.length;
  report.unresolved += rows.length - done.length;
  ctx.stats.sweptTransactions += done.length;
  if (done.length < rows.length) {
    ctx.options.logger?.('warn', 'sweeper left transactions in doubt: some keys could not be reached', { count: rows.length - done.length });
  }
  const finished = new Set(done);
  return rows.filter((row) => !finished.has(row.txId)).map((row) => row.txId);
}
