import { expect } from 'chai';
import { sharedServers } from '../support/global-servers.js';
import { runProtocolHistory } from '../support/protocol-history.js';
import type { UnsafeTestSwitches } from '../../lib/protocol/protocol-options.js';
import { FAULT_KINDS, formatReport, runConsistency, type RunReport } from './coordinator.js';
import { checkHistory, type OpRecord, type OutsideBound } from './checker.js';
import type { CommittedTx } from './schema.js';

/*
 * The consistency checker (spec/consistency/): worker processes run a seeded random mix against the bookstore-like
 * c_item / c_group schema under injected faults, and the history is checked for G1, G2/G3, G4, G5, G6, G7, G12.
 * Items carry a unique `code` (a cached unique key): lookups by code are checked against the history of each
 * code's owner, and the index entries the run leaves are audited against the database. The workers start the
 * cache with `startXaCache` (one of them is the elected outside-changes follower) and an external writer (a plain
 * `pg` client) writes the cached tables too: reads are held to the outside-writers bound after its commits (G13).
 * The long run is `npm run check:consistency -- --duration <s> --seed <n> --policy strict|degrade|both`.
 */

const SHORT_MS = Number(process.env.CONSISTENCY_SHORT_MS ?? 45_000);
const show = (report: RunReport): void => {
  for (const line of formatReport(report)) console.log(`      ${line}`);
};

describe('consistency checker: a short run with every fault', function () {
  this.timeout(SHORT_MS + 120_000);

  for (const policy of ['strict', 'degrade'] as const) {
    it(`${policy}: zero anomalies${policy === 'degrade' ? ' beyond the documented staleness bound' : ''}, every fault kind injected`, async () => {
      const seed = Number(process.env.CONSISTENCY_SEED ?? 20260501) + (policy === 'degrade' ? 1 : 0);
      const report = await runConsistency({
        databaseUrl: sharedServers().db,
        seed,
        policy,
        durationMs: policy === 'strict' ? SHORT_MS : Math.round(SHORT_MS * 0.6),
        logFile: `.tmp/consistency/spec-${policy}-${seed}.json`,
        print: () => undefined,
      });
      show(report);
      expect(report.summary.operations, 'operations checked').to.be.greaterThan(500);
      expect(report.summary.externalCommits, 'commits of the external writer').to.be.greaterThan(0);
      for (const kind of FAULT_KINDS) expect(report.faultCounts[kind], `fault ${kind} injected`).to.be.at.least(1);
      expect(report.summary.anomalies, formatReport(report).join('\n')).to.deep.equal([]);
    });
  }
});

describe('consistency checker: cached group queries while items move between groups', function () {
  this.timeout(120_000);

  it('strict: zero anomalies with most of the mix caching find(CItem, { grp }) and moving items in and out', async () => {
    const report = await runConsistency({
      databaseUrl: sharedServers().db,
      seed: 20260516,
      durationMs: 10_000,
      faults: ['kill-worker', 'evict', 'garbage'],
      faultEveryMs: 2000,
      predicateShare: 0.6,
      logFile: '.tmp/consistency/spec-predicates.json',
      print: () => undefined,
    });
    show(report);
    expect(report.summary.operations, 'operations checked').to.be.greaterThan(300);
    expect(report.summary.anomalies, formatReport(report).join('\n')).to.deep.equal([]);
  });
});

