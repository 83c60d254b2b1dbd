import { expect } from 'chai';
import { serialize } from 'node:v8';
import { decodeValue, encodeValue } from '../../lib/mikro-orm/value-codec.js';

/** What a payload decodes to (throws when it does not decode). */
const roundTrip = (value: unknown): unknown => {
  const decoded = decodeValue(encodeValue(value));
  if (!decoded.ok) throw new Error('did not decode');
  return decoded.value;
};
const format = (value: unknown): string => (encodeValue(value)[0] === 0xff ? 'v8' : String.fromCharCode(encodeValue(value)[0] as number));

describe('value codec (JSON where it is exact, V8 otherwise)', () => {
  it('flat rows and lists of ids go as JSON and come back equal, key order included', () => {
    const rows: unknown[] = [
      { id: 1, title: 'Bench', price: 12.5, author: 17, publisher: null, flag: true },
      { b: 'x', a: 'y', 10: 'ten', 2: 'two' }, // integer-like keys come first in both, in the same order
      { text: 'lone \ud800 surrogate, emoji 😀, "quotes", \\ backslash, \u0000 nul', big: Number.MAX_SAFE_INTEGER, tiny: 5e-324 },
      {},
      [],
      [1, 2, 3],
      ['a', 'b', null, true, 0.1],
    ];
    for (const row of rows) {
      expect(format(row), JSON.stringify(row)).to.be.oneOf(['{', '[']);
      const back = roundTrip(row);
      expect(back).to.deep.equal(row);
      expect(Object.keys(back as object)).to.deep.equal(Object.keys(row as object));
    }
  });

  it('everything JSON would change goes as V8 and comes back exactly', () => {
    const values: unknown[] = [
      { at: new Date('2024-02-03T04:05:06.789Z') },
      { big: 9007199254740993n },
      { blob: Buffer.from([0, 1, 255]) },
      { data: { nested: [1, { deep: true }] } },
      { missing: undefined },
      { zero: -0 },
      { nan: NaN, inf: Infinity },
      [1, , 3], // eslint-disable-line no-sparse-arrays -- a hole JSON would turn into null
      [[1, 2]],
      [new Date(0)],
      Object.assign(Object.create(null) as object, { id: 1 }),
      JSON.parse('{"__proto__": 1, "id": 2}') as object,
      1234,
      'a string',
      null,
    ];
    for (const [i, value] of values.entries()) {
      expect(format(value), `value #${i}`).to.equal('v8');
      const back = roundTrip(value);
      if (typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === null) expect(back).to.deep.equal({ id: 1 });
      else expect(back).to.deep.equal(value);
    }
    expect(Object.is((roundTrip({ zero: -0 }) as { zero: number }).zero, -0), '-0 kept').to.equal(true);
    expect((roundTrip([1, , 3]) as unknown[]).length).to.equal(3); // eslint-disable-line no-sparse-arrays
    expect(1 in (roundTrip([1, , 3]) as unknown[]), 'the hole kept').to.equal(false); // eslint-disable-line no-sparse-arrays
  });

  it('reads payloads written by V8 alone (earlier versions), and reports bytes that decode as neither', () => {
    expect(decodeValue(serialize({ id: 1, title: 'old' }))).to.deep.equal({ ok: true, value: { id: 1, title: 'old' } });
    expect(decodeValue(Buffer.from('{"id": 1, '))).to.deep.equal({ ok: false });
    expect(decodeValue(Buffer.from([0xff, 0x0f, 0x6f, 0x22]))).to.deep.equal({ ok: false });
    expect(decodeValue(Buffer.alloc(0))).to.deep.equal({ ok: false });
  });
});
