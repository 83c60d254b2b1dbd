import { expect } from 'chai';
import { randomBytes, randomUUID } from 'node:crypto';
import { decodeEntry, encodeEntry, MAX_LOCK_HOLDERS } from '../../lib/protocol/entry-codec.js';
import type { Entry } from '../../lib/protocol/entry.js';

describe('entry codec', () => {
  const samples: Entry[] = [
    { kind: 'value', generations: new Map(), payload: Buffer.from('{"id":1}') },
    { kind: 'value', generations: new Map([['book', randomUUID()], ['auteur-é', randomUUID()]]), payload: Buffer.alloc(0) },
    { kind: 'lock', holders: [randomUUID()], concurrent: false, prior: undefined },
    { kind: 'lock', holders: [randomUUID(), randomUUID(), randomUUID()], concurrent: true, prior: randomUUID() },
    { kind: 'lease', token: randomUUID() },
    { kind: 'generation', id: randomUUID() },
  ];

  for (const entry of samples) {
    it(`round-trips a ${entry.kind} entry`, () => {
      expect(decodeEntry(encodeEntry(entry))).to.deep.equal(entry);
    });
  }

  it('decodes bytes without the magic as foreign', () => {
    expect(decodeEntry(Buffer.from('hello world')).kind).to.equal('foreign');
    expect(decodeEntry(Buffer.alloc(0)).kind).to.equal('foreign');
    expect(decodeEntry(Buffer.from('12345')).kind).to.equal('foreign');
  });

  it('decodes an unknown format version or kind as foreign', () => {
    const bytes = encodeEntry({ kind: 'lease', token: randomUUID() });
    expect(decodeEntry(Buffer.concat([bytes.subarray(0, 2), Buffer.from([9]), bytes.subarray(3)])).kind).to.equal('foreign');
    expect(decodeEntry(Buffer.concat([bytes.subarray(0, 3), Buffer.from([77]), bytes.subarray(4)])).kind).to.equal('foreign');
  });

  it('decodes every truncation of every entry as foreign or as a shorter value, never throwing', () => {
    for (const entry of samples) {
      const bytes = encodeEntry(entry);
      for (let length = 0; length < bytes.length; length++) {
        const decoded = decodeEntry(bytes.subarray(0, length));
        // A value's payload runs to the end, so a truncated value may still decode, with a shorter payload.
        if (entry.kind !== 'value' || length < bytes.length - entry.payload.length) expect(decoded.kind, `${entry.kind} cut at ${length}`).to.equal('foreign');
      }
    }
  });

  it('survives random garbage with a valid header without throwing', () => {
    for (let i = 0; i < 2000; i++) {
      const bytes = Buffer.concat([Buffer.from([0x58, 0x41, 1, 1 + (i % 4)]), randomBytes(i % 64)]);
      const decoded = decodeEntry(bytes);
      expect(['foreign', 'value', 'lock', 'lease', 'generation']).to.include(decoded.kind);
    }
  });

  it('refuses a lock claiming more holders than its bytes hold', () => {
    const bytes = encodeEntry({ kind: 'lock', holders: [randomUUID()], concurrent: false, prior: undefined });
    bytes.writeUInt16BE(MAX_LOCK_HOLDERS, 5);
    expect(decodeEntry(bytes).kind).to.equal('foreign');
  });
});