describe('consistency checker: catches each safeguard switched off', function () {
  this.timeout(180_000);

  it('fills without a lease (fillWithoutLease): stale reads (G2/G3) through the ORM workers', async () => {
    // A stale fill needs a reader's slow load to straddle a commit. Every fill's read is slowed (up to 30 ms) and the
    // writers' are not, so commits land inside those loads: locally each seed shows ~20 stale reads (with the
    // default slow reads, a CI run once showed none in three seeds). Up to three seeds run until one shows it.
    let found = 0;
    for (const seed of [7, 17, 27]) {
      const report = await runConsistency({
        databaseUrl: sharedServers().db,
        seed,
        durationMs: 15_000,
        faults: [],
        slowReads: 1,
        slowReadMs: 30,
        slowReadsOutsideTransactions: true,
        // With write-through a commit leaves the row's value in place, so a reader rarely misses a key a writer is
        // about to change, and a lease-less fill straddling a commit (what this mutation breaks) becomes rare:
        // the safeguard is shown on the eviction path, where every commit leaves its keys to be filled.
        writeThrough: false,
        switches: { fillWithoutLease: true },
        print: () => undefined,
      });
      show(report);
      // Either shows the older image written: a read of it after the newer commit returned, or the end audit finding
      // it still cached (on a loaded machine, with few reads, often only the latter: three seeds of four, none read).
      found += (report.byGuarantee.G2 ?? 0) + (report.byGuarantee.G6 ?? 0);
      if (found > 0) break;
    }
    expect(found, 'stale values found').to.be.greaterThan(0);
  });

  it('captured changes ignored by prepare (skipCapture): stale reads (G2/G3) after writes only the database reports', async () => {
    // Triggers, cascades, functions and Kysely writes change cached rows that no statement names; without the
    // capture their keys are neither locked nor evicted, and reads keep serving the old rows.
    let found = 0;
    for (const seed of [7, 17, 27]) {
      const report = await runConsistency({
        databaseUrl: sharedServers().db,
        seed,
        durationMs: 8_000,
        faults: [],
        switches: { skipCapture: true },
        logFile: `.tmp/consistency/spec-skipCapture-${seed}.json`,
        print: () => undefined,
      });
      show(report);
      // Either shows the older image written: a read of it after the newer commit returned, or the end audit finding
      // it still cached (on a loaded machine, with few reads, often only the latter: three seeds of four, none read).
      found += (report.byGuarantee.G2 ?? 0) + (report.byGuarantee.G6 ?? 0);
      if (found > 0) break;
    }
    expect(found, 'stale values found').to.be.greaterThan(0);
  });

  it('outside changes never applied (skipOutsideChanges): reads stale past the bound after the external writer\'s commits (G13)', async () => {
    // Nobody applies what the external writer commits: the values it replaced stay cached after the bound, until an
    // application write of the same key evicts them. Two workers with a read-heavy mix write rarely enough for the
    // old values to outlive W (with all four and the usual mix, an item is rewritten every few hundred ms).
    let found = 0;
    for (const seed of [7, 17, 27]) {
      const report = await runConsistency({
        databaseUrl: sharedServers().db,
        seed,
        durationMs: 5_000,
        workers: 2,
        extraReads: 0.8,
        faults: [],
        switches: { skipOutsideChanges: true },
        logFile: `.tmp/consistency/spec-skipOutsideChanges-${seed}.json`,
        print: () => undefined,
      });
      show(report);
      found += report.byGuarantee.G13;
      if (found > 0) break;
    }
    expect(found, 'stale reads past the outside-writers bound').to.be.greaterThan(0);
  });

  it('old values\' unique-key entries forgotten (forgetOldUniqueValues): entries naming items that gave the code up (G6 audit)', async () => {
    // A lookup checks that the row it is about to serve still holds the code, so a forgotten entry costs a database
    // read, never a wrong answer: the idle-time audit of the index entries is what sees it.
    let found = 0;
    for (const seed of [7, 17, 27]) {
      const report = await runConsistency({
        databaseUrl: sharedServers().db,
        seed,
        durationMs: 6_000,
        faults: [],
        codeShare: 0.5,
        switches: { forgetOldUniqueValues: true },
        logFile: `.tmp/consistency/spec-forgetOldUniqueValues-${seed}.json`,
        print: () => undefined,
      });
      show(report);
      found += report.summary.anomalies.filter((a) => a.guarantee === 'G6' && /index entry of code/.test(a.what)).length;
      if (found > 0) break;
    }
    expect(found, 'index entries naming an item that no longer holds the code').to.be.greaterThan(0);
  });

  it('the last holder of a shared lock writes its image (writeThroughSharedLock): stale values read (G2) or left in the cache (G6) through the ORM workers', async () => {
    // Write-through is on in every worker: a writer that commits first but promotes after a second writer joined
    // its lock would write the older row image. Writers of one item queue on its slot row, so the second one
    // joins while the first one's promote is still on its way: a window of a memcached round trip or two.
    let found = 0;
    for (const seed of [7, 17, 27, 37]) {
      const report = await runConsistency({
        databaseUrl: sharedServers().db,
        seed,
        durationMs: 10_000,
        faults: [],
        slowReads: 0,
        // Promotes in either order: the stale image needs the first committer to promote after the second. With 30 ms
        // of jitter two seeds of four showed none with both cores busy; with 100 ms every seed showed some.
        writeThrough: true,
        switches: { writeThroughSharedLock: true, promoteJitterMs: 100 },
        logFile: `.tmp/consistency/spec-writeThroughSharedLock-${seed}.json`,
        print: () => undefined,
      });
      show(report);
      // Either shows the older image written: a read of it after the newer commit returned, or the end audit finding
      // it still cached (on a loaded machine, with few reads, often only the latter: three seeds of four, none read).
      found += (report.byGuarantee.G2 ?? 0) + (report.byGuarantee.G6 ?? 0);
      if (found > 0) break;
    }
    expect(found, 'stale values found').to.be.greaterThan(0);
  });

  it('old values\' conjunctions forgotten (forgetOldConjunctions): stale query results (G2/G3) after items moved out of a group', async () => {
    // `find(CItem, { grp })` results depend on the conjunction grp_id = g (docs/protocol.md, "Conjunction regions"):
    // an item moved out of g renews only its new group's conjunction, and g's cached result keeps listing it (at
    // its version before the move: a stale read of the item, or of the group's members).
    let found = 0;
    for (const seed of [17, 7, 27, 37]) {
      const report = await runConsistency({
        databaseUrl: sharedServers().db,
        seed,
        durationMs: 8_000,
        faults: [],
        predicateShare: 0.6,
        switches: { forgetOldConjunctions: true },
        logFile: `.tmp/consistency/spec-forgetOldConjunctions-${seed}.json`,
        print: () => undefined,
      });
      show(report);
      found += report.byGuarantee.G2 ?? 0;
      if (found > 0) break;
    }
    expect(found, 'stale query results found').to.be.greaterThan(0);
  });

  it('a durable log skipped (skipLog): in-doubt keys the sweeper cannot resolve after a crash after COMMIT (G6)', async () => {
    const report = await runConsistency({
      databaseUrl: sharedServers().db,
      seed: 8,
      durationMs: 12_000,
      faults: ['kill-mid-promote'],
      faultEveryMs: 1500,
      switches: { skipLog: true },
      print: () => undefined,
    });
    show(report);
    expect(report.faultCounts['kill-mid-promote']).to.be.at.least(1);
    expect(report.byGuarantee.G6, 'unresolved in-doubt keys found').to.be.greaterThan(0);
  });

  // These run with protocol-level workers, which put values on every other write and hold every other promote until
  // a racing writer has returned: the ORM workers write values only through write-through, and their writers of one
  // item queue in the database, which leaves these races a narrow window.
  /** Like spec/protocol/concurrency.spec: a mutation shows within a few thousand operations; several seeds keep one unlucky run from hiding it. */
  async function protocolLevel(switches: UnsafeTestSwitches, anomaly: 'dirty' | 'stale'): Promise<number> {
    const s = sharedServers();
    for (const seed of [7, 8, 9, 10, 11, 12]) {
      const verdict = await runProtocolHistory(s.memcachedAddresses, s.db, { ops: 4000, seed, protocol: { unsafeTestSwitches: switches } });
      console.log(`      protocol-level history, seed ${seed}: ${verdict.reads} reads, ${verdict.hits} hits, ${verdict.rollbacks} rollbacks, dirty ${verdict.dirty}, stale ${verdict.stale}`);
      if (verdict[anomaly] > 0) return verdict[anomaly];
    }
    return 0;
  }

  it('promote without compare-and-swap (promoteWithoutCas): stale reads (protocol-level workers)', async () => {
    expect(await protocolLevel({ promoteWithoutCas: true }, 'stale')).to.be.greaterThan(0);
  });

  it('rollback promotes instead of releasing (rollbackAsCommit): reads of rolled-back values (protocol-level workers)', async () => {
    expect(await protocolLevel({ rollbackAsCommit: true }, 'dirty')).to.be.greaterThan(0);
  });

  it('the last holder of a shared lock writes its value (writeThroughSharedLock): stale reads (protocol-level workers)', async () => {
    expect(await protocolLevel({ writeThroughSharedLock: true }, 'stale')).to.be.greaterThan(0);
  });
});

