import { expect } from 'chai';
import type { Socket } from 'node:net';
import { inspect } from 'node:util';
import { Client } from 'memjs';
import { FakePeer, settledWithin } from './fake-peer.js';
import { sharedServers } from '../support/global-servers.js';
import { MemcachedStore } from '../../lib/store/index.js';

const silent = { log: (): void => undefined };

/** A peer that reads a request, then closes the connection without answering. */
const closesMidRequest = (): Promise<FakePeer> => FakePeer.start((socket) => socket.once('data', () => socket.end()));

/**
 * A peer that never answers and, when a second connection sends a request, closes the first one: the first
 * socket's `close` event then reaches the client while the second socket is the current one.
 */
const closesOldConnectionLate = (): Promise<FakePeer> =>
  FakePeer.start((socket, index, peer) => {
    if (index > 0) socket.once('data', () => peer.sockets[0]?.end());
  }, true);

/** Answers SASL PLAIN for `user`/`pass` and then every GET with "not found"; before that, with an auth error. */
function saslPeer(socket: Socket): void {
  let authenticated = false;
  let pending = Buffer.alloc(0);
  const answer = (opcode: number, opaque: number, status: number, value = ''): void => {
    const body = Buffer.from(value);
    const header = Buffer.alloc(24);
    header[0] = 0x81;
    header[1] = opcode;
    header.writeUInt16BE(status, 6);
    header.writeUInt32BE(body.length, 8);
    header.writeUInt32BE(opaque, 12);
    socket.write(Buffer.concat([header, body]));
  };
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 24 && pending.length >= 24 + pending.readUInt32BE(8)) {
      const opcode = pending[1] as number;
      const opaque = pending.readUInt32BE(12);
      const body = pending.subarray(24 + (pending[4] as number), 24 + pending.readUInt32BE(8));
      pending = pending.subarray(24 + pending.readUInt32BE(8));
      if (opcode === 0x20) answer(opcode, opaque, 0, 'PLAIN');
      else if (opcode === 0x21) {
        authenticated = body.toString() === 'PLAIN\0user\0pass';
        answer(opcode, opaque, authenticated ? 0 : 0x20, authenticated ? 'Authenticated' : 'Auth failure');
      } else answer(opcode, opaque, authenticated ? 1 : 0x20);
    }
  });
}

describe('connection lifecycle (memjs bugs and their fixes)', () => {
  const peers: FakePeer[] = [];
  const clients: Client[] = [];
  const stores: MemcachedStore[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await Promise.all(stores.splice(0).map((store) => store.close()));
    await Promise.all(peers.splice(0).map((peer) => peer.stop()));
  });

  describe('the peer closes the connection with a request in flight', () => {
    it('plain memjs leaves the request pending', async () => {
      const peer = await closesMidRequest();
      peers.push(peer);
      const client = Client.create(peer.address, { retries: 1, timeout: 0.2, logger: silent });
      clients.push(client);
      const outcome = await settledWithin(client.get('k').catch((e: unknown) => e), 1000);
      expect(outcome, 'memjs settled although its bug should leave the request pending').to.equal('pending');
    });

    it('MemcachedStore settles it at once as connection lost, outcome unknown for writes', async () => {
      const peer = await closesMidRequest();
      peers.push(peer);
      const store = new MemcachedStore({ servers: [peer.address], timeoutMs: 1000, retryAfterMs: 0 });
      stores.push(store);
      const started = performance.now();
      const [set] = await store.execute([{ op: 'set', key: 'k', value: Buffer.from('v'), ttl: 0 }]);
      expect(performance.now() - started).to.be.below(900);
      expect(set.status === 'error' && set.error).to.include({ kind: 'timeout', outcomeUnknown: true, op: 'set', key: 'k' });
      const get = await store.get('k');
      expect(get.status === 'error' && get.error).to.include({ kind: 'timeout', outcomeUnknown: false });
    });
  });

  describe('an old socket closes after a new one took over', () => {
    it('plain memjs lets the old socket disarm the new socket’s request timer', async () => {
      const peer = await closesOldConnectionLate();
      peers.push(peer);
      const client = Client.create(peer.address, { retries: 1, timeout: 0.2, logger: silent });
      clients.push(client);
      const first = await settledWithin(client.get('a').catch((e: unknown) => e), 1000);
      expect(first).to.be.instanceOf(Error);
      const second = await settledWithin(client.get('b').catch((e: unknown) => e), 1500);
      expect(second, 'memjs settled although its bug should leave the request pending').to.equal('pending');
    });

    it('MemcachedStore ignores the old socket: the request times out at its deadline', async () => {
      const peer = await closesOldConnectionLate();
      peers.push(peer);
      const store = new MemcachedStore({ servers: [peer.address], timeoutMs: 200, retryAfterMs: 0 });
      stores.push(store);
      const first = await settledWithin(store.get('a'), 1000);
      expect(first !== 'pending' && first.status === 'error' && first.error.kind).to.equal('timeout');
      const started = performance.now();
      const second = await settledWithin(store.get('b'), 1000);
      expect(second !== 'pending' && second.status === 'error' && second.error.message).to.match(/did not answer get within 200 ms/);
      expect(performance.now() - started).to.be.below(600);
      expect(peer.sockets).to.have.length(2);
    });
  });

  describe('SASL', () => {
    it('authenticates with PLAIN before sending requests', async () => {
      const peer = await FakePeer.start(saslPeer);
      peers.push(peer);
      const store = new MemcachedStore({ servers: [peer.address], username: 'user', password: 'pass' });
      stores.push(store);
      expect((await store.get('k')).status).to.equal('not_found');
    });

    it('marks the server down on a refused login without revealing the password', async () => {
      const peer = await FakePeer.start(saslPeer);
      peers.push(peer);
      const store = new MemcachedStore({ servers: [peer.address], username: 'user', password: 'hunter2-secret' });
      stores.push(store);
      const result = await store.get('k');
      expect(result.status === 'error' && result.error.kind).to.equal('unavailable');
      const shown = result.status === 'error' ? `${result.error.message} ${String(result.error.cause)} ${inspect(result.error)}` : '';
      expect(shown).to.match(/SASL authentication failed/).and.not.include('hunter2');
      expect(inspect(store, { depth: 10 })).to.not.include('hunter2');
    });
  });

  it('plain memjs misreads counters at 2^32 and above, MemcachedStore does not', async () => {
    const [address] = sharedServers().memcachedAddresses;
    const client = Client.create(address, { logger: silent });
    clients.push(client);
    const key = `memjs-incr-${process.pid}`;
    await client.set(key, String(2 ** 32 - 1), {});
    const plain = await client.increment(key, 1, {});
    expect(plain.value).to.not.equal(2 ** 32);
    const store = new MemcachedStore({ servers: [address as string], namespace: 'raw' });
    stores.push(store);
    await client.set(`raw:${key}`, String(2 ** 32 - 1), {});
    const [ours] = await store.execute([{ op: 'incr', key, delta: 1n, ttl: 0 }]);
    expect(ours.status === 'counter' && ours.value).to.equal(2n ** 32n);
  });
});
