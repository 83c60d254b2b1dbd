import type { InDoubtTransaction } from '../protocol/in-doubt.js';
import type { SweepReport } from '../protocol/recovery-sweeper.js';
import type { CommandOptions } from './command-options.js';
import { EXIT, describe } from './cli-errors.js';
import type { CliOutput } from './cli-output.js';
import type { CliSession } from './cli-session.js';
import { formatAge, formatCount } from './text-table.js';
import { stopSignal } from './stop-signal.js';
import { countLogRows } from './log-row-counts.js';
import { ProgressLine } from './progress-line.js';

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
  const progress = ProgressLine.of(io, v);
  if (!v.watch) {
    const run = await sweepOnce(session, { minAgeMs, limit, batchSize }, progress);
    print(run, v, io);
    if (run.report.unresolved > 0) return EXIT.inDoubt;
    return run.unreachable.length > 0 ? EXIT.unreachable : EXIT.ok;
  }

  const signal = stopSignal();
  if (!v.json) io.err(`sweeping every ${formatAge(intervalMs)} (rows older than ${formatAge(minAgeMs)}); Ctrl-C stops`);
  try {
    while (!signal.stopping) {
      try {
        print(await sweepOnce(session, { minAgeMs, limit, batchSize }, progress), v, io, true);
      } catch (error) {
        progress.clear();
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

async function sweepOnce(session: CliSession, o: { minAgeMs: number; limit: number; batchSize: number }, progress: ProgressLine): Promise<SweepRun> {
  const probe = await session.probeMemcached();
  const before = (await session.cache.listInDoubt(session.db, o.limit)).filter((tx) => tx.ageMs >= o.minAgeMs);
  // The rows a sweep will take, for "n of total": only counted when the line is drawn.
  const total = progress.enabled ? (await countLogRows(session, o.minAgeMs)).old : 0;
  const started = performance.now();
  let report: SweepReport;
  try {
    report = await session.cache.sweep(session.db, {
      minAgeMs: o.minAgeMs,
      batchSize: o.batchSize,
      // A run of one batch is over before a line could help: from the second batch on.
      onProgress: (p) => {
        if (p.batches >= 2) progress.update(sweepProgressText(p, total, performance.now() - started));
      },
    });
  } finally {
    progress.clear();
  }
  const ms = Math.round(performance.now() - started);
  const remaining = await stillLogged(session, before);
  const resolvedTransactions = before
    .filter((tx) => !remaining.has(tx.txId))
    .map((tx: InDoubtTransaction) => ({ txId: tx.txId, ageMs: Math.round(tx.ageMs), outcome: tx.outcome, keys: tx.keys.filter((k) => !k.region).length, regions: tx.keys.filter((k) => k.region).length }));
  return { at: new Date().toISOString(), ms, report, resolvedTransactions, unreachable: probe.unreachable };
}

/** `sweeping: 1,500 of 3,000 rows resolved (batch 3), 4,512 keys, 0 left in doubt, 2.1s`. */
function sweepProgressText(p: SweepReport, total: number, elapsedMs: number): string {
  // Rows logged after the count are swept too: then the total is no longer a bound and is left out.
  const done = p.resolved + p.unresolved <= total ? `${formatCount(p.resolved)} of ${formatCount(total)} rows resolved` : `${formatCount(p.resolved)} rows resolved`;
  return `sweeping: ${done} (batch ${p.batches}), ${formatCount(p.keys)} keys, ${formatCount(p.unresolved)} left in doubt, ${formatAge(elapsedMs)}`;
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
