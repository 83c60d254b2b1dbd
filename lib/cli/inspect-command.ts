import type { InDoubtTransaction } from '../protocol/in-doubt.js';
import type { CommandOptions } from './command-options.js';
import { EXIT } from './cli-errors.js';
import type { CliOutput } from './cli-output.js';
import type { CliSession } from './cli-session.js';
import { describeKeyState } from './key-state-text.js';
import { formatAge, formatCount, textTable } from './text-table.js';
import { scanOrphanLocks, type LockScan } from './lock-scan.js';
import { countLogRows } from './log-row-counts.js';
import { ProgressLine } from './progress-line.js';

/**
 * `inspect`: the in-doubt transactions of the log, oldest first, with PostgreSQL's outcome and each key's state in
 * memcached. Exit 1 when any is in doubt, 4 when none is but a memcached server did not answer, else 0.
 */
export async function inspectCommand(session: CliSession, options: CommandOptions, io: CliOutput): Promise<number> {
  const { minAgeMs, limit } = options;
  const probe = await session.probeMemcached();
  const [listed, totals] = await Promise.all([session.cache.listInDoubt(session.db, limit), countLogRows(session, minAgeMs)]);
  const inDoubt = listed.filter((tx) => tx.ageMs >= minAgeMs);
  const scan = options.scanLocks ? await scanWithProgress(session, minAgeMs / 1000, ProgressLine.of(io, options)) : undefined;
  const { config } = session;
  if (options.json) {
    io.out(
      JSON.stringify(
        {
          inDoubt: totals.old,
          minAgeMs,
          younger: totals.young,
          shown: inDoubt.length,
          namespace: config.namespace,
          logTable: config.logTable,
          database: config.dbLabel,
          // Whether entries were read with the application's secrets (never the secrets themselves).
          authenticated: config.secrets.length > 0,
          memcached: { servers: config.memcached, unreachable: probe.unreachable },
          transactions: inDoubt.map((tx) => ({ ...tx, ageMs: Math.round(tx.ageMs) })),
          ...(scan && { orphanLocks: scan.locks, hashedKeysNotScanned: scan.hashedSkipped, scanFailed: scan.failed }),
        },
        null,
        2,
      ),
    );
  } else {
    for (const server of probe.unreachable) io.err(`warning: memcached ${server} does not answer; its keys show as unknown`);
    const where = `log table ${config.logTable} in ${config.dbLabel}, namespace "${config.namespace}", ${config.memcached.length} memcached server${config.memcached.length > 1 ? 's' : ''}`;
    const younger = totals.young > 0 ? `; ${totals.young} younger row${totals.young > 1 ? 's' : ''} not shown (promotes in flight or awaiting deletion)` : '';
    if (totals.old === 0) {
      io.out(`Nothing in doubt (older than ${formatAge(minAgeMs)})${younger}.\n${where}`);
    } else {
      io.out(`${totals.old} transaction${totals.old > 1 ? 's' : ''} in doubt (older than ${formatAge(minAgeMs)})${younger}.\n${where}\n\n`);
      io.out(textTable(['TRANSACTION', 'AGE', 'DATABASE', 'KEY', 'STATE'], inDoubt.flatMap((tx) => rowsOf(tx, config.secrets.length > 0))));
      if (totals.old > inDoubt.length) io.out(`… and ${totals.old - inDoubt.length} more (raise --limit)`);
      io.out(`\n${advice(inDoubt)}`);
    }
    if (scan) io.out(`\n${scanText(scan)}`);
  }
  if (totals.old > 0 || (scan && scan.locks.length > 0)) return EXIT.inDoubt;
  return probe.unreachable.length > 0 ? EXIT.unreachable : EXIT.ok;
}

function rowsOf(tx: InDoubtTransaction, authenticated: boolean): string[][] {
  const head = [tx.txId, formatAge(tx.ageMs), tx.outcome];
  const blank = ['', '', ''];
  if (tx.keys.length === 0) return [[...head, '(no keys)', '']];
  return tx.keys.map((key, i) => [...(i === 0 ? head : blank), key.key, describeKeyState(key, tx.txId, authenticated)]);
}

function advice(txs: readonly InDoubtTransaction[]): string {
  const committed = txs.filter((tx) => tx.outcome === 'committed').length;
  const lines = ['Run `mikro-orm-xa-cache sweep` to resolve them: for a committed transaction the sweeper removes its locks,'];
  lines.push('evicts its items and renews its regions, then deletes the log row.');
  if (committed < txs.length) lines.push('Rows whose transaction is still "in progress" are resolved once it ends; "unknown" ones are swept like committed ones.');
  return lines.join('\n');
}

/** `--scan-locks` walks every item of every server: on a big cache that takes a while, so it says how far it is. */
async function scanWithProgress(session: CliSession, minAgeSeconds: number, progress: ProgressLine): Promise<LockScan> {
  try {
    return await scanOrphanLocks(session, minAgeSeconds, 2000, (p) => {
      progress.update(`scanning memcached for orphan locks: ${formatCount(p.itemsListed)} items listed, ${p.serversDone} of ${p.servers} server${p.servers === 1 ? '' : 's'} done`);
    });
  } finally {
    progress.clear();
  }
}

/** The `--scan-locks` section: locks of transactions with no log row. */
function scanText(scan: LockScan): string {
  const lines: string[] = [];
  for (const server of scan.failed) lines.push(`warning: memcached ${server} did not answer the lock scan`);
  if (scan.hashedSkipped > 0) lines.push(`note: ${scan.hashedSkipped} hashed (long) keys could not be scanned`);
  if (scan.locks.length === 0) return [...lines, 'No key is locked by a transaction missing from the log.'].join('\n');
  lines.push(`${scan.locks.length} key${scan.locks.length > 1 ? 's' : ''} locked by transactions missing from the log (they never committed: killed before COMMIT, or a rollback`);
  lines.push('that could not reach memcached). Readers miss these keys, never read stale values; the locks expire by themselves:\n');
  lines.push(textTable(['KEY', 'HOLDERS', 'AGE', 'EXPIRES IN'], scan.locks.map((l) => [l.key, l.holders.join(' '), `${l.ageSeconds}s`, `${l.expiresInSeconds}s`])));
  return lines.join('\n');
}
