import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import type { DecodedEntry, Entry } from '../../lib/protocol/entry.js';
import { prepareTransition, promoteTransition, releaseTransition } from '../../lib/protocol/key-transitions.js';
import { composeTransitions } from '../../lib/protocol/compose-transitions.js';

const me = randomUUID();
const other = randomUUID();
const gen = randomUUID();
const value: Entry = { kind: 'value', generations: new Map(), payload: Buffer.from('v') };
const lock = (holders: string[], concurrent = false, prior?: string): DecodedEntry => ({ kind: 'lock', holders, concurrent, prior });

describe('key transitions', () => {
  describe('prepare', () => {
    it('locks an absent key, a value, a lease and foreign bytes for this transaction alone', () => {
      for (const current of [undefined, value, { kind: 'lease', token: other } as const, { kind: 'foreign', reason: 'x' } as const]) {
        expect(prepareTransition(current, me, 'item')).to.deep.equal({ action: 'write', entry: lock([me]), ttl: 'lock' });
      }
    });

    it('joins a lock held by another transaction and marks it concurrent', () => {
      expect(prepareTransition(lock([other], false, gen), me, 'region')).to.deep.equal({ action: 'write', entry: lock([other, me], true, gen), ttl: 'lock' });
    });

    it('keeps a lock it already holds', () => {
      expect(prepareTransition(lock([me]), me, 'item')).to.deep.equal({ action: 'keep' });
    });

    it('remembers the generation a region lock replaces', () => {
      expect(prepareTransition({ kind: 'generation', id: gen }, me, 'region')).to.deep.equal({ action: 'write', entry: lock([me], false, gen), ttl: 'lock' });
    });
  });

  describe('promote', () => {
    it('writes the known value when it was the only holder ever', () => {
      expect(promoteTransition(lock([me]), me, 'item', value)).to.deep.equal({ action: 'write', entry: value, ttl: 'value' });
    });

    it('evicts when the value is not known', () => {
      expect(promoteTransition(lock([me]), me, 'item', undefined)).to.deep.equal({ action: 'delete' });
    });

    it('evicts instead of writing when the lock was ever shared', () => {
      expect(promoteTransition(lock([me], true), me, 'item', value)).to.deep.equal({ action: 'delete' });
    });

    it('leaves the other holders locked, concurrent, and forgets the prior generation', () => {
      expect(promoteTransition(lock([other, me], true, gen), me, 'region', undefined)).to.deep.equal({ action: 'write', entry: lock([other], true), ttl: 'lock' });
    });

    it('gives a region a new generation', () => {
      const t = promoteTransition(lock([me], false, gen), me, 'region', undefined);
      expect(t.action).to.equal('write');
      if (t.action !== 'write' || t.entry.kind !== 'generation') throw new Error('expected a generation');
      expect(t.entry.id).to.not.equal(gen);
    });

    it('evicts whatever replaced a lock it lost: a value, a lease, a generation, foreign bytes', () => {
      for (const current of [value, { kind: 'lease', token: other } as const, { kind: 'generation', id: gen } as const, { kind: 'foreign', reason: 'x' } as const]) {
        expect(promoteTransition(current, me, 'item', value)).to.deep.equal({ action: 'delete' });
      }
    });

    it("marks another transaction's lock concurrent so its holder will not write a possibly older value", () => {
      expect(promoteTransition(lock([other]), me, 'item', value)).to.deep.equal({ action: 'write', entry: lock([other], true), ttl: 'lock' });
      expect(promoteTransition(lock([other], true), me, 'item', value)).to.deep.equal({ action: 'keep' });
    });

    it('does nothing to an absent key', () => {
      expect(promoteTransition(undefined, me, 'item', value)).to.deep.equal({ action: 'keep' });
    });
  });

  describe('release', () => {
    it('restores the prior generation of a region lock never shared', () => {
      expect(releaseTransition(lock([me], false, gen), me, 'region')).to.deep.equal({ action: 'write', entry: { kind: 'generation', id: gen }, ttl: 'forever' });
    });

    it('evicts an item it held alone, and a shared region', () => {
      expect(releaseTransition(lock([me]), me, 'item')).to.deep.equal({ action: 'delete' });
      expect(releaseTransition(lock([me], true, gen), me, 'region')).to.deep.equal({ action: 'delete' });
    });

    it('leaves the other holders as they were', () => {
      expect(releaseTransition(lock([other, me], true, gen), me, 'region')).to.deep.equal({ action: 'write', entry: lock([other], true, gen), ttl: 'lock' });
    });

    it('keeps anything it does not hold', () => {
      for (const current of [undefined, value, lock([other])]) expect(releaseTransition(current, me, 'item')).to.deep.equal({ action: 'keep' });
    });
  });

  describe('composition (the sweeper resolving several transactions of one key)', () => {
    it('removes every listed holder in turn', () => {
      const steps = [me, other].map((tx) => (e: DecodedEntry | undefined) => promoteTransition(e, tx, 'item', undefined));
      expect(composeTransitions(lock([me, other], true), steps)).to.deep.equal({ action: 'delete' });
    });

    it('keeps a key nothing changes', () => {
      const steps = [me].map((tx) => (e: DecodedEntry | undefined) => promoteTransition(e, tx, 'item', undefined));
      expect(composeTransitions(undefined, steps)).to.deep.equal({ action: 'keep' });
    });
  });
});
