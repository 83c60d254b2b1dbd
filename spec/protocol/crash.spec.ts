import { expect } from 'chai';
import { fileURLToPath } from 'node:url';
import { sharedServers } from '../support/global-servers.js';
import { ProtocolFixture } from '../support/protocol-fixture.js';
import { killAtReady } from '../support/kill-at-ready.js';
import { decodeEntry } from '../../lib/protocol/entry-codec.js';
import { lockHolders } from '../../lib/protocol/entry.js';
import { regionKey } from '../../lib/protocol/protocol-context.js';

const child = fileURLToPath(new URL('./crash-writer.js', import.meta.url));
const LOCK_TTL = 2;

/** Starts a writer process and SIGKILLs it once it reports it reached the crash point. */
async function killWriterAt(crashAt: string, f: ProtocolFixture, ids: number[], extraEnv: Record<string, string> = {}): Promise<void> {
  const s = sharedServers();
  const env = { ...process.env, CRASH_AT: crashAt, MEMCACHED_SERVERS: s.memcachedAddresses.join(','), DATABASE_URL: s.db, NAMESPACE: f.namespace, LOCK_TTL: String(LOCK_TTL), IDS: ids.join(','), ...extraEnv };
  await killAtReady(child, env, crashAt);
}

async function waitUntil(condition: () => Promise<boolean>, what: string, limitMs = 15_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('crash safety: a writer SIGKILLed between the phases', function () {
  this.timeout(60_000);
  let f: ProtocolFixture;
  const ids = [1, 2, 3, 4];
  const query = { regions: ['kv'] };

  beforeEach(async () => {
    const s = sharedServers();
    f = await ProtocolFixture.create(s.memcachedAddresses, s.db, { protocol: { lockTtlSeconds: LOCK_TTL } });
    await f.seed(ids);
    // Warm the cache with the old values and an old query result, so any stale value would show.
    for (const id of ids) await f.read(id);
    await f.cache.reader.fetch('q:all', async () => Buffer.from('old'), query);
  });

  afterEach(async () => f.close());

  /** Every read equals the database, at this instant: G2 across the crash. */
  async function expectNothingStale(): Promise<void> {
    for (const id of ids) expect(await f.read(id), `row ${id}`).to.deep.equal(await f.dbRow(id));
    expect((await f.cache.reader.read('q:all', { ...query, lease: false })).status, 'query result').to.equal('miss');
  }

  async function lockedKeys(): Promise<string[]> {
    const keys = [...ids.map((id) => `kv:${id}`), regionKey('kv')];
    const { items } = await f.store.getMulti(keys);
    return keys.filter((k) => {
      const item = items.get(k);
      const entry = item ? decodeEntry(item.value) : undefined;
      return entry?.kind === 'lock' && lockHolders(entry).length > 0;
    });
  }

  it('needs the durable log: without it, the sweeper cannot resolve a crash after COMMIT (the check catches it)', async () => {
    await killWriterAt('after-commit', f, ids, { SKIP_LOG: '1' });
    expect((await f.dbRow(1)).v, 'the transaction committed').to.equal(2);
    const report = await f.cache.sweep(f.pool, { minAgeMs: 0 });
    expect(report.resolved).to.equal(0);
    expect(await lockedKeys(), 'G6 is broken: in-doubt keys stay locked until they expire').to.not.be.empty;
  });

  for (let run = 1; run <= 3; run++) {
    it(`after prepare: the database rolls back, nothing stale is read, locks expire (run ${run})`, async () => {
      await killWriterAt('after-prepare', f, ids.slice(0, run + 1));
      await waitUntil(async () => (await f.pool.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'`)).rows[0].n === 0, 'the killed backend to abort');
      expect(await lockedKeys()).to.not.be.empty;
      await expectNothingStale();
      for (const id of ids) expect((await f.dbRow(id)).v).to.equal(1);
      // Nothing committed, so nothing is logged: the locks expire on memcached's clock.
      expect(await f.cache.log.count(f.pool)).to.equal(0);
      await waitUntil(async () => (await lockedKeys()).length === 0, 'locks to expire');
      await expectNothingStale();
      expect(await f.cache.log.count(f.pool)).to.equal(0);
    });

    for (const [crashAt, name] of [
      ['after-commit', 'after COMMIT, before promote'],
      ['mid-promote', 'in the middle of promote'],
    ] as const) {
      it(`${name}: nothing stale is read and one sweep resolves everything (run ${run})`, async () => {
        await killWriterAt(crashAt, f, ids.slice(0, run + 1));
        expect((await f.dbRow(1)).v, 'the transaction committed').to.equal(2);
        if (crashAt === 'after-commit') expect(await lockedKeys()).to.not.be.empty;
        await expectNothingStale();
        const report = await f.cache.sweep(f.pool, { minAgeMs: 0 });
        expect(report).to.include({ resolved: 1, unresolved: 0 });
        expect(await lockedKeys()).to.be.empty;
        expect(await f.cache.log.count(f.pool)).to.equal(0);
        await expectNothingStale();
      });
    }
  }
});
