/**
 * Tools the coordinator injects faults with: a partition proxy per worker in front of one memcached, a flood
 * that makes a small memcached evict, garbage under the library's keys, and memcached's eviction counter.
 */
import net from 'node:net';
import { PartitionProxy } from '../support/partition-proxy.js';
import { randomBytes } from 'node:crypto';
import { MemcachedStore } from '../../lib/store/memcached-store.js';
import type { Rng } from './ops.js';

export { PartitionProxy };

/**
 * Fills a small memcached with values of many sizes (the slab classes of locks, leases, generations and rows,
 * and some large ones) under another namespace, so it evicts the library's locks and counters.
 */
export async function flood(address: string, megabytes: number): Promise<number> {
  const store = new MemcachedStore({ servers: [address], namespace: `flood${Date.now() % 100000}` });
  let written = 0;
  let bytes = 0;
  const big = Buffer.alloc(50_000, 0x62);
  try {
    while (bytes < megabytes * 1024 * 1024) {
      const ops = Array.from({ length: 200 }, (_, i) => {
        const n = written + i;
        const value = n % 25 === 0 ? big : Buffer.alloc(4 + (n % 12) * 10, 0x61);
        bytes += value.length + 60;
        return { op: 'set', key: `f:${n}`, value, ttl: 0 } as const;
      });
      written += ops.length;
      await store.execute(ops);
    }
  } finally {
    await store.close();
  }
  return written;
}

/** Random bytes (sometimes starting like one of our envelopes, truncated) under some of the library's keys. */
export async function writeGarbage(store: MemcachedStore, keys: readonly string[], rng: Rng): Promise<string[]> {
  const chosen = [...new Set(Array.from({ length: 4 }, () => rng.pick(keys)))];
  const ops = chosen.map((key) => {
    const junk = randomBytes(rng.int(1, 40));
    const value = rng.next() < 0.5 ? Buffer.concat([Buffer.from('XA'), junk]) : junk;
    return { op: 'set', key, value, ttl: 30 } as const;
  });
  await store.execute(ops);
  return chosen;
}

/** memcached's `evictions` counter. */
export function evictions(address: string): Promise<number> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), host);
    let text = '';
    const done = (n: number): void => {
      socket.destroy();
      resolve(n);
    };
    socket.setTimeout(1000, () => done(0));
    socket.on('error', () => done(0));
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (text.includes('END\r\n')) done(Number(/STAT evictions (\d+)/.exec(text)?.[1] ?? 0));
    });
    socket.write('stats\r\n');
  });
}
