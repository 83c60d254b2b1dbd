import { expect } from 'chai';
import { Servers } from '../support/servers.js';
import { freePort } from '../support/free-port.js';
import { settledWithin } from './fake-peer.js';
import { MemcachedStore, type StoreResult } from '../../lib/store/index.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const buf = (s: string): Buffer => Buffer.from(s);

/** The first `count` keys with `prefix` that map to `server`. */
function keysOn(store: MemcachedStore, server: string, prefix: string, count = 1): string[] {
  const keys: string[] = [];
  for (let i = 0; keys.length < count; i++) if (store.serverFor(`${prefix}${i}`) === server) keys.push(`${prefix}${i}`);
  return keys;
}

const failedKind = (result: StoreResult | 'pending'): string =>
  result === 'pending' ? 'pending' : result.status === 'error' ? result.error.kind : result.status;

describe('MemcachedStore under server faults', function () {
  this.timeout(30_000);
  let servers: Servers | undefined;
  let store: MemcachedStore | undefined;
  afterEach(async () => {
    await store?.close();
    await servers?.stop();
    store = undefined;
    servers = undefined;
  });

  it('fails a killed server’s keys within the timeout, keeps the others, and uses it again, empty, after a restart', async () => {
    servers = await Servers.start({ memcached: 3, postgres: false, owned: true });
    const [victim] = servers.memcached.slice(1);
    if (!victim) throw new Error('no memcached');
    const timeoutMs = 200;
    const retryAfterMs = 400;
    store = new MemcachedStore({ servers: servers.memcachedAddresses, timeoutMs, retryAfterMs });
    const [doomed] = keysOn(store, victim.address, 'doomed');
    const others = servers.memcachedAddresses.filter((a) => a !== victim.address).map((a) => keysOn(store!, a, 'safe')[0] as string);
    const keys = [doomed as string, ...others];
    const stored = await store.execute(keys.map((key) => ({ op: 'set', key, value: buf(key), ttl: 0 }) as const));
    expect(stored.map((r) => r.status)).to.deep.equal(['stored', 'stored', 'stored']);
    const before = await store.get(doomed as string);
    if (before.status !== 'hit') throw new Error('setup failed');
    const oldToken = before.item.cas;

    await victim.kill();
    for (let round = 0; round < 6; round++) {
      const started = performance.now();
      const [lost, ...kept] = await store.execute([
        { op: 'get', key: doomed as string },
        ...others.map((key) => ({ op: 'get', key }) as const),
      ]);
      expect(performance.now() - started).to.be.below(timeoutMs + 300);
      expect(failedKind(lost)).to.be.oneOf(['unavailable', 'timeout']);
      expect(kept.map((r) => r.status)).to.deep.equal(['hit', 'hit']);
      await sleep(100);
    }
    const [write] = await store.execute([{ op: 'set', key: doomed as string, value: buf('x'), ttl: 0 }]);
    expect(write.status === 'error' && write.error).to.include({ kind: 'unavailable', outcomeUnknown: false });

    await victim.restart();
    await sleep(retryAfterMs + 50);
    expect((await store.get(doomed as string)).status).to.equal('not_found');
    const requests = store.counters.requests;
    const refused = await store.execute([
      { op: 'cas', key: doomed as string, value: buf('stale'), ttl: 0, cas: oldToken },
      { op: 'delete', key: doomed as string, cas: oldToken },
    ]);
    expect(refused.map((r) => r.status)).to.deep.equal(['exists', 'exists']);
    expect(store.counters.requests, 'stale tokens must not be sent').to.equal(requests);
    const [again] = await store.execute([{ op: 'set', key: doomed as string, value: buf('back'), ttl: 0 }]);
    expect(again.status === 'stored' && again.cas.epoch).to.be.above(oldToken.epoch);
    expect(store.counters.errors.StoreUnavailableError).to.be.at.least(1);
  });

  it('settles every request to a stalled server by its deadline, five stalls in a row, and recovers after each', async () => {
    servers = await Servers.start({ memcached: 2, postgres: false, owned: true });
    const [stalled, healthy] = servers.memcached;
    if (!stalled || !healthy) throw new Error('no memcached');
    const timeoutMs = 150;
    const retryAfterMs = 100;
    store = new MemcachedStore({ servers: servers.memcachedAddresses, timeoutMs, retryAfterMs });
    const s = store;
    const stuck = keysOn(s, stalled.address, 'stuck', 32);
    const [fine] = keysOn(s, healthy.address, 'fine');
    await s.execute([{ op: 'set', key: fine as string, value: buf('ok'), ttl: 0 }]);

    for (let cycle = 0; cycle < 6; cycle++) {
      stalled.pause();
      try {
        // On a loaded machine SIGSTOP can take a moment to stop every thread; a request answered before it did
        // would be a hit.
        await stalled.untilSilent();
        const started = performance.now();
        const requests = stuck.map((key, i) =>
          settledWithin<StoreResult>(
            i % 2 === 0 ? s.get(key) : s.execute([{ op: 'set', key, value: buf(`v${cycle}`), ttl: 0 }]).then(([r]) => r),
            5 * timeoutMs,
          ),
        );
        const healthyRead = s.get(fine as string);
        const results = await Promise.all(requests);
        expect(performance.now() - started).to.be.below(5 * timeoutMs);
        results.forEach((result, i) => {
          expect(failedKind(result), `request ${i} of cycle ${cycle}`).to.be.oneOf(['timeout', 'unavailable']);
          if (result !== 'pending' && result.status === 'error' && result.error.kind === 'timeout') {
            expect(result.error.outcomeUnknown).to.equal(i % 2 === 1);
          }
        });
        expect((await healthyRead).status).to.equal('hit');
      } finally {
        stalled.resume();
      }
      await sleep(retryAfterMs + 30);
      const [set] = await s.execute([{ op: 'set', key: stuck[0] as string, value: buf('alive'), ttl: 0 }]);
      expect(set.status, `cycle ${cycle}: the server is used again after the stall`).to.equal('stored');
      const get = await s.get(stuck[0] as string);
      expect(get.status === 'hit' && get.item.value.toString()).to.equal('alive');
    }
  });

  it('passes on a too-large answer from a server with a small item size and keeps the connection', async () => {
    servers = await Servers.start({ memcached: 1, postgres: false, owned: true, memcachedOptions: { maxItemSize: '512k' } });
    const address = servers.memcachedAddresses[0] as string;
    store = new MemcachedStore({ servers: [address] });
    const [big, after] = await store.execute([
      { op: 'set', key: 'big', value: Buffer.alloc(600 * 1024), ttl: 0 },
      { op: 'set', key: 'small', value: buf('fits'), ttl: 0 },
    ]);
    expect(big.status === 'error' && big.error).to.include({ kind: 'too_large', server: address, size: 600 * 1024, outcomeUnknown: false });
    expect(after.status).to.equal('stored');
    expect((await store.get('big')).status).to.equal('not_found');
    expect(store.counters.errors.ValueTooLargeError).to.equal(1);
  });

  it('probes every server directly: reachable ones answer, a refused one and a SIGSTOPped one are named with their error', async () => {
    servers = await Servers.start({ memcached: 2, postgres: false, owned: true });
    const [live, stopped] = servers.memcached;
    if (!live || !stopped) throw new Error('no memcached');
    const refused = `127.0.0.1:${await freePort()}`;
    const timeoutMs = 200;
    store = new MemcachedStore({ servers: [live.address, stopped.address, refused], timeoutMs, connectTimeoutMs: 300 });
    expect((await store.probe()).map((p) => p.reachable)).to.deep.equal([true, true, false]);
    stopped.pause();
    try {
      await sleep(1100); // past the refused server's back-off: it is asked again
      const started = performance.now();
      const probes = await store.probe();
      expect(performance.now() - started).to.be.below(300 + timeoutMs + 150);
      expect(probes.map((p) => [p.server, p.reachable, p.error?.kind])).to.deep.equal([
        [live.address, true, undefined],
        [stopped.address, false, 'timeout'],
        [refused, false, 'unavailable'],
      ]);
    } finally {
      stopped.resume();
    }
  });

  it('answers unavailable at once for a server nobody listens on, without retrying until the back-off ends', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    store = new MemcachedStore({ servers: [address], retryAfterMs: 60_000 });
    const first = await store.get('k');
    expect(first.status === 'error' && first.error).to.include({ kind: 'unavailable', server: address, op: 'get', key: 'k' });
    const started = performance.now();
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => store!.get(`k${i}`)));
    expect(performance.now() - started).to.be.below(100);
    for (const r of results) expect(r.status === 'error' && r.error.kind).to.equal('unavailable');
    expect(store.counters.requests).to.equal(0);
  });
});
