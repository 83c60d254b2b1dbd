import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { sharedServers } from '../support/global-servers.js';
import { DEFAULT_MAX_VALUE_BYTES, MemcachedStore, type CasToken, type StoreOp, type StoreResult } from '../../lib/store/index.js';

const buf = (s: string): Buffer => Buffer.from(s);

/** Reads a key with the text protocol, as an operator would. */
async function textGet(address: string, key: string): Promise<string | undefined> {
  const [host, port] = address.split(':');
  const socket = connect(Number(port), host);
  let data = '';
  await new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk) => {
      data += chunk.toString('latin1');
      if (data.endsWith('END\r\n')) resolve();
    });
    socket.on('error', reject);
    socket.write(`get ${key}\r\n`);
  });
  socket.destroy();
  const match = /^VALUE \S+ \d+ \d+\r\n([\s\S]*)\r\nEND\r\n$/.exec(data);
  return match?.[1];
}

describe('MemcachedStore against real memcached', () => {
  let store: MemcachedStore;
  let servers: string[];

  beforeEach(() => {
    servers = sharedServers().memcachedAddresses;
    store = new MemcachedStore({ servers, namespace: `t${randomUUID().slice(0, 8)}` });
  });
  afterEach(async () => store.close());

  const token = async (key: string): Promise<CasToken> => {
    const result = await store.get(key);
    if (result.status !== 'hit') throw new Error(`expected a hit for ${key}, got ${result.status}`);
    return result.item.cas;
  };

  describe('compare-and-swap', () => {
    it('stores when the token matches and answers exists when it does not', async () => {
      const [set] = await store.execute([{ op: 'set', key: 'k', value: buf('v1'), ttl: 0, flags: 7 }]);
      expect(set.status).to.equal('stored');
      const first = await token('k');
      const [swapped] = await store.execute([{ op: 'cas', key: 'k', value: buf('v2'), ttl: 0, cas: first }]);
      expect(swapped.status).to.equal('stored');
      const [conflict] = await store.execute([{ op: 'cas', key: 'k', value: buf('v3'), ttl: 0, cas: first }]);
      expect(conflict.status).to.equal('exists');
      const read = await store.get('k');
      expect(read.status === 'hit' && read.item.value.toString()).to.equal('v2');
    });

    it('answers not_found when the key is gone', async () => {
      await store.execute([{ op: 'set', key: 'k', value: buf('v'), ttl: 0 }]);
      const cas = await token('k');
      await store.execute([{ op: 'delete', key: 'k' }]);
      const [result] = await store.execute([{ op: 'cas', key: 'k', value: buf('x'), ttl: 0, cas }]);
      expect(result.status).to.equal('not_found');
    });

    it('returns the new token with every write, usable for the next cas', async () => {
      const [set] = await store.execute([{ op: 'set', key: 'k', value: buf('a'), ttl: 0 }]);
      if (set.status !== 'stored') throw new Error(set.status);
      const [next] = await store.execute([{ op: 'cas', key: 'k', value: buf('b'), ttl: 0, cas: set.cas }]);
      expect(next.status).to.equal('stored');
    });

    it('refuses a token of another server as bad input', async () => {
      const key = 'k';
      const other = servers.find((s) => s !== store.serverFor(key)) as string;
      const [result] = await store.execute([{ op: 'cas', key, value: buf('x'), ttl: 0, cas: { server: other, epoch: 1, value: 1n } }]);
      expect(result.status === 'error' && result.error.kind).to.equal('bad_input');
    });
  });

  it('answers exists to add on an existing key, stored on a new one', async () => {
    const results = await store.execute([
      { op: 'add', key: 'a', value: buf('1'), ttl: 0 },
      { op: 'add', key: 'a', value: buf('2'), ttl: 0 },
    ]);
    expect(results.map((r) => r.status)).to.deep.equal(['stored', 'exists']);
  });

  it('deletes conditionally: deleted on a matching token, exists on a stale one', async () => {
    await store.execute([{ op: 'set', key: 'd', value: buf('1'), ttl: 0 }]);
    const stale = await token('d');
    await store.execute([{ op: 'set', key: 'd', value: buf('2'), ttl: 0 }]);
    const [mismatch] = await store.execute([{ op: 'delete', key: 'd', cas: stale }]);
    expect(mismatch.status).to.equal('exists');
    const [match] = await store.execute([{ op: 'delete', key: 'd', cas: await token('d') }]);
    expect(match.status).to.equal('deleted');
    const [gone] = await store.execute([{ op: 'delete', key: 'd' }]);
    expect(gone.status).to.equal('not_found');
  });

  it('replaces only existing keys', async () => {
    const [missing] = await store.execute([{ op: 'replace', key: 'r', value: buf('x'), ttl: 0 }]);
    expect(missing.status).to.equal('not_found');
    await store.execute([{ op: 'set', key: 'r', value: buf('1'), ttl: 0 }]);
    const [replaced] = await store.execute([{ op: 'replace', key: 'r', value: buf('2'), ttl: 0, flags: 3 }]);
    expect(replaced.status).to.equal('stored');
    const read = await store.get('r');
    expect(read.status === 'hit' && [read.item.value.toString(), read.item.flags]).to.deep.equal(['2', 3]);
  });

  describe('incr', () => {
    it('answers not_found without initial and creates the counter with it', async () => {
      const [absent] = await store.execute([{ op: 'incr', key: 'c', delta: 1n, ttl: 0 }]);
      expect(absent.status).to.equal('not_found');
      expect((await store.get('c')).status).to.equal('not_found');
      const [created] = await store.execute([{ op: 'incr', key: 'c', delta: 5n, initial: 10n, ttl: 0 }]);
      expect(created.status === 'counter' && created.value).to.equal(10n);
      const [bumped] = await store.execute([{ op: 'incr', key: 'c', delta: 5n, ttl: 0 }]);
      expect(bumped.status === 'counter' && bumped.value).to.equal(15n);
    });

    it('counts at and above 2^32 without losing bits', async () => {
      await store.execute([{ op: 'set', key: 'big', value: buf(String(2 ** 32 - 1)), ttl: 0 }]);
      const [at] = await store.execute([{ op: 'incr', key: 'big', delta: 1n, ttl: 0 }]);
      expect(at.status === 'counter' && at.value).to.equal(2n ** 32n);
      const [above] = await store.execute([{ op: 'incr', key: 'big', delta: 2n ** 40n, ttl: 0 }]);
      expect(above.status === 'counter' && above.value).to.equal(2n ** 32n + 2n ** 40n);
      const [huge] = await store.execute([{ op: 'incr', key: 'huge', delta: 1n, initial: 2n ** 63n, ttl: 0 }]);
      expect(huge.status === 'counter' && huge.value).to.equal(2n ** 63n);
    });

    it('reports incr on a non-numeric value as a protocol error', async () => {
      await store.execute([{ op: 'set', key: 'text', value: buf('not a number'), ttl: 0 }]);
      const [result] = await store.execute([{ op: 'incr', key: 'text', delta: 1n, ttl: 0 }]);
      expect(result.status).to.equal('error');
      if (result.status !== 'error') return;
      expect(result.error.kind).to.equal('protocol');
      expect(result.error).to.include({ status: 6, op: 'incr', key: 'text' });
      expect(store.counters.errors.StoreProtocolError).to.equal(1);
    });
  });

  it('touches existing keys, expiring them at the new ttl', async () => {
    const [missing] = await store.execute([{ op: 'touch', key: 't', ttl: 10 }]);
    expect(missing.status).to.equal('not_found');
    await store.execute([{ op: 'set', key: 't', value: buf('x'), ttl: 0 }]);
    const [touched] = await store.execute([{ op: 'touch', key: 't', ttl: 1 }]);
    expect(touched.status).to.equal('touched');
    await new Promise((r) => setTimeout(r, 2100));
    expect((await store.get('t')).status).to.equal('not_found');
  });

  it('answers input errors for bad TTLs, flags and counters without sending', async () => {
    const before = store.counters.requests;
    const results = await store.execute([
      { op: 'set', key: 'x', value: buf('v'), ttl: -1 },
      { op: 'set', key: 'x', value: buf('v'), ttl: 2592001 },
      { op: 'touch', key: 'x', ttl: 1.5 },
      { op: 'add', key: 'x', value: buf('v'), ttl: 0, flags: -1 },
      { op: 'incr', key: 'x', delta: -1n, ttl: 0 },
    ] as StoreOp[]);
    for (const r of results) expect(r.status === 'error' && r.error.kind).to.equal('bad_input');
    expect(store.counters.requests).to.equal(before);
  });

  it('reads 200 keys on 3 servers with one round trip per server', async () => {
    const keys = Array.from({ length: 200 }, (_, i) => `multi:${i}`);
    expect(new Set(keys.map((k) => store.serverFor(k))).size).to.equal(3);
    await store.execute(keys.filter((_, i) => i % 2 === 0).map((key) => ({ op: 'set', key, value: buf(key), ttl: 0 }) as const));
    const before = { ...store.counters };
    const { items, failed } = await store.getMulti([...keys, ...keys.slice(0, 10)]);
    expect(store.counters.roundTrips - before.roundTrips).to.equal(3);
    expect(store.counters.requests - before.requests).to.equal(200);
    expect(failed.size).to.equal(0);
    expect([...items.keys()].sort()).to.deep.equal(keys.filter((_, i) => i % 2 === 0).sort());
    for (const [key, item] of items) expect(item.value.toString()).to.equal(key);
  });

  it('runs 100 mixed operations on 3 servers in 3 round trips, results in order', async () => {
    const ops: StoreOp[] = [];
    for (let i = 0; i < 20; i++) {
      ops.push({ op: 'set', key: `m${i}`, value: buf(`v${i}`), ttl: 0 });
      ops.push({ op: 'get', key: `m${i}` });
      ops.push({ op: 'add', key: `m${i}`, value: buf('no'), ttl: 0 });
      ops.push({ op: 'get', key: `absent${i}` });
      ops.push({ op: 'incr', key: `n${i}`, delta: 2n, initial: BigInt(i), ttl: 0 });
    }
    expect(new Set(ops.map((op) => store.serverFor(op.key))).size).to.equal(3);
    const before = store.counters.roundTrips;
    const results: StoreResult[] = await store.execute(ops);
    expect(store.counters.roundTrips - before).to.equal(3);
    for (let i = 0; i < 20; i++) {
      const [set, get, add, miss, incr] = results.slice(i * 5, i * 5 + 5);
      expect(set?.status).to.equal('stored');
      expect(get?.status === 'hit' && get.item.value.toString()).to.equal(`v${i}`);
      expect(add?.status).to.equal('exists');
      expect(miss?.status).to.equal('not_found');
      expect(incr?.status === 'counter' && incr.value).to.equal(BigInt(i));
    }
  });

  it('shares one write among gets issued in the same tick, each with its own result', async () => {
    await store.execute(Array.from({ length: 30 }, (_, i) => ({ op: 'set', key: `co${i}`, value: buf(`v${i}`), ttl: 0 }) as const));
    const before = store.counters.roundTrips;
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => store.get(`co${i}`)));
    expect(store.counters.roundTrips - before).to.be.at.most(3);
    results.forEach((r, i) => expect(r.status === 'hit' ? r.item.value.toString() : r.status).to.equal(i < 30 ? `v${i}` : 'not_found'));
  });

  describe('keys', () => {
    const awkward = ['x'.repeat(300), 'with space', 'tab\there', 'ctl\x01\x7f', 'nul\x00', 'h:looks-hashed', 'é'.repeat(130)];

    it('hashes long keys and keys with forbidden bytes, stably, and counts them', async () => {
      const before = store.counters.hashedKeys;
      const ops = awkward.map((key, i) => ({ op: 'set', key, value: buf(`v${i}`), ttl: 0 }) as const);
      expect((await store.execute(ops)).map((r) => r.status)).to.deep.equal(awkward.map(() => 'stored'));
      expect(store.counters.hashedKeys - before).to.equal(awkward.length);
      const { items } = await store.getMulti(awkward);
      awkward.forEach((key, i) => expect(items.get(key)?.value.toString()).to.equal(`v${i}`));
      for (const key of awkward) {
        expect(store.keyFor(key)).to.match(/^t\w+:h:[A-Za-z0-9_-]{43}$/).and.equal(store.keyFor(key));
      }
      expect(new Set(awkward.map((k) => store.keyFor(k))).size).to.equal(awkward.length);
    });

    it('keeps keys up to 250 bytes readable, quotes and non-ASCII included', async () => {
      const namespace = store.keyFor('').length;
      const fits = 'y'.repeat(250 - namespace);
      const keys = [fits, `it's"quoted"`, 'ключ', 'a:b/c?d=e'];
      for (const key of keys) expect(store.keyFor(key)).to.not.match(/:h:/);
      expect(store.keyFor(`${fits}y`)).to.match(/:h:/);
      await store.execute(keys.map((key) => ({ op: 'set', key, value: buf('plain'), ttl: 0 }) as const));
      expect(store.counters.hashedKeys).to.equal(0);
      for (const key of keys) expect(await textGet(store.serverFor(key), store.keyFor(key))).to.equal('plain');
    });

    it('lets an operator read a hashed key with the text protocol', async () => {
      const key = 'a key with spaces';
      await store.execute([{ op: 'set', key, value: buf('found'), ttl: 0 }]);
      expect(await textGet(store.serverFor(key), store.keyFor(key))).to.equal('found');
    });
  });

  describe('value size', () => {
    it('refuses values over maxValueBytes without sending them', async () => {
      const small = new MemcachedStore({ servers, maxValueBytes: 1000, namespace: 'small' });
      try {
        const [ok, big] = await small.execute([
          { op: 'set', key: 'a', value: Buffer.alloc(1000), ttl: 0 },
          { op: 'set', key: 'b', value: Buffer.alloc(1001), ttl: 0 },
        ]);
        expect(ok.status).to.equal('stored');
        expect(big.status).to.equal('error');
        if (big.status !== 'error') return;
        expect(big.error).to.include({ kind: 'too_large', size: 1001, limit: 1000, outcomeUnknown: false, server: undefined });
        expect(small.counters.requests).to.equal(1);
      } finally {
        await small.close();
      }
    });

    it('stores a value of the default limit under the longest key', async () => {
      const key = 'z'.repeat(250 - store.keyFor('').length);
      const [result] = await store.execute([{ op: 'set', key, value: Buffer.alloc(DEFAULT_MAX_VALUE_BYTES, 1), ttl: 0 }]);
      expect(result.status).to.equal('stored');
      const read = await store.get(key);
      expect(read.status === 'hit' && read.item.value.length).to.equal(DEFAULT_MAX_VALUE_BYTES);
    });
  });

  it('lets operations issued before close settle, and answers unavailable after it', async () => {
    const pending = store.execute([{ op: 'set', key: 'late', value: buf('v'), ttl: 0 }]);
    await store.close();
    expect((await pending)[0].status).to.equal('stored');
    const result = await store.get('late');
    expect(result.status === 'error' && result.error.kind).to.equal('unavailable');
  });
});
