import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { lockHolders, lockIsConcurrent, type DecodedEntry, type Entry, type LockEntry } from '../../lib/protocol/entry.js';
import { LOCK_COMPACTION_RECORDS, prepareTransition, promoteTransition, releaseTransition } from '../../lib/protocol/key-transitions.js';
import { composeTransitions } from '../../lib/protocol/compose-transitions.js';
import { UNKNOWN_HOLDER } from '../../lib/protocol/entry-codec.js';

const me = randomUUID();
const other = randomUUID();
const gen = randomUUID();
const value: Entry = { kind: 'value', generations: new Map(), payload: Buffer.from('v') };
const join = (txId: string) => ({ op: '+' as const, txId });
const leave = (txId: string) => ({ op: '-' as const, txId });
const lock = (records: LockEntry['records'], prior?: string): LockEntry => ({ kind: 'lock', records, prior });

describe('key transitions', () => {
  describe('lock records', () => {
    it('hold the transactions that joined and did not leave, and remember sharing', () => {
      const l = lock([join(me), join(other), leave(me)]);
      expect(lockHolders(l)).to.deep.equal([other]);
      expect(lockIsConcurrent(l)).to.equal(true);
      expect(lockIsConcurrent(lock([join(me)]))).to.equal(false);
    });
  });

  describe('prepare', () => {
    it('replaces an absent key, a value, a lease and foreign bytes with a lock of this transaction alone', () => {
      for (const current of [undefined, value, { kind: 'lease', token: other } as const, { kind: 'foreign', reason: 'x' } as const]) {
        expect(prepareTransition(current, me, 'item')).to.deep.equal({ action: 'write', entry: lock([join(me)]), ttl: 'lock' });
      }
    });

    it('joins a lock others hold by appending, with no token to lose', () => {
      expect(prepareTransition(lock([join(other)], gen), me, 'region')).to.deep.equal({ action: 'append', records: [join(me)] });
    });

    it('keeps a lock it already holds', () => {
      expect(prepareTransition(lock([join(me)]), me, 'item')).to.deep.equal({ action: 'keep' });
    });

    it('replaces a lock every holder left, as if absent', () => {
      expect(prepareTransition(lock([join(other), leave(other)]), me, 'item')).to.deep.equal({ action: 'write', entry: lock([join(me)]), ttl: 'lock' });
    });

    it('rewrites a long lock with only its holders', () => {
      const records = Array.from({ length: LOCK_COMPACTION_RECORDS }, (_, i) => (i % 2 === 0 ? join(String(i).padStart(12, '0').replace(/^/, '00000000-0000-0000-0000-')) : leave(String(i - 1).padStart(12, '0').replace(/^/, '00000000-0000-0000-0000-'))));
      const t = prepareTransition(lock([join(other), ...records]), me, 'item');
      expect(t).to.deep.equal({ action: 'write', entry: lock([join(other), join(me)]), ttl: 'lock' });
    });

    it('after a lost race joins a long lock by appending instead of rewriting it again', () => {
      const records = Array.from({ length: LOCK_COMPACTION_RECORDS }, () => join(randomUUID()));
      expect(prepareTransition(lock([join(other), ...records]), me, 'region', 0).action).to.equal('write');
      expect(prepareTransition(lock([join(other), ...records]), me, 'region', 1)).to.deep.equal({ action: 'append', records: [join(me)] });
    });

    it('after a lost race joins a region lock every holder left by appending; an item lock is replaced', () => {
      const left = lock([join(other), leave(other)], gen);
      expect(prepareTransition(left, me, 'region', 0)).to.deep.equal({ action: 'write', entry: lock([join(me)]), ttl: 'lock' });
      expect(prepareTransition(left, me, 'region', 1)).to.deep.equal({ action: 'append', records: [join(me)] });
      expect(prepareTransition(left, me, 'item', 1)).to.deep.equal({ action: 'write', entry: lock([join(me)]), ttl: 'lock' });
    });

    it('keeps an overlong lock (held by an unknown transaction) alive without joining it; promote and release leave it to expire', () => {
      const overlong = lock([join(UNKNOWN_HOLDER)]);
      expect(prepareTransition(overlong, me, 'region', 0)).to.deep.equal({ action: 'touch' });
      expect(prepareTransition(overlong, me, 'item', 2)).to.deep.equal({ action: 'touch' });
      expect(promoteTransition(overlong, me, 'region', undefined)).to.deep.equal({ action: 'keep' });
      expect(releaseTransition(overlong, me, 'item')).to.deep.equal({ action: 'keep' });
    });

    it('remembers the generation a region lock replaces', () => {
      expect(prepareTransition({ kind: 'generation', id: gen }, me, 'region')).to.deep.equal({ action: 'write', entry: lock([join(me)], gen), ttl: 'lock' });
    });
  });

  describe('promote', () => {
    it('writes the known value when it was the only holder ever', () => {
      expect(promoteTransition(lock([join(me)]), me, 'item', value)).to.deep.equal({ action: 'write', entry: value, ttl: 'value' });
    });

    it('evicts when the value is not known', () => {
      expect(promoteTransition(lock([join(me)]), me, 'item', undefined)).to.deep.equal({ action: 'delete' });
    });

    it('evicts instead of writing when the lock was ever shared', () => {
      expect(promoteTransition(lock([join(other), leave(other), join(me)]), me, 'item', value)).to.deep.equal({ action: 'delete' });
    });

    it('leaves a lock others still hold by appending', () => {
      expect(promoteTransition(lock([join(other), join(me)], gen), me, 'region', undefined)).to.deep.equal({ action: 'append', records: [leave(me)] });
    });

    it('gives a region a new generation when it is the last holder', () => {
      const t = promoteTransition(lock([join(me)], gen), me, 'region', undefined);
      if (t.action !== 'write' || t.entry.kind !== 'generation') throw new Error('expected a generation');
      expect(t.entry.id).to.not.equal(gen);
    });

    it('evicts whatever replaced a lock it lost: a value, a lease, a generation, foreign bytes', () => {
      for (const current of [value, { kind: 'lease', token: other } as const, { kind: 'generation', id: gen } as const, { kind: 'foreign', reason: 'x' } as const]) {
        expect(promoteTransition(current, me, 'item', value)).to.deep.equal({ action: 'delete' });
      }
    });

    it("makes another transaction's lock concurrent so its holder will not write a possibly older value", () => {
      const t = promoteTransition(lock([join(other)]), me, 'item', value);
      expect(t.action).to.equal('append');
      if (t.action !== 'append') return;
      expect(lockIsConcurrent(lock([join(other), ...t.records]))).to.equal(true);
      expect(lockHolders(lock([join(other), ...t.records]))).to.deep.equal([other]);
      expect(promoteTransition(lock([join(other), join(randomUUID())]), me, 'item', value)).to.deep.equal({ action: 'keep' });
    });

    it('does nothing to an absent key, a dead lock, or a lock it already left', () => {
      expect(promoteTransition(undefined, me, 'item', value)).to.deep.equal({ action: 'keep' });
      expect(promoteTransition(lock([join(other), leave(other)]), me, 'item', value)).to.deep.equal({ action: 'keep' });
      expect(promoteTransition(lock([join(me), join(other), leave(me)]), me, 'item', value)).to.deep.equal({ action: 'keep' });
    });
  });

  describe('release', () => {
    it('restores the prior generation of a region lock never shared', () => {
      expect(releaseTransition(lock([join(me)], gen), me, 'region')).to.deep.equal({ action: 'write', entry: { kind: 'generation', id: gen }, ttl: 'forever' });
    });

    it('evicts an item it held alone, and a region whose lock was shared', () => {
      expect(releaseTransition(lock([join(me)]), me, 'item')).to.deep.equal({ action: 'delete' });
      expect(releaseTransition(lock([join(other), leave(other), join(me)], gen), me, 'region')).to.deep.equal({ action: 'delete' });
    });

    it('leaves a lock others still hold by appending', () => {
      expect(releaseTransition(lock([join(other), join(me)], gen), me, 'region')).to.deep.equal({ action: 'append', records: [leave(me)] });
    });

    it('keeps anything it does not hold', () => {
      for (const current of [undefined, value, lock([join(other)])]) expect(releaseTransition(current, me, 'item')).to.deep.equal({ action: 'keep' });
    });
  });

  describe('composition (the sweeper resolving several transactions of one key)', () => {
    it('lets every listed holder leave; the last one evicts', () => {
      const steps = [me, other].map((tx) => (e: DecodedEntry | undefined) => promoteTransition(e, tx, 'item', undefined));
      expect(composeTransitions(lock([join(me), join(other)]), steps)).to.deep.equal({ action: 'delete' });
    });

    it('appends the leaves of several holders in one append while others remain', () => {
      const third = randomUUID();
      const steps = [me, other].map((tx) => (e: DecodedEntry | undefined) => promoteTransition(e, tx, 'item', undefined));
      expect(composeTransitions(lock([join(me), join(other), join(third)]), steps)).to.deep.equal({ action: 'append', records: [leave(me), leave(other)] });
    });

    it('keeps a key nothing changes', () => {
      const steps = [me].map((tx) => (e: DecodedEntry | undefined) => promoteTransition(e, tx, 'item', undefined));
      expect(composeTransitions(undefined, steps)).to.deep.equal({ action: 'keep' });
    });
  });
});
