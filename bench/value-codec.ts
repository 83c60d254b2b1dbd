/**
 * The value codec's two formats on the payloads the row cache stores (docs/benchmarks.md, "Value codec"): V8's
 * structured serialisation against JSON, which `lib/mikro-orm/value-codec.ts` uses for plain objects and arrays of
 * JSON-exact scalars. Each case: bytes, and ns per decode and per encode (median of 5 runs of 0.2 s after a warm-up),
 * for both formats where JSON is exact. `npm run build && node dist/bench/value-codec.js`.
 */
import { deserialize, serialize } from 'node:v8';
import { encodeValue } from '../lib/mikro-orm/value-codec.js';

const cases: Array<[string, unknown]> = [
  ['book row (5 scalars)', { id: 1234, title: 'Bench 1234', price: 12.5, author: 17, publisher: null }],
  ['author row (a Date: V8 only)', { id: 17, name: 'Author 17', email: 'a17@example.com', born: new Date('1970-01-01T00:00:00Z'), mentor: null }],
  ['50 member ids', Array.from({ length: 50 }, (_, i) => 10_000 + i)],
  ['500 member ids', Array.from({ length: 500 }, (_, i) => 10_000 + i)],
];

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
function nsPerCall(fn: () => unknown): number {
  const runs: number[] = [];
  for (let i = 0; i < 20_000; i++) fn();
  for (let run = 0; run < 5; run++) {
    let n = 0;
    const start = process.hrtime.bigint();
    const end = start + 200_000_000n;
    let now = start;
    while (now < end) {
      for (let i = 0; i < 1000; i++) fn();
      n += 1000;
      now = process.hrtime.bigint();
    }
    runs.push(Number(now - start) / n);
  }
  return median(runs);
}

console.log('| payload | format chosen | V8 bytes | V8 decode ns | V8 encode ns | JSON bytes | JSON decode ns | JSON encode ns |');
console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const [name, value] of cases) {
  const v8 = serialize(value);
  const chosen = encodeValue(value);
  const json = chosen[0] === 0xff ? undefined : chosen;
  const cells = [name, json ? 'JSON' : 'V8', v8.length, nsPerCall(() => deserialize(v8)).toFixed(0), nsPerCall(() => serialize(value)).toFixed(0)];
  if (json) cells.push(json.length, nsPerCall(() => JSON.parse(json.toString('utf8'))).toFixed(0), nsPerCall(() => Buffer.from(JSON.stringify(value), 'utf8')).toFixed(0));
  else cells.push('—', '—', '—');
  console.log(`| ${cells.join(' | ')} |`);
}
