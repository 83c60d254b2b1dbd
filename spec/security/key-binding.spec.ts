import { expect } from 'chai';
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { MikroORM, defineEntity, p } from '@mikro-orm/postgresql';
import { sharedServers } from '../support/global-servers.js';
import { withXaCache } from '../../lib/mikro-orm/with-xa-cache.js';
import type { XaCacheAdapter } from '../../lib/mikro-orm/xa-cache-adapter.js';
import { decodeEntry, encodeEntry, encodeLockRecords } from '../../lib/protocol/entry-codec.js';
import { encodeValue } from '../../lib/mikro-orm/value-codec.js';
import { installWriteCapture } from '../../lib/mikro-orm/write-capture-setup.js';

/**
 * Issue 13: every entry is checked against the key it is read under. Entries are copied, planted and corrupted
 * with raw memcached writes (the store, in the application's namespace), never through the library.
 */
const Kb = {
  Box: defineEntity({
    name: 'KbBox',
    tableName: 'kb_box',
    xaCache: { collections: true },
    properties: { id: p.integer().primary(), items: () => p.oneToMany(Kb.Item).mappedBy('box') },
  }),
  Item: defineEntity({
    name: 'KbItem',
    tableName: 'kb_item',
    xaCache: true,
    properties: { id: p.integer().primary(), name: p.string(), box: () => p.manyToOne(Kb.Box) },
  }),
};

const ROW = (id: number): string => `e:public.kb_item:${id}`;

