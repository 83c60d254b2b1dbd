/**
 * The consistency checker's command line: `npm run check:consistency -- --duration 600 --seed 7 --policy strict`.
 * Starts its own PostgreSQL (or uses DATABASE_URL) and its own memcached servers, runs the workload with every
 * fault, prints operations checked, faults injected and anomalies per guarantee, and exits 1 on any anomaly.
 * `--unsafe fillWithoutLease` (or skipLog, …) switches a safeguard off, to see the checker catch it.
 * `--recheck <log.json>` checks the history of an earlier run's log again, offline.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { PostgresCluster, createDatabase } from '../support/postgres-cluster.js';
import { checkHistory, countByGuarantee, stalenessByKind } from './checker.js';
import { FAULT_KINDS, OPTIONAL_FAULT_KINDS, formatOutside, formatReport, formatStaleness, runConsistency, type FaultKind } from './coordinator.js';
import { DEFAULT_OUTSIDE_BOUND_MS } from './checker.js';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '60' },
    seed: { type: 'string' },
    policy: { type: 'string', default: 'strict' },
    workers: { type: 'string', default: '4' },
    'external-writers': { type: 'string', default: '1' },
    'outside-bound': { type: 'string', default: String(DEFAULT_OUTSIDE_BOUND_MS) },
    'extra-reads': { type: 'string', default: '0' },
    faults: { type: 'string' },
    log: { type: 'string' },
    json: { type: 'string' },
    recheck: { type: 'string' },
    unsafe: { type: 'string' },
    'write-through': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});

if (values.help) {
  console.log(`Usage: npm run check:consistency -- [options]

  --duration SECONDS   how long the workload runs (default 60)
  --seed N             seed of the op mix and the fault schedule (default: random, printed)
  --policy P           strict, degrade or both (default strict)
  --workers N          worker processes (default 4), each an application with startXaCache (one follows the feed)
  --external-writers N external writer processes: plain pg clients writing the cached tables (default 1; 0: none)
  --outside-bound MS   W: a read may return a value an external commit replaced only if sent within W ms after
                       the commit was acknowledged (extended past faults that disturb the follower); default ${DEFAULT_OUTSIDE_BOUND_MS}
  --faults LIST        comma-separated fault kinds, or none (default: all: ${FAULT_KINDS.join(', ')});
                       also ${OPTIONAL_FAULT_KINDS.join(', ')} (SIGSTOP/SIGCONT of a memcached) when named, or all+stall
  --extra-reads SHARE  replace this share of the workers' ops by plain reads (default 0): fewer writes, so a value
                       nobody invalidates stays cached longer (used with --unsafe skipOutsideChanges)
  --write-through on|off  the workers' writeThrough option (default: the library's default)
  --unsafe SWITCH      switch one safeguard off (fillWithoutLease, skipLog, …) to watch the checker catch it
  --log FILE           where to write the run's log (default .tmp/consistency/)
  --json FILE          write the reports (summary, faults, anomalies, degrade staleness per fault kind) as JSON
  --recheck FILE       check an earlier run's log again, offline

Exits 0 when no anomaly was found, 1 otherwise.`);
  process.exit(0);
}

if (values.recheck) {
  const log = JSON.parse(readFileSync(values.recheck, 'utf8'));
  const summary = checkHistory(log.records, log.history, { windows: log.windows, extra: log.extra, outside: log.outside });
  console.log(`rechecked ${values.recheck}: ${summary.operations} operations, ${summary.observations} observations`);
  console.log(`anomalies: ${Object.entries(countByGuarantee(summary.anomalies)).map(([g, n]) => `${g} ${n}`).join(', ')}`);
  for (const line of formatOutside(summary, log.outside)) console.log(line);
  for (const a of summary.anomalies.slice(0, 20)) console.log(`  ${a.guarantee}: ${a.what}`);
  for (const line of formatStaleness(stalenessByKind(summary.staleReads, log.windows ?? []), log.sweepIntervalMs)) console.log(line);
  process.exit(summary.anomalies.length > 0 ? 1 : 0);
}

const seed = values.seed ? Number(values.seed) : Math.floor(Math.random() * 1e6);
const policies = values.policy === 'both' ? (['strict', 'degrade'] as const) : [values.policy as 'strict' | 'degrade'];
let cluster: PostgresCluster | undefined;
let databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) {
  cluster = await PostgresCluster.start();
  databaseUrl = await createDatabase(cluster.url, 'xa_consistency');
}
let anomalies = 0;
const reports: unknown[] = [];
try {
  for (const policy of policies) {
    const logFile = values.log ?? `.tmp/consistency/run-${seed}-${policy}.json`;
    const report = await runConsistency({
      databaseUrl,
      seed,
      policy,
      durationMs: Number(values.duration) * 1000,
      workers: Number(values.workers),
      externalWriters: Number(values['external-writers']),
      outsideBoundMs: Number(values['outside-bound']),
      extraReads: Number(values['extra-reads']),
      faults:
        values.faults === undefined || values.faults === 'all'
          ? FAULT_KINDS
          : values.faults === 'none'
            ? []
            : values.faults === 'all+stall'
              ? [...FAULT_KINDS, ...OPTIONAL_FAULT_KINDS]
              : (values.faults.split(',') as FaultKind[]),
      logFile,
      ...(values['write-through'] === undefined ? {} : { writeThrough: values['write-through'] === 'on' }),
      switches: Object.fromEntries((values.unsafe ?? '').split(',').filter(Boolean).map((k) => [k, true])),
    });
    for (const line of formatReport(report)) console.log(line);
    console.log(`log: ${logFile} (same op streams and fault schedule: --seed ${seed}; re-check: --recheck ${logFile})`);
    anomalies += report.summary.anomalies.length;
    reports.push(report);
    if (values.json) writeFileSync(values.json, JSON.stringify(reports, null, 1));
  }
} finally {
  await cluster?.stop();
}
process.exit(anomalies > 0 ? 1 : 0);
