/**
 * What authentication and encryption cost on a cache hit: `reader.read` of a cached 1 KiB row without a secret,
 * with an HMAC, and with HMAC + AES-256-GCM, side by side at 1 and 32 reads in flight.
 * Run with `node dist/bench/security.js`; `npm run bench` also runs it.
 */
import { randomBytes } from 'node:crypto';
import { Servers } from '../spec/support/servers.js';
import { MemcachedStore } from '../lib/store/index.js';
import { XaCache } from '../lib/protocol/xa-cache.js';
import type { ProtocolOptions } from '../lib/protocol/protocol-options.js';

const KEYS = 1000;
const READS = 40_000;
const ROW = Buffer.from(JSON.stringify({ id: 1, title: 'x'.repeat(960), price: 12 }));

interface Figures {
  readonly label: string;
  readonly opsPerSecond: Record<1 | 32, number>;
  readonly p50Micros: number;
}

async function measure(label: string, servers: readonly string[], protocol: ProtocolOptions): Promise<Figures> {
  const store = new MemcachedStore({ servers, namespace: `sec${randomBytes(3).toString('hex')}` });
  const cache = new XaCache(store, protocol);
  for (let i = 0; i < KEYS; i++) await cache.reader.fetch(`e:book:${i}`, async () => ROW);
  const opsPerSecond = { 1: 0, 32: 0 } as Record<1 | 32, number>;
  const latencies: number[] = [];
  for (const inFlight of [1, 32] as const) {
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < READS) {
          const t = performance.now();
          const read = await cache.reader.read(`e:book:${next++ % KEYS}`);
          if (read.status !== 'hit') throw new Error(`${label}: expected hits, got ${read.status}`);
          if (inFlight === 1) latencies.push(performance.now() - t);
        }
      }),
    );
    opsPerSecond[inFlight] = (READS / (performance.now() - started)) * 1000;
  }
  await store.close();
  latencies.sort((a, b) => a - b);
  return { label, opsPerSecond, p50Micros: (latencies[Math.floor(latencies.length / 2)] ?? 0) * 1000 };
}

/** Runs the three configurations against one memcached and returns their figures, plain first. */
export async function runSecurityBench(servers: readonly string[]): Promise<Figures[]> {
  const secret = randomBytes(32).toString('base64');
  return [
    await measure('no secret', servers, {}),
    await measure('HMAC-SHA-256', servers, { secrets: [secret] }),
    await measure('HMAC + AES-256-GCM', servers, { secrets: [secret], encryptValues: true }),
  ];
}

/** The figures as a Markdown table with ratios against the plain configuration. */
export function securityTable(figures: Figures[]): string {
  const base = figures[0] as Figures;
  const rows = figures.map(
    (f) =>
      `| ${f.label} | ${f.p50Micros.toFixed(0)} µs | ${Math.round(f.opsPerSecond[1]).toLocaleString('en')} | ${Math.round(f.opsPerSecond[32]).toLocaleString('en')} | ${(f.opsPerSecond[32] / base.opsPerSecond[32]).toFixed(2)}x |`,
  );
  return ['| hit of a 1 KiB row | p50, 1 in flight | ops/s, 1 in flight | ops/s, 32 in flight | vs no secret (32) |', '| --- | --- | --- | --- | --- |', ...rows].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const servers = await Servers.start({ memcached: 1, postgres: false });
  try {
    console.log(securityTable(await runSecurityBench(servers.memcachedAddresses)));
  } finally {
    await servers.stop();
  }
}
