/**
 * Store benchmark: plain memjs `client.get` against `MemcachedStore.get` on one memcached, at 1 and 32 requests
 * in flight, and 50 single gets against one `getMulti` of 50 keys. Run with `node dist/bench/store.js`.
 */
import { Client } from 'memjs';
import { Servers } from '../spec/support/servers.js';
import { MemcachedStore } from '../lib/store/index.js';

const silent = { log: (): void => undefined };
const VALUE = Buffer.alloc(100, 7);
const ROUNDS = 5;

/** Runs `total` calls of `fn`, `inFlight` at a time; returns operations per second. */
async function throughput(fn: (i: number) => Promise<unknown>, total: number, inFlight: number): Promise<number> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < total) await fn(next++);
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: inFlight }, worker));
  return (total / (performance.now() - started)) * 1000;
}

/** The best of several rounds, alternating the contenders so neither always runs on a warmer process. */
async function compare(label: string, a: () => Promise<number>, b: () => Promise<number>): Promise<[number, number]> {
  let bestA = 0;
  let bestB = 0;
  for (let round = 0; round < ROUNDS; round++) {
    if (round % 2 === 0) {
      bestA = Math.max(bestA, await a());
      bestB = Math.max(bestB, await b());
    } else {
      bestB = Math.max(bestB, await b());
      bestA = Math.max(bestA, await a());
    }
  }
  console.log(`${label.padEnd(34)} ${fmt(bestA)} | ${fmt(bestB)}   ratio ${(bestB / bestA).toFixed(2)}`);
  return [bestA, bestB];
}

const fmt = (opsPerSecond: number): string => `${Math.round(opsPerSecond).toLocaleString('en-US').padStart(9)} ops/s`;

async function main(): Promise<void> {
  const servers = await Servers.start({ memcached: 1, postgres: false });
  const address = servers.memcachedAddresses[0] as string;
  const client = Client.create(address, { logger: silent });
  const store = new MemcachedStore({ servers: [address], namespace: 'bench' });
  try {
    const keys = Array.from({ length: 50 }, (_, i) => `key:${i}`);
    await store.execute(keys.map((key) => ({ op: 'set', key, value: VALUE, ttl: 0 }) as const));
    const memjsGet = (i: number): Promise<unknown> => client.get(`bench:${keys[i % 50]}`);
    const storeGet = (i: number): Promise<unknown> => store.get(keys[i % 50] as string);
    await throughput(memjsGet, 20_000, 32);
    await throughput(storeGet, 20_000, 32);

    console.log(`${'get, hits of 100 bytes'.padEnd(34)} ${'plain memjs'.padStart(15)} | ${'MemcachedStore'.padStart(15)}`);
    await compare('1 in flight', () => throughput(memjsGet, 10_000, 1), () => throughput(storeGet, 10_000, 1));
    await compare('32 in flight', () => throughput(memjsGet, 60_000, 32), () => throughput(storeGet, 60_000, 32));

    const singles = async (): Promise<number> => {
      const started = performance.now();
      for (let n = 0; n < 200; n++) for (const key of keys) await store.get(key);
      return (200 / (performance.now() - started)) * 1000;
    };
    const multi = async (): Promise<number> => {
      const started = performance.now();
      for (let n = 0; n < 200; n++) await store.getMulti(keys);
      return (200 / (performance.now() - started)) * 1000;
    };
    console.log(`\n${'50 keys, MemcachedStore'.padEnd(34)} ${'50 x get'.padStart(15)} | ${'getMulti(50)'.padStart(15)}`);
    const [one, many] = await compare('batches of 50 keys per second', singles, multi);
    console.log(`\nratio lines: per-get cost = 1 / throughput; a ratio above 1 means MemcachedStore is faster.`);
    console.log(`getMulti(50) takes ${((1000 / many) * 1000).toFixed(0)} µs, 50 awaited gets take ${((1000 / one) * 1000).toFixed(0)} µs`);
  } finally {
    client.close();
    await store.close();
    await servers.stop();
  }
}

await main();
