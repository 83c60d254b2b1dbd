import { expect } from 'chai';
import { Servers } from '../support/servers.js';
import { sharedServers } from '../support/global-servers.js';
import { ProtocolFixture } from '../support/protocol-fixture.js';
import { lockHolders } from '../../lib/protocol/entry.js';
import { decodeEntry } from '../../lib/protocol/entry-codec.js';
import { regionCopies, regionKey } from '../../lib/protocol/protocol-context.js';
import type { CacheTransaction } from '../../lib/protocol/cache-transaction.js';
import type { SweepReport } from '../../lib/protocol/recovery-sweeper.js';

/*
 * The recovery sweeper, listInDoubt and flushLogDeletes. In-doubt transactions are made the way a crash between
 * COMMIT and promote makes them: prepare, COMMIT, and no promote.
 */

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A transaction that committed and whose process "died" before promote: its keys stay locked, its row logged. */
async function committedWithoutPromote(f: ProtocolFixture, keys: string[], regions: string[] = []): Promise<CacheTransaction> {
  const client = await f.pool.connect();
  const tx = f.cache.begin();
  try {
    tx.invalidate(keys);
    tx.touchRegions(regions);
    await client.query('BEGIN');
    await tx.prepare(client);
    await client.query('COMMIT');
  } finally {
    client.release();
  }
  return tx;
}

/** What each key holds: an entry kind, or the store's status (`not_found`, `error`). */
async function kinds(f: ProtocolFixture, keys: string[]): Promise<Map<string, string>> {
  const { items, failed } = await f.store.getMulti(keys);
  // A lock every holder left is as good as absent (readers replace it): it reads 'not_found' here.
  const kindOf = (k: string): string => {
    const item = items.get(k);
    if (!item) return 'not_found';
    const entry = decodeEntry(item.value);
    return entry.kind === 'lock' && lockHolders(entry).length === 0 ? 'not_found' : entry.kind;
  };
  return new Map(keys.map((k) => [k, failed.has(k) ? 'error' : kindOf(k)]));
}

const counts = (m: Map<string, string>): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const kind of m.values()) out[kind] = (out[kind] ?? 0) + 1;
  return out;
};

