import { expect } from 'chai';
import { performance } from 'node:perf_hooks';
import { sharedServers } from '../support/global-servers.js';
import { ProtocolFixture } from '../support/protocol-fixture.js';

interface Committed {
  id: number;
  v: number;
  token: string;
  returnedAt: number;
}
interface Observed {
  id: number;
  v: number;
  token: string;
  startedAt: number;
}

/**
 * Many writers and readers over a few hot keys, through three "processes" (each its own store connections and
 * pool), some writers rolling back, some putting values and some evicting. The history is then checked:
 * G1 no read of a value that was never committed; G2/G3 no read that started after a commit returned sees an
 * older version of that row.
 */
describe('concurrent writers and readers over a small key set', function () {
  this.timeout(120_000);

  it('keeps G1-G3 over thousands of operations', async () => {
    const s = sharedServers();
    const first = await ProtocolFixture.create(s.memcachedAddresses, s.db, { protocol: { leaseWaitMs: 20 } });
    const processes = [first, await first.sibling(s.memcachedAddresses, s.db), await first.sibling(s.memcachedAddresses, s.db)];
    const ids = [1, 2, 3, 4];
    await first.seed(ids);
    const committed: Committed[] = ids.map((id) => ({ id, v: 1, token: 'seed', returnedAt: -Infinity }));
    const rolledBack = new Set<string>();
    const observed: Observed[] = [];
    let seed = 42;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    const deadlineOps = 6000;
    let ops = 0;

    const writer = async (): Promise<void> => {
      while (ops < deadlineOps) {
        ops++;
        const p = pick(processes);
        const chosen = [...new Set([pick(ids), pick(ids)])].sort();
        const rollback = random() < 0.2;
        try {
          const { token, versions } = await p.write(chosen, { rollback, putValues: random() < 0.5, regions: ['kv'] });
          const returnedAt = performance.now();
          if (rollback) rolledBack.add(token);
          else for (const [id, v] of versions) committed.push({ id, v, token, returnedAt });
        } catch (error) {
          // Deadlocks between two writers are the database's business; the cache must survive them.
          if (!String(error).includes('deadlock')) throw error;
        }
      }
    };
    const reader = async (): Promise<void> => {
      while (ops < deadlineOps) {
        ops++;
        const p = pick(processes);
        const id = pick(ids);
        const startedAt = performance.now();
        const seen = await p.read(id, random() < 0.3 ? 3 : 0);
        observed.push({ id, v: seen.v, token: seen.token, startedAt });
      }
    };
    try {
      await Promise.all([writer(), writer(), writer(), writer(), reader(), reader(), reader(), reader(), reader(), reader(), reader(), reader()]);
    } finally {
      for (const p of processes) await p.close();
    }

    const committedTokens = new Map(committed.map((c) => [`${c.id}:${c.v}`, c.token]));
    let dirty = 0;
    let stale = 0;
    for (const o of observed) {
      if (rolledBack.has(o.token) || committedTokens.get(`${o.id}:${o.v}`) !== o.token) dirty++;
      const newestBefore = Math.max(...committed.filter((c) => c.id === o.id && c.returnedAt < o.startedAt).map((c) => c.v));
      if (o.v < newestBefore) stale++;
    }
    expect(observed.length).to.be.greaterThan(1000);
    expect(rolledBack.size).to.be.greaterThan(10);
    expect({ dirty, stale }).to.deep.equal({ dirty: 0, stale: 0 });
    // The cache did work: most reads were hits.
    const hits = processes.reduce((n, p) => n + p.cache.stats.hits, 0);
    expect(hits).to.be.greaterThan(observed.length / 4);
  });
});
