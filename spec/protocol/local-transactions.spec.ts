import { expect } from 'chai';
import { LocalTransactions } from '../../lib/protocol/local-transactions.js';

describe('LocalTransactions (what a reader meeting a lock may wait for)', () => {
  it('settles once every holder ended; nothing to wait for when one is not in flight here', async () => {
    const local = new LocalTransactions();
    local.started('a');
    local.started('b');
    expect(local.endOf(['a', 'other-process'])).to.equal(undefined);
    const both = local.endOf(['a', 'b']) as Promise<unknown>;
    let settled = false;
    void both.then(() => (settled = true));
    local.ended('a');
    await Promise.resolve();
    expect(settled, 'b still in flight').to.equal(false);
    local.ended('b');
    await both;
    expect(local.endOf(['a'])).to.equal(undefined);
    expect(local.size).to.equal(0);
  });

  it('ended twice, or for a transaction it never saw, is harmless', () => {
    const local = new LocalTransactions();
    local.started('a');
    local.ended('a', 'a', 'never-started');
    expect(local.size).to.equal(0);
  });
});
