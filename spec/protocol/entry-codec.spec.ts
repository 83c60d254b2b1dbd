import { expect } from 'chai';
import { randomBytes, randomUUID } from 'node:crypto';
import { decodeEntry, encodeEntry, encodeLockRecords, KEY_MISMATCH, MAX_LOCK_RECORDS, UNKNOWN_HOLDER } from '../../lib/protocol/entry-codec.js';
import { lockHolders, type Entry, type LockRecord } from '../../lib/protocol/entry.js';
import { EntrySealer } from '../../lib/protocol/entry-sealer.js';

describe('entry codec', () => {
  const samples: Entry[] = [
    { kind: 'value', generations: new Map(), payload: Buffer.from('{"id":1}') },
    { kind: 'value', generations: new Map([['book', randomUUID()], ['auteur-é', randomUUID()]]), payload: Buffer.alloc(0) },
    { kind: 'lock', records: [{ op: '+', txId: randomUUID() }], prior: undefined },
    { kind: 'lock', records: [{ op: '+', txId: randomUUID() }, { op: '+', txId: randomUUID() }, { op: '-', txId: randomUUID() }], prior: randomUUID() },
    { kind: 'lease', token: randomUUID() },
    { kind: 'generation', id: randomUUID() },
  ];

  for (const entry of samples) {
    it(`round-trips a ${entry.kind} entry`, () => {
      expect(decodeEntry(encodeEntry(entry))).to.deep.equal(entry);
    });
  }

  it('values decoded one after another keep their own regions and generations (names and ids reused only when equal)', () => {
    const [g1, g2] = [randomUUID(), randomUUID()];
    const values: Entry[] = [
      { kind: 'value', generations: new Map([['rows:a', g1]]), payload: Buffer.from('1') },
      { kind: 'value', generations: new Map([['rows:a', g1]]), payload: Buffer.from('2') },
      { kind: 'value', generations: new Map([['rows:a', g2]]), payload: Buffer.from('3') },
      { kind: 'value', generations: new Map([['rows:b', g2]]), payload: Buffer.from('4') },
      { kind: 'value', generations: new Map([['rows:ab', g2], ['rows:a', g1]]), payload: Buffer.from('5') },
      { kind: 'value', generations: new Map([['rows:a', g1]]), payload: Buffer.from('6') },
    ];
    const encoded = values.map((value) => encodeEntry(value));
    for (let round = 0; round < 2; round++) for (const [i, bytes] of encoded.entries()) expect(decodeEntry(bytes)).to.deep.equal(values[i]);
  });

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

  it('decodes every truncation of every entry as foreign, but for a lock cut between records', () => {
    for (const entry of samples) {
      const bytes = encodeEntry(entry);
      const head = entry.kind === 'lock' ? bytes.length - entry.records.length * 17 : bytes.length;
      for (let length = 0; length < bytes.length; length++) {
        const decoded = decodeEntry(bytes.subarray(0, length));
        // A lock is a log of records appended one by one: cut after a record, it is the lock as it was then.
        const isShorterLock = entry.kind === 'lock' && length > head && (length - head) % 17 === 0;
        expect(decoded.kind, `${entry.kind} cut at ${length}`).to.equal(isShorterLock ? 'lock' : 'foreign');
      }
    }
  });

  it('reads lock records appended to anything but a lock or a generation as foreign', () => {
    const records = encodeLockRecords([{ op: '+', txId: randomUUID() }]);
    for (const entry of samples.filter((e) => e.kind !== 'lock' && e.kind !== 'generation')) {
      expect(decodeEntry(Buffer.concat([encodeEntry(entry), records])).kind, entry.kind).to.equal('foreign');
    }
  });

  it('survives random garbage with a valid header without throwing', () => {
    for (let i = 0; i < 2000; i++) {
      const bytes = Buffer.concat([Buffer.from([0x58, 0x41, 1, 1 + (i % 4)]), randomBytes(i % 64)]);
      const decoded = decodeEntry(bytes);
      expect(['foreign', 'value', 'lock', 'lease', 'generation']).to.include(decoded.kind);
    }
  });

  it('decodes a lock with appended records as the longer lock', () => {
    const a = randomUUID();
    const b = randomUUID();
    const bytes = Buffer.concat([encodeEntry({ kind: 'lock', records: [{ op: '+', txId: a }], prior: undefined }), encodeLockRecords([{ op: '+', txId: b }, { op: '-', txId: a }])]);
    expect(decodeEntry(bytes)).to.deep.equal({ kind: 'lock', records: [{ op: '+', txId: a }, { op: '+', txId: b }, { op: '-', txId: a }], prior: undefined });
  });

  it('refuses a lock whose records are cut short or carry an unknown operation', () => {
    const bytes = encodeEntry({ kind: 'lock', records: [{ op: '+', txId: randomUUID() }], prior: undefined });
    expect(decodeEntry(Buffer.concat([bytes, Buffer.from([0x2b, 1, 2])])).kind).to.equal('foreign');
    const bad = Buffer.from(bytes);
    bad[5] = 0x3f;
    expect(decodeEntry(bad).kind).to.equal('foreign');
  });

  describe('values bound to their key', () => {
    const value: Entry = { kind: 'value', generations: new Map([['rows:public.item', randomUUID()]]), payload: Buffer.from('row 21') };

    it('decode under the key they were written for, and as foreign under any other', () => {
      const bytes = encodeEntry(value, 'e:public.item:21');
      expect(decodeEntry(bytes, 'e:public.item:21')).to.deep.equal(value);
      expect(decodeEntry(bytes, 'e:public.item:1')).to.deep.equal({ kind: 'foreign', reason: KEY_MISMATCH });
      expect(decodeEntry(bytes), 'tools without a key still read it').to.deep.equal(value);
    });

    it('refuse an unbound value under a key', () => {
      expect(decodeEntry(encodeEntry(value), 'e:public.item:1')).to.deep.equal({ kind: 'foreign', reason: KEY_MISMATCH });
    });

    it('are refused across scopes (databases) under the same key, with and without secrets', () => {
      for (const secrets of [[], [randomBytes(32).toString('base64')]]) {
        const refused: string[] = [];
        const a = new EntrySealer(secrets, { onRefused: (reason) => refused.push(reason) });
        const b = new EntrySealer(secrets, { onRefused: (reason) => refused.push(reason) });
        a.setScope('7000000000000000001.app');
        b.setScope('7000000000000000002.app');
        const bytes = a.encode('e:public.item:1', value);
        expect(a.decode('e:public.item:1', bytes)).to.deep.equal(value);
        expect(b.decode('e:public.item:1', bytes).kind).to.equal('foreign');
        expect(refused).to.deep.equal([secrets.length ? 'forged' : 'misbound']);
      }
    });
  });

  describe('joins appended to a generation', () => {
    const generation: Entry = { kind: 'generation', id: randomUUID() };
    const joins: LockRecord[] = [{ op: '+', txId: randomUUID() }, { op: '+', txId: randomUUID() }];
    const joined = { kind: 'lock', records: joins, prior: (generation as { id: string }).id };

    it('read as the lock prepare would have made over that generation', () => {
      const bytes = Buffer.concat([encodeEntry(generation), encodeLockRecords(joins)]);
      expect(decodeEntry(bytes, 'r:t:public.author')).to.deep.equal(joined);
      expect(decodeEntry(Buffer.concat([encodeEntry(generation), Buffer.from('x')])).kind).to.equal('foreign');
    });

    it('with secrets, count only when the generation is authentic', () => {
      const refused: string[] = [];
      const sealer = new EntrySealer([randomBytes(32).toString('base64')], { onRefused: (reason) => refused.push(reason) });
      const key = 'r:t:public.author';
      const sealed = sealer.encode(key, generation);
      expect(sealer.decode(key, sealed)).to.deep.equal(generation);
      expect(sealer.decode(key, Buffer.concat([sealed, encodeLockRecords(joins)]))).to.deep.equal(joined);
      // A planted plain generation with joins would hand a rollback a prior the secret never vouched for.
      expect(sealer.decode(key, Buffer.concat([encodeEntry(generation), encodeLockRecords(joins)])).kind).to.equal('foreign');
      expect(sealer.decode('r:t:public.book', Buffer.concat([sealed, encodeLockRecords(joins)])).kind, 'sealed for another key').to.equal('foreign');
      expect(refused).to.deep.equal(['forged', 'forged']);
    });
  });

  describe('lock size', () => {
    const lockBytes = (count: number): Buffer => {
      const records: LockRecord[] = Array.from({ length: count }, () => ({ op: '+', txId: randomUUID() }));
      return Buffer.concat([encodeEntry({ kind: 'lock', records: records.slice(0, 1), prior: undefined }), encodeLockRecords(records.slice(1))]);
    };

    it(`decodes a lock of ${MAX_LOCK_RECORDS} records, and a longer one as held by an unknown transaction, unparsed`, () => {
      const decoded = decodeEntry(lockBytes(MAX_LOCK_RECORDS));
      expect(decoded.kind === 'lock' && lockHolders(decoded).length).to.equal(MAX_LOCK_RECORDS);
      expect(decodeEntry(lockBytes(MAX_LOCK_RECORDS + 1))).to.deep.equal({ kind: 'lock', records: [{ op: '+', txId: UNKNOWN_HOLDER }], prior: undefined });
      // Still held after a generation too: joins appended to a generation are a lock like any other.
      const overlong = Buffer.concat([encodeEntry({ kind: 'generation', id: randomUUID() }), encodeLockRecords(Array.from({ length: MAX_LOCK_RECORDS + 1 }, () => ({ op: '+' as const, txId: randomUUID() })))]);
      expect(decodeEntry(overlong)).to.deep.include({ kind: 'lock', records: [{ op: '+', txId: UNKNOWN_HOLDER }] });
    });

    it('computes holders of repeated joins and leaves once each, in joining order', () => {
      const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
      const records: LockRecord[] = [{ op: '+', txId: a }, { op: '+', txId: b }, { op: '+', txId: a }, { op: '+', txId: c }, { op: '-', txId: b }, { op: '+', txId: b }];
      expect(lockHolders({ kind: 'lock', records, prior: undefined })).to.deep.equal([a, c]);
    });
  });
});
