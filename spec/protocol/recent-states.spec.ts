import { expect } from 'chai';
import { RecentStates } from '../../lib/protocol/recent-states.js';
import type { CasToken } from '../../lib/store/cache-store.js';

const cas = (value: number): CasToken => ({ server: 's:1', epoch: 1, value: BigInt(value) });
const value = { kind: 'value', generations: new Map([['rows:t', 'g']]), payload: Buffer.from('row') } as const;

describe('RecentStates (what prepare may start from)', () => {
  it('keeps values (without their payload), generations and absent keys, with their tokens', () => {
    const recent = new RecentStates();
    recent.remember('v', value, cas(1));
    recent.remember('g', { kind: 'generation', id: 'gen-1' }, cas(2));
    recent.remember('a', undefined, undefined);
    const states = recent.statesOf(['v', 'g', 'a', 'unknown']);
    expect([...states.keys()]).to.deep.equal(['v', 'g', 'a']);
    expect(states.get('v')?.entry?.kind).to.equal('value');
    expect((states.get('v')?.entry as { payload: Buffer }).payload.length, 'payload not kept').to.equal(0);
    expect(states.get('v')?.cas?.value).to.equal(1n);
    expect(states.get('g')).to.deep.equal({ entry: { kind: 'generation', id: 'gen-1' }, cas: cas(2) });
    expect(states.get('a')).to.deep.equal({ entry: undefined, cas: undefined });
  });

  it('forgets a key whose new state cannot be used: locks, leases, foreign bytes, a value without a token', () => {
    const recent = new RecentStates();
    for (const key of ['lock', 'lease', 'foreign', 'tokenless']) recent.remember(key, value, cas(1));
    recent.remember('lock', { kind: 'lock', records: [{ op: '+', txId: 'tx' }], prior: undefined }, cas(2));
    recent.remember('lease', { kind: 'lease', token: 't' }, cas(3));
    recent.remember('foreign', { kind: 'foreign' } as never, cas(4));
    recent.remember('tokenless', value, undefined);
    expect(recent.size).to.equal(0);
  });

  it('forget drops a key', () => {
    const recent = new RecentStates();
    recent.remember('k', value, cas(1));
    recent.forget('k');
    expect(recent.statesOf(['k']).size).to.equal(0);
  });

  it('holds at most its capacity, dropping the key first written longest ago', () => {
    const recent = new RecentStates(3);
    for (const key of ['a', 'b', 'c']) recent.remember(key, value, cas(1));
    recent.remember('b', value, cas(2)); // overwritten in place
    recent.remember('d', value, cas(3));
    expect(recent.size).to.equal(3);
    expect([...recent.statesOf(['a', 'b', 'c', 'd']).keys()]).to.deep.equal(['b', 'c', 'd']);
    expect(recent.statesOf(['b']).get('b')?.cas?.value).to.equal(2n);
  });
});
