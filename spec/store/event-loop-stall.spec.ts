import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { Servers } from '../support/servers.js';
import { MemcachedStore, type StoreResult } from '../../lib/store/index.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Blocks the event loop (a busy loop, as a CPU-bound request handler would). */
function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spin
  }
}

const kind = (r: StoreResult): string => (r.status === 'error' ? r.error.kind : r.status);

/*
 * Case 9 of issue 14: a busy Node.js process is not a dead memcached. The deadline timer fires late after a stall
 * of the client's own event loop; the answers are by then waiting in the socket buffer, so they must be read
 * before any verdict, and a timer that fired late must not count the stall against the server.
 */
describe('MemcachedStore when its own event loop stalls', function () {
  this.timeout(30_000);
  let servers: Servers | undefined;
  let store: MemcachedStore | undefined;
  afterEach(async () => {
    await store?.close();
    await servers?.stop();
    store = undefined;
    servers = undefined;
  });

  it('settles a pipelined batch in flight during a 600 ms stall from its answers, and does not mark the server down', async () => {
    servers = await Servers.start({ memcached: 1, postgres: false, owned: true });
    const timeoutMs = 250;
    store = new MemcachedStore({ servers: servers.memcachedAddresses, timeoutMs, retryAfterMs: 60_000 });
    const keys = Array.from({ length: 200 }, (_, i) => `stall:${i}`);
    await store.execute(keys.map((key) => ({ op: 'set', key, value: Buffer.from(key), ttl: 0 }) as const));
    await store.get('warm');

    for (const stallMs of [300, 600]) {
      const reads = store.execute(keys.map((key) => ({ op: 'get', key }) as const));
      const writes = store.execute(keys.slice(0, 20).map((key) => ({ op: 'set', key, value: Buffer.from(`${key}!`), ttl: 0 }) as const));
      await Promise.resolve(); // the microtask that writes the batches to the socket
      busy(stallMs);
      const [read, written] = await Promise.all([reads, writes]);
      expect(read.map(kind).filter((k) => k !== 'hit'), `reads after a ${stallMs} ms stall`).to.deep.equal([]);
      expect(written.map(kind).filter((k) => k !== 'stored'), `writes after a ${stallMs} ms stall`).to.deep.equal([]);
    }
    // Not marked down: with a one-minute back-off, a server marked down would answer `unavailable` now.
    expect(kind(await store.get('stall:1'))).to.equal('hit');
    expect(store.counters.errors).to.deep.equal({});
  });

  it('credits the stall: a server that answers only after our stall ended (it was stopped during it) is not failed', async () => {
    servers = await Servers.start({ memcached: 1, postgres: false, owned: true });
    const [server] = servers.memcached;
    if (!server?.pid) throw new Error('no memcached');
    const timeoutMs = 300;
    store = new MemcachedStore({ servers: servers.memcachedAddresses, timeoutMs, retryAfterMs: 60_000 });
    await store.execute([{ op: 'set', key: 'late', value: Buffer.from('v'), ttl: 0 }]);
    server.pause();
    try {
      await server.untilSilent();
      const read = store.get('late');
      await Promise.resolve();
      // Resumed by another process 700 ms from now, while our loop is busy for the first 600: the answer comes
      // after the stall, when the deadline (300 ms) is long past. The timer fires about 300 ms late, which is
      // credited: the answer is awaited until about 900 ms.
      const resumer = spawn('sh', ['-c', `sleep 0.7; kill -CONT ${server.pid}`], { stdio: 'ignore' });
      busy(600);
      const result = await read;
      await new Promise((resolve) => (resumer.exitCode === null ? resumer.once('exit', resolve) : resolve(undefined)));
      expect(kind(result)).to.equal('hit');
      expect(store.counters.stalls).to.be.at.least(1);
      expect(kind(await store.get('late')), 'not marked down').to.equal('hit');
    } finally {
      server.resume();
    }
  });

  it('fails requests to a truly SIGSTOPped server within timeoutMs when our loop is free, and keeps the other server', async () => {
    servers = await Servers.start({ memcached: 2, postgres: false, owned: true });
    const [stopped, healthy] = servers.memcached;
    if (!stopped || !healthy) throw new Error('no memcached');
    const timeoutMs = 200;
    store = new MemcachedStore({ servers: servers.memcachedAddresses, timeoutMs, retryAfterMs: 60_000 });
    const s = store;
    const on = (server: string): string => {
      for (let i = 0; ; i++) if (s.serverFor(`k${i}`) === server) return `k${i}`;
    };
    const stuckKey = on(stopped.address);
    const fineKey = on(healthy.address);
    await s.execute([
      { op: 'set', key: stuckKey, value: Buffer.from('a'), ttl: 0 },
      { op: 'set', key: fineKey, value: Buffer.from('b'), ttl: 0 },
    ]);
    stopped.pause();
    try {
      await stopped.untilSilent();
      const started = performance.now();
      const [stuck, fine] = await s.execute([
        { op: 'get', key: stuckKey },
        { op: 'get', key: fineKey },
      ]);
      const elapsed = performance.now() - started;
      expect(kind(stuck)).to.equal('timeout');
      expect(kind(fine)).to.equal('hit');
      expect(elapsed).to.be.at.least(timeoutMs - 5);
      expect(elapsed).to.be.below(timeoutMs + 150);
      // Marked down: answered at once for the back-off.
      expect(kind(await s.get(stuckKey))).to.equal('unavailable');
    } finally {
      stopped.resume();
    }
  });

  it('times out a SIGSTOPped server even when a stall of our loop overlaps its deadline, within the stall plus timeoutMs', async () => {
    servers = await Servers.start({ memcached: 1, postgres: false, owned: true });
    const [server] = servers.memcached;
    if (!server) throw new Error('no memcached');
    const timeoutMs = 200;
    store = new MemcachedStore({ servers: servers.memcachedAddresses, timeoutMs, retryAfterMs: 100 });
    await store.get('warm');
    server.pause();
    try {
      await server.untilSilent();
      const started = performance.now();
      const read = store.get('k');
      await Promise.resolve();
      busy(500);
      const result = await read;
      const elapsed = performance.now() - started;
      expect(kind(result)).to.equal('timeout');
      expect(elapsed).to.be.below(500 + timeoutMs + 150);
    } finally {
      server.resume();
    }
    await sleep(150);
    expect(kind(await store.get('k'))).to.equal('not_found');
  });
});