describe('recovery sweeper', function () {
  this.timeout(30_000);
  const fixtures: ProtocolFixture[] = [];
  let f: ProtocolFixture;

  beforeEach(async () => {
    const s = sharedServers();
    f = await ProtocolFixture.create(s.memcachedAddresses, s.db);
    fixtures.push(f);
  });

  afterEach(async () => {
    for (const fixture of fixtures.splice(0)) await fixture.close();
  });

  /** 300 in-doubt transactions, one item key each, all writing region `kv`. */
  async function manyInDoubt(count = 300): Promise<{ txs: CacheTransaction[]; keys: string[] }> {
    const txs: CacheTransaction[] = [];
    const keys = Array.from({ length: count }, (_, i) => `item:${i}`);
    for (const key of keys) txs.push(await committedWithoutPromote(f, [key], ['kv']));
    const before = await kinds(f, [...keys, regionKey('kv')]);
    expect(counts(before)).to.deep.equal({ lock: count + 1 });
    expect(await f.cache.log.count(f.pool)).to.equal(count);
    return { txs, keys };
  }

  it('resolves 300 in-doubt transactions in batches of 50, reporting each batch, and leaves nothing locked or logged', async () => {
    const { keys } = await manyInDoubt();
    const progress: SweepReport[] = [];
    const report = await f.cache.sweep(f.pool, { minAgeMs: 0, batchSize: 50, onProgress: (p) => progress.push(p) });

    // Each batch renews the region's copies: one per copy (see regionCopies).
    expect(report).to.deep.equal({ resolved: 300, unresolved: 0, batches: 6, keys: 300 + 6 * regionCopies('kv', f.store).length });
    expect(progress.map((p) => [p.batches, p.resolved, p.unresolved])).to.deep.equal([1, 2, 3, 4, 5, 6].map((b) => [b, b * 50, 0]));
    expect(f.cache.stats.sweptTransactions).to.equal(300);
    const after = await kinds(f, keys);
    expect(counts(after)).to.deep.equal({ not_found: 300 });
    // Every holder left the region's lock: it has a new generation, or no generation (readers start a fresh one),
    // so old query results are stale either way.
    expect(['generation', 'not_found']).to.include((await kinds(f, [regionKey('kv')])).get(regionKey('kv')));
    expect(await f.cache.log.count(f.pool)).to.equal(0);
    expect(await f.cache.listInDoubt(f.pool)).to.deep.equal([]);
  });

  it('lets two sweepers run over the same 300 rows at once: each row is resolved exactly once, and the log ends empty', async () => {
    const s = sharedServers();
    const other = await f.sibling(s.memcachedAddresses, s.db);
    fixtures.push(other);
    const { keys } = await manyInDoubt();
    const [a, b] = await Promise.all([
      f.cache.sweep(f.pool, { minAgeMs: 0, batchSize: 50 }),
      other.cache.sweep(other.pool, { minAgeMs: 0, batchSize: 50 }),
    ]);
    expect(a.unresolved + b.unresolved).to.equal(0);
    expect(a.resolved + b.resolved, `${a.resolved} + ${b.resolved}`).to.equal(300);
    expect(f.cache.stats.sweptTransactions + other.cache.stats.sweptTransactions).to.equal(300);
    expect(await f.cache.log.count(f.pool)).to.equal(0);
    expect(counts(await kinds(f, keys))).to.deep.equal({ not_found: 300 });
    expect(['generation', 'not_found']).to.include((await kinds(f, [regionKey('kv')])).get(regionKey('kv')));
  });

  it('leaves rows younger than minAgeMs alone', async () => {
    const txs = [await committedWithoutPromote(f, ['a:1']), await committedWithoutPromote(f, ['a:2'], ['kv'])];
    const report = await f.cache.sweep(f.pool, { minAgeMs: 60_000 });
    expect(report).to.deep.equal({ resolved: 0, unresolved: 0, keys: 0, batches: 0 });
    expect(await f.cache.log.count(f.pool)).to.equal(2);
    expect(counts(await kinds(f, ['a:1', 'a:2', regionKey('kv')]))).to.deep.equal({ lock: 3 });
    // Nor did it claim them: an immediate sweep of any age takes them.
    expect(await f.cache.sweep(f.pool, { minAgeMs: 0 })).to.include({ resolved: txs.length, unresolved: 0 });
    expect(await f.cache.log.count(f.pool)).to.equal(0);
  });

  it('lists an in-doubt transaction with its outcome, age and the state of each key, and nothing after a sweep', async () => {
    const s = sharedServers();
    const other = await f.sibling(s.memcachedAddresses, s.db);
    fixtures.push(other);
    await f.seed([1]);
    const tx = await committedWithoutPromote(f, ['kv:1', 'kv:2'], ['kv']);
    // Another process's transaction on kv:1, promoted (it leaves tx's lock alone), its row waiting for lazy deletion.
    const promoted = await other.write([1]);
    // A live transaction sharing kv:2.
    const shared = await f.prepared(['kv:2']);
    try {
      const list = await f.cache.listInDoubt(f.pool);
      expect(list.map((t) => t.txId)).to.deep.equal([tx.id, promoted.tx.id]);
      const [doubt, done] = list as [(typeof list)[number], (typeof list)[number]];
      expect(doubt.xid).to.equal(tx.xid);
      expect(doubt.outcome).to.equal('committed');
      expect(doubt.ageMs).to.be.a('number').and.at.least(0).and.below(60_000);
      expect(doubt.ageMs).to.be.at.least(done.ageMs);
      expect(doubt.keys).to.deep.equal([
        { key: 'kv:1', region: false, state: 'locked-by-this', holders: [tx.id] },
        { key: 'kv:2', region: false, state: 'locked-by-this', holders: [tx.id, shared.tx.id] },
        ...regionCopies('kv', f.store).map((key) => ({ key, region: true, state: 'locked-by-this', holders: [tx.id] })),
      ]);
      expect(done.outcome).to.equal('committed');
      expect(done.keys).to.deep.equal([{ key: 'kv:1', region: false, state: 'locked-by-others', holders: [tx.id] }]);

      expect(await f.cache.sweep(f.pool, { minAgeMs: 0 })).to.include({ resolved: 2, unresolved: 0 });
      expect(await f.cache.listInDoubt(f.pool)).to.deep.equal([]);
      // The sweep removed only its own holder from the shared lock.
      expect(counts(await kinds(f, ['kv:1', regionKey('kv')]))).to.deep.equal({ not_found: 1, generation: 1 });
      const lock = await f.store.get('kv:2');
      const entry = lock.status === 'hit' ? decodeEntry(lock.item.value) : undefined;
      expect(entry?.kind === 'lock' && lockHolders(entry)).to.deep.equal([shared.tx.id]);
    } finally {
      await shared.rollback();
    }
    expect(await f.cache.listInDoubt(f.pool)).to.deep.equal([]);
  });

  it('flushLogDeletes empties the log of promoted transactions', async () => {
    const txs = await Promise.all([f.prepared(['b:1']), f.prepared(['b:2']), f.prepared(['b:3'])]);
    for (const t of txs) await t.commit();
    expect(await f.cache.log.count(f.pool)).to.equal(3);
    expect(f.cache.pendingLogDeletes).to.equal(3);
    expect(await f.cache.flushLogDeletes(f.pool)).to.equal(3);
    expect(f.cache.pendingLogDeletes).to.equal(0);
    expect(await f.cache.log.count(f.pool)).to.equal(0);
    expect(await f.cache.flushLogDeletes(f.pool)).to.equal(0);
  });

  describe('with a memcached server down', () => {
    let servers: Servers;
    before(async () => {
      servers = await Servers.start({ memcached: 3, postgres: false, owned: true });
    });
    after(async () => servers.stop());

    /** 30 in-doubt transactions over owned servers, one key each; kills the first server. */
    async function sweepWhileDown(claimMs: number | undefined): Promise<{ f: ProtocolFixture; onDead: string[]; onLive: string[] }> {
      const owned = await ProtocolFixture.create(servers.memcachedAddresses, sharedServers().db, { store: { retryAfterMs: 50 } });
      fixtures.push(owned);
      const keys = Array.from({ length: 30 }, (_, i) => `down:${i}`);
      for (const key of keys) await committedWithoutPromote(owned, [key]);
      const victim = servers.memcached[0] as Servers['memcached'][number];
      const onDead = keys.filter((k) => owned.store.serverFor(k) === victim.address);
      const onLive = keys.filter((k) => !onDead.includes(k));
      expect(onDead).to.not.be.empty;
      await victim.kill();

      const report = await owned.cache.sweep(owned.pool, { minAgeMs: 0, ...(claimMs === undefined ? {} : { claimMs }) });
      expect(report).to.include({ resolved: onLive.length, unresolved: onDead.length });
      expect(await owned.cache.log.count(owned.pool)).to.equal(onDead.length);
      expect(counts(await kinds(owned, onLive))).to.deep.equal({ not_found: onLive.length });

      await victim.restart();
      await sleep(100); // past the store's retryAfterMs (50)
      return { f: owned, onDead, onLive };
    }

    it('keeps the rows of an unreachable server (counted unresolved), resolves the rest, and the next sweep after the restart resolves them', async () => {
      const { f: owned, onDead } = await sweepWhileDown(undefined);
      const again = await owned.cache.sweep(owned.pool, { minAgeMs: 0 });
      expect(again).to.include({ resolved: onDead.length, unresolved: 0 });
      expect(await owned.cache.log.count(owned.pool)).to.equal(0);
    });

    it('keeps the rows of an unreachable server (counted unresolved), resolves the rest, and resolves them once the claim is over after the restart', async () => {
      const { f: owned, onDead } = await sweepWhileDown(1);
      const again = await owned.cache.sweep(owned.pool, { minAgeMs: 0 });
      expect(again).to.include({ resolved: onDead.length, unresolved: 0 });
      expect(await owned.cache.log.count(owned.pool)).to.equal(0);
      expect(counts(await kinds(owned, onDead))).to.deep.equal({ not_found: onDead.length });
    });
  });
});
