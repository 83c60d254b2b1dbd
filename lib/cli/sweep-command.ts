import type { InDoubtTransaction } from '../protocol/in-doubt.js';
import type { SweepReport } from '../protocol/recovery-sweeper.js';
import type { CommandOptions } from './command-options.js';
import { EXIT, describe } from './cli-errors.js';
import type { CliOutput } from './cli-output.js';
import type { CliSession } from './cli-session.js';
import { formatAge, formatCount } from './text-table.js';
import { stopSignal } from './stop-signal.js';

/** One sweep's result, as printed and as `--json`. */
interface SweepRun {
  readonly at: string;
  readonly ms: number;
  readonly report: SweepReport;
  /** Transactions resolved, as listed before the sweep (up to `--limit`). */
  readonly resolvedTransactions: ReadonlyArray<{ txId: string; ageMs: number; outcome: string; keys: number; regions: number }>;
  readonly unreachable: readonly string[];
}

/**
 * `sweep`: runs the recovery sweeper once (exit 0 when nothing was left unresolved, 1 otherwise, 4 when a
 * memcached server did not answer), or with `--watch` every `--interval` until SIGINT/SIGTERM (exit 0).
 */
export async function sweepCommand(session: CliSession, v: CommandOptions, io: CliOutput): Promise<number> {
  const { minAgeMs, limit, batchSize, intervalMs } = v;
  if (!v.watch) {
    const run = await sweepOnce(session, { minAgeMs, limit, batchSize }, io, !v.json && !v.quiet);
    print(run, v, io);
    if (run.report.unresolved > 0) return EXIT.inDoubt;
    return run.unreachable.length > 0 ? EXIT.unreachable : EXIT.ok;
  }

  const signal = stopSignal();
  if (!v.json) io.err(`sweeping every ${formatAge(intervalMs)} (rows older than ${formatAge(minAgeMs)}); Ctrl-C stops`);
  try {
    while (!signal.stopping) {
      try {
        print(await sweepOnce(session, { minAgeMs, limit, batchSize }, io, !v.json && !v.quiet), v, io, true);
      } catch (error) {
        // A watcher outlives outages: report and try again at the next interval.
        io.err(`${new Date().toISOString()} sweep failed: ${describe(error)}`);
      }
      if (signal.stopping) break;
      await signal.pause(intervalMs);
    }
  } finally {
    signal.release();
  }
  return EXIT.ok;
}

async function sweepOnce(session: CliSession, o: { minAgeMs: number; limit: number; batchSize: number }, io: CliOutput, progress: boolean): Promise<SweepRun> {
  const probe = await session.probeMemcached();
  const before = (await session.cache.listInDoubt(session.db, o.limit)).filter((tx) => tx.ageMs >= o.minAgeMs);
  const started = performance.now();
  let shown = false;
  const report = await session.cache.sweep(session.db, {
    minAgeMs: o.minAgeMs,
    batchSize: o.batchSize,
    onProgress: (p) => {
      // Only long runs need it: from the second batch or after a second.
      if (!progress || (p.batches < 2 && performance.now() - started < 1000)) return;
      shown = true;
      const line = `sweeping: batch ${p.batches}, ${formatCount(p.resolved)} resolved, ${formatCount(p.unresolved)} left, ${formatCount(p.keys)} keys, ${formatAge(performance.now() - started)}`;
      io.err(io.interactive ? `\r${line}\u001b[K\r` : line);
    },
  });
  if (shown && io.interactive) io.err('\r\u001b[K\r');
  const ms = Math.round(performance.now() - started);
  const remaining = await stillLogged(session, before);
  const resolvedTransactions = before
    .filter((tx) => !remaining.has(tx.txId))
    .map((tx: InDoubtTransaction) => ({ txId: tx.txId, ageMs: Math.round(tx.ageMs), outcome: tx.outcome, keys: tx.keys.filter((k) => !k.region).length, regions: tx.keys.filter((k) => k.region).length }));
  return { at: new Date().toISOString(), ms, report, resolvedTransactions, unreachable: probe.unreachable };
}

async function stillLogged(session: CliSession, txs: readonly InDoubtTransaction[]): Promise<Set<string>> {
  if (txs.length === 0) return new Set();
  const { rows } = await session.pool.query(`SELECT tx_id::text AS tx_id FROM ${session.config.logTable} WHERE tx_id = ANY($1::uuid[])`, [txs.map((tx) => tx.txId)]);
  return new Set((rows as Array<{ tx_id: string }>).map((r) => r.tx_id));
}

function print(run: SweepRun, v: CommandOptions, io: CliOutput, watching = false): void {
  if (v.json) {
    io.out(JSON.stringify(run, null, watching ? undefined : 2));
    return;
  }
  for (const server of run.unreachable) io.err(`warning: memcached ${server} does not answer; transactions with keys there stay in doubt`);
  const { report } = run;
  const prefix = watching ? `${run.at} ` : '';
  if (report.resolved + report.unresolved === 0) {
    if (!v.quiet || !watching) io.out(`${prefix}Nothing to sweep (${formatAge(run.ms)}).`);
    return;
  }
  io.out(`${prefix}Resolved ${formatCount(report.resolved)} transaction${report.resolved === 1 ? '' : 's'} (${formatCount(report.keys)} keys) in ${formatAge(run.ms)}${report.unresolved > 0 ? `; ${formatCount(report.unresolved)} left in doubt (keys on unreachable servers; the next sweep retries)` : ''}.`);
  if (v.quiet) return;
  for (const tx of run.resolvedTransactions) {
    io.out(`  ${tx.txId}  ${tx.outcome}, ${formatAge(tx.ageMs)} old: ${tx.keys} item${tx.keys === 1 ? '' : 's'} unlocked/evicted, ${tx.regions} region${tx.regions === 1 ? '' : 's'} renewed`);
  }
  const unlisted = report.resolved - run.resolvedTransactions.length;
  if (unlisted > 0) io.out(`  … and ${formatCount(unlisted)} more`);
}
