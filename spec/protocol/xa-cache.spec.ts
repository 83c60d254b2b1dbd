import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { sharedServers } from '../support/global-servers.js';
import { ProtocolFixture } from '../support/protocol-fixture.js';
import { decodeEntry, encodeEntry } from '../../lib/protocol/entry-codec.js';
import { applyTransitions } from '../../lib/protocol/cas-batch.js';
import { prepareTransition } from '../../lib/protocol/key-transitions.js';
import type { CacheTransaction } from '../../lib/protocol/cache-transaction.js';
import { lockHolders } from '../../lib/protocol/entry.js';
import { regionCopies, regionKey } from '../../lib/protocol/protocol-context.js';

describe('two-phase protocol against real memcached and PostgreSQL', () => {
  let f: ProtocolFixture;

  beforeEach(async () => {
    const s = sharedServers();
    f = await ProtocolFixture.create(s.memcachedAddresses, s.db);
    await f.seed([1, 2, 3]);
  });

  afterEach(async () => f.close());

  /** What a key holds; a lock every holder left is as good as absent and reads 'not_found'. */
  const entryKind = async (key: string): Promise<string> => {
    const r = await f.store.get(key);
    if (r.status !== 'hit') return r.status;
    const entry = decodeEntry(r.item.value);
    return entry.kind === 'lock' && lockHolders(entry).length === 0 ? 'not_found' : entry.kind;
  };

  it('fills on a miss and serves the fill on the next read without the loader', async () => {
    expect(await f.read(1)).to.deep.equal({ v: 1, token: 'seed' });
    let loads = 0;
    const payload = await f.cache.reader.fetch('kv:1', async () => {
      loads++;
      return Buffer.from('{}');
    });
    expect(loads).to.equal(0);
    expect(JSON.parse(String(payload))).to.deep.equal({ v: 1, token: 'seed' });
    expect(f.cache.stats.hits).to.equal(1);
  });

  it('serves the new value after a commit returns (promote writes the known value)', async () => {
    await f.read(1);
    const { token } = await f.write([1], { putValues: true });
    const before = f.cache.stats.hits;
    expect(await f.read(1)).to.deep.equal({ v: 2, token });
    expect(f.cache.stats.hits).to.equal(before + 1);
  });

  it('evicts on commit when the value is not known, and the next read loads the committed row', async () => {
    await f.read(1);
    const { token } = await f.write([1]);
    expect(await entryKind('kv:1')).to.equal('not_found');
    expect(await f.read(1)).to.deep.equal({ v: 2, token });
  });

  it('treats a locked key as a miss that may not fill', async () => {
    await f.read(1);
    await f.write([1], {
      at: async (phase) => {
        if (phase !== 'prepared') return;
        const read = await f.cache.reader.read('kv:1');
        expect(read).to.include({ status: 'miss', reason: 'locked', ticket: undefined });
      },
    });
  });

  it('refuses a fill whose lease was taken before a writer prepared', async () => {
    const read = await f.cache.reader.read('kv:1');
    if (read.status !== 'miss' || !read.ticket) throw new Error('expected a lease');
    const stale = await f.dbRow(1);
    await f.write([1], { putValues: true });
    expect(await f.cache.reader.fill(read.ticket, Buffer.from(JSON.stringify(stale)))).to.equal(false);
    expect(f.cache.stats.staleFillsRefused).to.equal(1);
    expect((await f.read(1)).v).to.equal(2);
  });

  it('refuses a fill racing each phase of a writer: lease before prepare, after prepare, after commit', async () => {
    for (const phase of ['updated', 'prepared', 'committed'] as const) {
      await f.cache.reader.read('kv:2'); // ensure nothing is cached
      let ticket: Awaited<ReturnType<typeof f.cache.reader.read>> | undefined;
      let stale: { v: number; token: string } | undefined;
      const { versions } = await f.write([2], {
        at: async (p) => {
          if (p !== phase) return;
          ticket = await f.cache.reader.read('kv:2');
          stale = await f.dbRow(2); // not yet committed: the old row
        },
      });
      if (ticket?.status === 'miss' && ticket.ticket) {
        expect(await f.cache.reader.fill(ticket.ticket, Buffer.from(JSON.stringify(stale)))).to.equal(false);
      }
      expect((await f.read(2)).v, `lease taken at ${phase}`).to.equal(versions.get(2));
    }
  });

  it('leaves no trace of a rollback: the old value is read and no lock remains', async () => {
    await f.read(3);
    await f.write([3], { rollback: true });
    expect(await entryKind('kv:3')).to.equal('not_found');
    expect(await f.read(3)).to.deep.equal({ v: 1, token: 'seed' });
    expect(await f.cache.log.count(f.pool)).to.equal(0);
  });

  it('keeps two copies of a region on two servers: a result is served only while both are current, and a rollback restores both', async () => {
    const regions = ['kv'];
    const copies = regionCopies('kv', f.store);
    expect(copies).to.have.length(2);
    expect(new Set(copies.map((key) => f.store.serverFor(key))).size).to.equal(2);
    const load = async (): Promise<Buffer> => Buffer.from('[1]');
    const fresh = async (): Promise<void> => {
      const read = await f.cache.reader.read('q:copies', { regions });
      if (read.status === 'miss' && read.ticket) await f.cache.reader.fill(read.ticket, await load());
      expect((await f.cache.reader.read('q:copies', { regions })).status).to.equal('hit');
    };
    await fresh();
    for (const copy of copies) {
      // Either copy lost (evicted, its server restarted): the result is no longer trusted.
      await f.store.execute([{ op: 'delete', key: copy }]);
      const read = await f.cache.reader.read('q:copies', { regions });
      expect(read).to.include({ status: 'miss', reason: 'stale' });
      if (read.status === 'miss' && read.ticket) await f.cache.reader.abandon(read.ticket);
      await fresh();
    }
    await f.write([1], { rollback: true, regions });
    expect((await f.cache.reader.read('q:copies', { regions })).status).to.equal('hit');
    const before = await Promise.all(copies.map(async (key) => ((await f.store.get(key)) as { item: { value: Buffer } }).item.value.toString('hex')));
    await f.write([1], { regions });
    const after = await Promise.all(copies.map(async (key) => ((await f.store.get(key)) as { item: { value: Buffer } }).item.value.toString('hex')));
    expect(after[0], 'both copies renewed when both are reachable').to.not.equal(before[0]);
    expect(after[1]).to.not.equal(before[1]);
    expect(await f.cache.reader.read('q:copies', { regions })).to.include({ status: 'miss', reason: 'stale' });
  });

  it('restores a region generation after a rollback, so query results stay valid', async () => {
    const regions = ['kv'];
    const load = async (): Promise<Buffer> => Buffer.from('[1,2,3]');
    await f.cache.reader.fetch('q:all', load, { regions });
    expect((await f.cache.reader.read('q:all', { regions })).status).to.equal('hit');
    await f.write([1], { rollback: true, regions });
    expect((await f.cache.reader.read('q:all', { regions })).status).to.equal('hit');
    await f.write([1], { regions });
    expect(await f.cache.reader.read('q:all', { regions })).to.include({ status: 'miss', reason: 'stale' });
  });

  it('invalidates query results of the regions written, and only those', async () => {
    await f.cache.reader.fetch('q:books', async () => Buffer.from('b'), { regions: ['book'] });
    await f.cache.reader.fetch('q:authors', async () => Buffer.from('a'), { regions: ['author'] });
    await f.cache.reader.fetch('q:both', async () => Buffer.from('ab'), { regions: ['author', 'book'] });
    await f.write([1], { regions: ['book'] });
    expect((await f.cache.reader.read('q:books', { regions: ['book'] })).status).to.equal('miss');
    expect((await f.cache.reader.read('q:both', { regions: ['author', 'book'] })).status).to.equal('miss');
    expect((await f.cache.reader.read('q:authors', { regions: ['author'] })).status).to.equal('hit');
  });

  it('does not serve a query result filled while a writer of its region was in flight', async () => {
    const regions = ['kv'];
    await f.write([1], {
      regions,
      at: async (phase) => {
        if (phase === 'committed') {
          // Between COMMIT and promote the region is locked: a reader may not fill.
          const read = await f.cache.reader.read('q:r', { regions });
          expect(read).to.include({ status: 'miss', reason: 'region-locked', ticket: undefined });
        }
      },
    });
  });

  describe('two writers on one key', () => {
    const value = (v: number): Buffer => Buffer.from(JSON.stringify({ v, token: String(v) }));

    for (const firstCommits of ['A', 'B'] as const) {
      it(`never leaves the older value cached (writer ${firstCommits} commits first)`, async () => {
        const other = await f.sibling(sharedServers().memcachedAddresses, sharedServers().db);
        try {
          const a = await f.prepared(['kv:1'], value(10));
          const b = await other.prepared(['kv:1'], value(20));
          if (firstCommits === 'A') {
            await a.commit();
            expect(await entryKind('kv:1'), 'B still holds its lock').to.equal('lock');
            await b.commit();
          } else {
            await b.commit();
            await a.commit();
          }
          // A lock two writers shared ends evicted: neither may know it holds the newest value.
          expect(await entryKind('kv:1')).to.equal('not_found');
        } finally {
          await other.close();
        }
      });
    }

    it('keeps the key locked for the other writer when one rolls back', async () => {
      const other = await f.sibling(sharedServers().memcachedAddresses, sharedServers().db);
      try {
        const a = await f.prepared(['kv:1'], value(10));
        const b = await other.prepared(['kv:1'], value(20));
        await b.rollback();
        expect(await entryKind('kv:1')).to.equal('lock');
        expect((await f.cache.reader.read('kv:1')).status).to.equal('miss');
        await a.commit();
        expect(await entryKind('kv:1')).to.equal('not_found');
      } finally {
        await other.close();
      }
    });

    it('writes the value when a second writer only rolled back before the first prepared', async () => {
      const b = await f.prepared(['kv:1'], value(20));
      await b.rollback();
      const a = await f.prepared(['kv:1'], value(10));
      await a.commit();
      expect(await entryKind('kv:1')).to.equal('value');
    });
  });

  it('reads garbage bytes under a key as a miss, counts them, and replaces them with a fill', async () => {
    await f.store.execute([{ op: 'set', key: 'kv:1', value: Buffer.from('\x00\xffnot ours'), ttl: 0 }] as const);
    expect((await f.cache.reader.read('kv:1', { lease: false })).status).to.equal('miss');
    expect(await f.read(1)).to.deep.equal({ v: 1, token: 'seed' });
    expect(f.cache.stats.foreignEntries).to.be.greaterThan(0);
    expect(await entryKind('kv:1')).to.equal('value');
  });

  it('treats garbage under a region key as an unknown generation', async () => {
    await f.cache.reader.fetch('q:x', async () => Buffer.from('x'), { regions: ['kv'] });
    await f.store.execute([{ op: 'set', key: regionKey('kv'), value: Buffer.from('garbage'), ttl: 0 }] as const);
    expect((await f.cache.reader.read('q:x', { regions: ['kv'] })).status).to.equal('miss');
  });

  it('readers racing to start a region\'s generation all get leases: the losers read again under the winner\'s', async () => {
    // A table's first reads arrive together (an application's start, a cache emptied): each finds the region absent
    // and writes a fresh generation; one wins. A loser's lease would fill a value no region vouches for, so it was
    // given back and the row never filled; now it reads again under the generation that won.
    const keys = Array.from({ length: 8 }, (_, i) => `kv:race-${i}`);
    const reads = await Promise.all(keys.map((key) => f.cache.reader.read(key, { regions: ['kv_race'] })));
    expect(reads.map((r) => r.status === 'miss' && r.ticket !== undefined)).to.deep.equal(keys.map(() => true));
    const generations = new Set(reads.map((r) => (r.status === 'miss' ? r.ticket?.generations.get('kv_race') : undefined)));
    expect(generations.size, 'one generation for all').to.equal(1);
    const filled = await Promise.all(reads.map((r, i) => (r.status === 'miss' && r.ticket ? f.cache.reader.fill(r.ticket, Buffer.from(`v${i}`)) : false)));
    expect(filled).to.deep.equal(keys.map(() => true));
    const again = await Promise.all(keys.map((key) => f.cache.reader.read(key, { regions: ['kv_race'] })));
    expect(again.map((r) => (r.status === 'hit' ? String(r.payload) : r.status))).to.deep.equal(keys.map((_, i) => `v${i}`));
    expect(f.cache.stats.misses, 'each first read counted once, as a miss').to.equal(keys.length);
    expect(f.cache.stats.hits).to.equal(keys.length);
  });

  it('lets concurrent missers wait for one lease holder instead of all loading', async () => {
    let loads = 0;
    const load = async (): Promise<Buffer> => {
      loads++;
      await new Promise((r) => setTimeout(r, 30));
      return Buffer.from('{"v":1,"token":"seed"}');
    };
    const cache = f.cache;
    const results = await Promise.all(Array.from({ length: 10 }, () => cache.reader.fetch('kv:herd', load)));
    expect(results.every((r) => String(r) === '{"v":1,"token":"seed"}')).to.equal(true);
    expect(loads).to.be.lessThan(10);
    expect(cache.stats.leaseWaits).to.be.greaterThan(0);
  });

  describe('readers meeting a writer\'s lock (lockWaitMs)', () => {
    /** Runs `test` on a fixture of its own whose readers wait up to `lockWaitMs` for a writer's promote. */
    const withLockWait = async (lockWaitMs: number, test: (g: ProtocolFixture) => Promise<void>): Promise<void> => {
      const s = sharedServers();
      const g = await ProtocolFixture.create(s.memcachedAddresses, s.db, { protocol: { lockWaitMs } });
      try {
        await test(g);
      } finally {
        await g.close();
      }
    };

    /** Resolves once `g`'s readers have waited for a lock `count` times; fails after 10 s. */
    const lockWaitsReach = async (g: ProtocolFixture, count: number): Promise<void> => {
      for (const deadline = Date.now() + 10_000; g.cache.stats.lockWaits < count; ) {
        if (Date.now() > deadline) throw new Error(`readers waited for a lock ${g.cache.stats.lockWaits} times, not ${count}`);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    };

    it('wait for the promote and get the committed value: a hit, no load', () =>
      // Far above any promote, so the outcome does not depend on timing.
      withLockWait(10_000, async (g) => {
        const writer = await g.prepared(['lw:1'], Buffer.from('committed'));
        const reading = g.cache.reader.readManyWaiting(['lw:1']);
        // Commit only once the reader has met the lock and waits: had its answer come back after the commit began,
        // it would have taken the promoting value at once (the next test), and this one would not test a wait.
        await lockWaitsReach(g, 1);
        await writer.commit();
        const read = (await reading).get('lw:1');
        expect(read?.status).to.equal('hit');
        expect(String(read?.status === 'hit' ? read.payload : '')).to.equal('committed');
        expect([g.cache.stats.hits, g.cache.stats.misses, g.cache.stats.lockBypasses], 'counted as the one hit it was').to.deep.equal([1, 0, 0]);
      }));

    /** A fixture whose promotes stop halfway (the first half of the keys done) until `open()`. */
    const withGatedPromote = async (lockWaitMs: number, test: (g: ProtocolFixture, open: () => void) => Promise<void>): Promise<void> => {
      const s = sharedServers();
      let open!: () => void;
      const gate = new Promise<void>((resolve) => (open = resolve));
      const g = await ProtocolFixture.create(s.memcachedAddresses, s.db, { protocol: { lockWaitMs, midPromoteHook: () => gate } });
      try {
        await test(g, open);
      } finally {
        open();
        await g.close();
      }
    };
    /** Long enough for a polling reader to have read a key again many times (2, 4, 8… ms apart). */
    const longer = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 150));

    it('a lock of this process\'s committed transaction that writes the value: the reader takes it from the promote, before it ends', () =>
      withGatedPromote(10_000, async (g, open) => {
        // lw:4 is in the half promote has not reached while the gate is shut.
        const writer = await g.prepared(['lw:hold', 'lw:4'], Buffer.from('committed'));
        const reading = g.cache.reader.readManyWaiting(['lw:4']);
        const committing = writer.commit();
        const read = (await reading).get('lw:4');
        expect(String(read?.status === 'hit' ? read.payload : read?.status), 'served while the promote is stopped').to.equal('committed');
        expect(g.cache.stats.lockWaits, 'woken by the promote\'s start, not polling').to.be.at.most(1);
        expect([g.cache.stats.hits, g.cache.stats.misses, g.cache.stats.lockBypasses], 'one hit').to.deep.equal([1, 0, 0]);
        // Another read while the key is still locked: a hit at once, no wait.
        expect((await g.cache.reader.readManyWaiting(['lw:4'])).get('lw:4')?.status).to.equal('hit');
        open();
        await committing;
        expect(String(((await g.cache.reader.read('lw:4')) as { payload?: Buffer }).payload), 'and promote wrote the same').to.equal('committed');
      }));

    it('a lock of this process\'s transactions that promote evicts: one wait until their promote ends, however long it takes', () =>
      withGatedPromote(10_000, async (g, open) => {
        const writer = await g.prepared(['lw:hold', 'lw:4']);
        const reading = g.cache.reader.readManyWaiting(['lw:4']);
        let settled = false;
        void reading.then(() => (settled = true));
        const committing = writer.commit();
        await longer();
        expect(settled, 'nothing to take from an eviction: still waiting').to.equal(false);
        open();
        await committing;
        const read = (await reading).get('lw:4');
        expect(read?.status, 'then read as absent: the database answers').to.equal('miss');
        expect(g.cache.stats.lockWaits, 'woken at the promote\'s start and at its end, never polling').to.be.at.most(2);
      }));

    it('a lock another transaction joined is not read from the promote (promote\'s rule: its last holder evicts)', () =>
      withGatedPromote(50, async (g, open) => {
        const first = await g.prepared(['lw:hold', 'lw:5'], Buffer.from('first'));
        const second = await g.prepared(['lw:5'], Buffer.from('second'));
        await second.rollback();
        const committing = first.commit();
        await longer();
        const read = (await g.cache.reader.readManyWaiting(['lw:5'])).get('lw:5');
        expect(read, 'a concurrent lock: a miss, as while waiting for any lock').to.include({ status: 'miss', reason: 'locked' });
        open();
        await committing;
      }));

    it('give up on a lock whose writer does not finish: a miss without a ticket (the database answers, nothing is filled)', () =>
      withLockWait(10, async (g) => {
        const writer = await g.prepared(['lw:2']);
        const read = (await g.cache.reader.readManyWaiting(['lw:2'])).get('lw:2');
        expect(read).to.include({ status: 'miss', reason: 'locked', ticket: undefined });
        expect([g.cache.stats.misses, g.cache.stats.lockBypasses], 'counted once, however often it looked again').to.deep.equal([1, 1]);
        await writer.rollback();
      }));

    it('lockWaitMs: 0 never waits', () =>
      withLockWait(0, async (g) => {
        const writer = await g.prepared(['lw:3']);
        const read = (await g.cache.reader.readManyWaiting(['lw:3'])).get('lw:3');
        expect(read).to.include({ status: 'miss', reason: 'locked' });
        expect(g.cache.stats.lockWaits).to.equal(0);
        await writer.rollback();
      }));
  });

  it('prepares any number of keys in two round trips per server and promotes them in one', async () => {
    const keys = Array.from({ length: 100 }, (_, i) => `many:${i}`);
    const servers = new Set(keys.map((k) => f.store.serverFor(k))).size;
    const client = await f.pool.connect();
    try {
      const tx = f.cache.begin();
      tx.invalidate(keys);
      await client.query('BEGIN');
      let before = f.store.counters.roundTrips;
      await tx.prepare(client);
      expect(f.store.counters.roundTrips - before).to.equal(2 * servers);
      await client.query('COMMIT');
      before = f.store.counters.roundTrips;
      await tx.promote();
      expect(f.store.counters.roundTrips - before).to.equal(servers);
    } finally {
      client.release();
    }
  });

  describe('prepare from the states this process last saw (RecentStates)', () => {
    const prepareTrips = async (ids: number[]): Promise<{ trips: number; tx: CacheTransaction }> => {
      let trips = 0;
      const { tx } = await f.write(ids, {
        at: async (phase) => {
          if (phase === 'updated') trips = f.store.counters.roundTrips;
          if (phase === 'prepared') trips = f.store.counters.roundTrips - trips;
        },
      });
      return { trips, tx };
    };

    it('locks keys it read or wrote last in one round trip per server (no read first)', async () => {
      const servers = new Set([1, 2, 3].map((id) => f.store.serverFor(`kv:${id}`))).size;
      for (const id of [1, 2, 3]) await f.read(id); // fills
      const first = await prepareTrips([1, 2, 3]);
      expect(first.trips, 'after fills').to.equal(servers);
      // The first write's promote evicted the rows; this process saw them absent: one round trip again.
      const second = await prepareTrips([1, 2, 3]);
      expect(second.trips, 'after its own promote').to.equal(servers);
      for (const id of [1, 2, 3]) expect(await f.read(id)).to.deep.equal(await f.dbRow(id));
    });

    it('a key another process changed since is read and locked all the same (its token no longer matches)', async () => {
      for (const id of [1, 2]) await f.read(id);
      const other = await f.sibling(sharedServers().memcachedAddresses, sharedServers().db);
      try {
        await other.write([1], { putValues: true }); // kv:1 now holds a value this process never saw
        let locked: string[] = [];
        await f.write([1, 2], {
          at: async (phase, tx) => {
            if (phase !== 'prepared') return;
            locked = await Promise.all([1, 2].map(async (id) => {
              const r = await f.store.get(`kv:${id}`);
              if (r.status !== 'hit') return r.status;
              const entry = decodeEntry(r.item.value);
              return entry.kind === 'lock' && lockHolders(entry).includes(tx.id) ? 'locked' : entry.kind;
            }));
          },
        });
        expect(locked).to.deep.equal(['locked', 'locked']);
        expect(await f.read(1)).to.deep.equal(await f.dbRow(1));
        expect(await other.read(1)).to.deep.equal(await f.dbRow(1));
      } finally {
        await other.close();
      }
    });

    it('reads sent after writes in one batch see the writes (the order scheme reads after a lock rely on)', async () => {
      const keys = ['order:a', 'order:b'];
      const TX_ORDER = randomUUID();
      const seen = new Map<string, string>();
      const outcomes = await applyTransitions(f.store, keys, (_key, current) => prepareTransition(current, TX_ORDER, 'item'), { lock: 60, forever: 0, value: () => 60 }, {
        codec: { encode: (_key, entry) => encodeEntry(entry), decode: (_key, bytes) => decodeEntry(bytes) },
        maxRounds: 3,
        readAfter: {
          keys,
          onRead: (read, landed) => {
            for (const key of keys) {
              const r = read.get(key);
              const entry = r?.status === 'hit' ? decodeEntry(r.item.value) : undefined;
              seen.set(key, `${landed.has(key) ? 'landed' : 'not landed'}, read ${entry?.kind === 'lock' ? lockHolders(entry).join() : r?.status}`);
            }
          },
        },
      });
      expect([...outcomes.values()].map((o) => o.status)).to.deep.equal(['done', 'done']);
      expect(Object.fromEntries(seen)).to.deep.equal({ 'order:a': `landed, read ${TX_ORDER}`, 'order:b': `landed, read ${TX_ORDER}` });
    });
  });

  it('writes exactly one log row inside the transaction, and deletes it lazily with a later transaction', async () => {
    await f.write([1]);
    expect(await f.cache.log.count(f.pool)).to.equal(1);
    expect(f.cache.pendingLogDeletes).to.equal(1);
    await f.write([2]);
    // The second transaction's statement deleted the first row; its own row waits in turn.
    expect(await f.cache.log.count(f.pool)).to.equal(1);
    await f.cache.flushLogDeletes(f.pool);
    expect(await f.cache.log.count(f.pool)).to.equal(0);
  });

  it('puts lazily deleted ids back when the carrying transaction rolls back', async () => {
    await f.write([1]);
    await f.write([2], { rollback: true });
    expect(f.cache.pendingLogDeletes).to.equal(1);
    expect(await f.cache.log.count(f.pool)).to.equal(1);
  });
});
