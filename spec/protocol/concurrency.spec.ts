import { expect } from 'chai';
import { sharedServers } from '../support/global-servers.js';
import { runProtocolHistory } from '../support/protocol-history.js';
import type { UnsafeTestSwitches } from '../../lib/protocol/protocol-options.js';

/**
 * Many concurrent writers and readers over a small key set, the history checked for G1 (no dirty read) and G2/G3
 * (no read older than a commit that returned before it began) — and the check shown to catch the bugs that follow
 * when a safeguard is switched off.
 */
describe('concurrent writers and readers over a small key set', function () {
  this.timeout(120_000);

  it('keeps G1-G3 over thousands of operations', async () => {
    const s = sharedServers();
    const verdict = await runProtocolHistory(s.memcachedAddresses, s.db);
    expect(verdict.reads).to.be.greaterThan(1000);
    expect(verdict.rollbacks).to.be.greaterThan(10);
    expect({ dirty: verdict.dirty, stale: verdict.stale }).to.deep.equal({ dirty: 0, stale: 0 });
    expect(verdict.hits, 'the cache did work: many reads were hits').to.be.greaterThan(verdict.reads / 4);
  });

  const mutations: Array<[keyof UnsafeTestSwitches, 'dirty' | 'stale']> = [
    ['fillWithoutLease', 'stale'],
    ['promoteWithoutCas', 'stale'],
    ['rollbackAsCommit', 'dirty'],
    // Write-through's rule: the last holder of a lock another writer joined may hold the older value.
    ['writeThroughSharedLock', 'stale'],
  ];
  for (const [safeguard, anomaly] of mutations) {
    it(`catches the ${anomaly} reads that follow when ${safeguard} switches a safeguard off`, async () => {
      const s = sharedServers();
      let found = 0;
      // A mutation shows up within a few thousand operations; several seeds keep one unlucky run from hiding it.
      for (const seed of [7, 8, 9, 10, 11, 12]) {
        const verdict = await runProtocolHistory(s.memcachedAddresses, s.db, { seed, ops: 4000, protocol: { unsafeTestSwitches: { [safeguard]: true } } });
        found += verdict[anomaly];
        if (found > 0) break;
      }
      expect(found).to.be.greaterThan(0);
    });
  }
});