describe('consistency checker: the outside-writers bound (G13) on a hand-made history', () => {
  // Item 1: v1 seeded; v2 committed by the external writer, acknowledged at t=100 (coordinator clock).
  const history: CommittedTx[] = [
    { token: 'seed', xid: '1', states: [{ key: 'i:1', version: 1, token: 'seed' }] },
    { token: 'ext', xid: '2', states: [{ key: 'i:1', version: 2, token: 'ext' }] },
  ];
  const external: OpRecord = { worker: 4, seq: 1, op: { kind: 'extUpdate', ids: [1] }, tokens: ['ext'], start: 90, end: 104, ackAt: 100, result: { ok: true, obs: [], token: 'ext' } };
  const readAt = (start: number): OpRecord => ({ worker: 0, seq: 2, op: { kind: 'read', id: 1 }, tokens: [], start, end: start + 2, result: { ok: true, obs: [{ key: 'i:1', token: 'seed', version: 1 }] } });
  const bound = (disturbances: OutsideBound['disturbances'] = []): OutsideBound => ({ ms: 1000, followerIntervalMs: 1000, disturbances });

  it('allows the replaced value only to reads sent within W after the acknowledgement, and measures them', () => {
    const inside = checkHistory([external, readAt(1099)], history, { outside: bound() });
    expect(inside.anomalies).to.deep.equal([]);
    expect(inside.outsideStale.sent.max).to.equal(999);
    const after = checkHistory([external, readAt(1101)], history, { outside: bound() });
    expect(after.anomalies.map((a) => a.guarantee)).to.deep.equal(['G13']);
  });

  it('extends the bound past a fault that may have kept the follower from applying (to its end, plus one follower interval, plus W)', () => {
    const killed = bound([{ kind: 'killed worker', start: 500, end: 3000 }]);
    expect(checkHistory([external, readAt(4999)], history, { outside: killed }).anomalies).to.deep.equal([]);
    expect(checkHistory([external, readAt(5001)], history, { outside: killed }).anomalies.map((a) => a.guarantee)).to.deep.equal(['G13']);
  });

  it('holds a later commit of the library to G2 at once, whatever the external commit before it', () => {
    const withLibrary: CommittedTx[] = [...history, { token: 'lib', xid: '3', states: [{ key: 'i:1', version: 3, token: 'lib' }] }];
    const write: OpRecord = { worker: 1, seq: 1, op: { kind: 'update', ids: [1], via: 'flush' }, tokens: ['lib'], start: 110, end: 130, result: { ok: true, obs: [], token: 'lib' } };
    expect(checkHistory([external, write, readAt(200)], withLibrary, { outside: bound() }).anomalies.map((a) => a.guarantee)).to.deep.equal(['G2']);
  });
});