for (const secrets of [undefined, [randomBytes(32).toString('base64')]]) {
  describe(`entries are checked against their key (${secrets ? 'with' : 'without'} secrets)`, () => {
    let orm: MikroORM;
    let cache: XaCacheAdapter;
    before(async () => {
      const s = sharedServers();
      orm = await MikroORM.init(withXaCache({ entities: [Kb.Box, Kb.Item], clientUrl: s.db }, { servers: s.memcachedAddresses, namespace: `k${randomUUID().slice(0, 8)}`, secrets }));
      cache = orm.config.getResultCacheAdapter() as XaCacheAdapter;
    });
    beforeEach(async () => {
      await orm.schema.refresh();
      await installWriteCapture(orm);
      const em = orm.em.fork();
      const boxes = [1, 2].map((id) => em.create(Kb.Box, { id }));
      for (let id = 1; id <= 30; id++) em.create(Kb.Item, { id, name: `item ${id}`, box: boxes[id <= 20 ? 0 : 1]! });
      await em.flush();
    });
    after(async () => orm.close(true));

    const copy = async (from: string, to: string): Promise<void> => {
      const got = await cache.xa.store.get(from);
      if (got.status !== 'hit') throw new Error(`expected ${from} to be cached`);
      await cache.xa.store.execute([{ op: 'set', key: to, value: got.item.value, ttl: 0 }] as const);
    };
    const refused = (): number => cache.xa.stats.keyMismatches + cache.xa.stats.forgedEntries;
    const dbNames = async (): Promise<Map<number, string>> => {
      const client = new pg.Client({ connectionString: sharedServers().db });
      await client.connect();
      try {
        const { rows } = await client.query('SELECT id, name FROM kb_item ORDER BY id');
        return new Map(rows.map((r: { id: number; name: string }) => [r.id, r.name]));
      } finally {
        await client.end();
      }
    };

    it('a row copied under another key serves no wrong entity and updates no wrong row', async () => {
      await orm.em.fork().findOneOrFail(Kb.Item, 21);
      await copy(ROW(21), ROW(1));
      const before = refused();
      const em = orm.em.fork();
      const item = await em.findOneOrFail(Kb.Item, 1);
      expect(item.name).to.equal('item 1');
      expect(refused() - before, 'the copy was counted').to.equal(1);
      // The miss took a lease: the fill replaced the copy, and the next read is a hit of the right row.
      const hits = cache.xa.stats.hits;
      expect((await orm.em.fork().findOneOrFail(Kb.Item, 1)).name).to.equal('item 1');
      expect(cache.xa.stats.hits - hits).to.equal(1);
      item.name = 'renamed 1';
      await em.flush();
      const names = await dbNames();
      expect(names.get(1)).to.equal('renamed 1');
      for (const [id, name] of names) if (id !== 1) expect(name, `row ${id}`).to.equal(`item ${id}`);
    });

    it('a collection copied under another owner serves the owner its own members', async () => {
      await orm.em.fork().findOneOrFail(Kb.Box, 2, { populate: ['items'] });
      await copy('c:public.kb_box.items:2', 'c:public.kb_box.items:1');
      const before = refused();
      const box = await orm.em.fork().findOneOrFail(Kb.Box, 1, { populate: ['items'] });
      expect(box.items.getItems().map((i) => i.id).sort((a, b) => a - b)).to.deep.equal(Array.from({ length: 20 }, (_, i) => i + 1));
      expect(refused() - before).to.equal(1);
    });

    it('a query result copied under another key serves the query its own result', async () => {
      await orm.em.fork().find(Kb.Item, { box: 2 }, { cache: ['kb-box-2', 60_000] });
      await orm.em.fork().find(Kb.Item, { box: 1 }, { cache: ['kb-box-1', 60_000] });
      await copy('q:kb-box-2', 'q:kb-box-1');
      const before = refused();
      const items = await orm.em.fork().find(Kb.Item, { box: 1 }, { cache: ['kb-box-1', 60_000] });
      expect(items.map((i) => i.id).sort((a, b) => a - b)).to.deep.equal(Array.from({ length: 20 }, (_, i) => i + 1));
      expect(refused() - before).to.equal(1);
    });

    it('a well-bound entry whose row is another row (a buggy writer) is a miss, counted, and replaced', async () => {
      // A fill under key 1's own lease, with row 21's bytes: the envelope is right, the payload names other data.
      const read = await cache.xa.reader.read(ROW(1), { regions: ['rows:public.kb_item'] });
      if (read.status !== 'miss' || !read.ticket) throw new Error('expected a lease');
      await cache.xa.reader.fill(read.ticket, encodeValue({ id: 21, name: 'item 21', box: 2 }));
      const mismatches = cache.xa.stats.keyMismatches;
      const em = orm.em.fork();
      const item = await em.findOneOrFail(Kb.Item, 1);
      expect(item.name).to.equal('item 1');
      expect(cache.xa.stats.keyMismatches - mismatches).to.equal(1);
      item.name = 'renamed 1';
      await em.flush();
      expect((await dbNames()).get(21)).to.equal('item 21');
    });

    it('a valid envelope whose payload does not decode is a miss, counted once, and replaced by the next fill', async () => {
      const read = await cache.xa.reader.read(ROW(3), { regions: ['rows:public.kb_item'] });
      if (read.status !== 'miss' || !read.ticket) throw new Error('expected a lease');
      await cache.xa.reader.fill(read.ticket, Buffer.from('not a serialised row'));
      const { undecodablePayloads, hits } = cache.xa.stats;
      for (let i = 0; i < 10; i++) expect((await orm.em.fork().findOneOrFail(Kb.Item, 3)).name).to.equal('item 3');
      expect(cache.xa.stats.undecodablePayloads - undecodablePayloads).to.equal(1);
      expect(cache.xa.stats.hits - hits).to.equal(9);
    });

    it('an oversized lock reads as held by an unknown transaction: reads go to the database until it expires, then fills resume', async () => {
      const lock = encodeEntry({ kind: 'lock', records: [{ op: '+', txId: randomUUID() }], prior: undefined });
      const more = encodeLockRecords(Array.from({ length: 4095 }, () => ({ op: '+' as const, txId: randomUUID() })));
      // Planted with a 2 s lifetime (a real lock lives a lock lifetime after its last join).
      await cache.xa.store.execute([{ op: 'set', key: ROW(4), value: Buffer.concat([lock, more]), ttl: 2 }] as const);
      const bypasses = cache.xa.stats.lockBypasses;
      for (let i = 0; i < 3; i++) expect((await orm.em.fork().findOneOrFail(Kb.Item, 4)).name).to.equal('item 4');
      expect(cache.xa.stats.lockBypasses - bypasses, 'every read bypassed the held lock').to.equal(3);
      const now = await cache.xa.store.get(ROW(4));
      expect(now.status === 'hit' && decodeEntry(now.item.value).kind, 'nothing was filled over it').to.equal('lock');
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      expect((await orm.em.fork().findOneOrFail(Kb.Item, 4)).name).to.equal('item 4');
      const hits = cache.xa.stats.hits;
      expect((await orm.em.fork().findOneOrFail(Kb.Item, 4)).name).to.equal('item 4');
      expect(cache.xa.stats.hits - hits, 'filled once it expired').to.equal(1);
    });
  });
}
