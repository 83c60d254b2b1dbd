import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import pg from 'pg';
import { wrap } from '@mikro-orm/core';
import { MikroORM, defineEntity, p } from '@mikro-orm/postgresql';
import { sharedServers } from '../support/global-servers.js';
import { withXaCache } from '../../lib/mikro-orm/with-xa-cache.js';
import { installWriteCapture } from '../../lib/mikro-orm/write-capture-setup.js';
import { invalidate } from '../../lib/mikro-orm/invalidation.js';
import type { XaCacheAdapter, XaCacheOptions } from '../../lib/mikro-orm/xa-cache-adapter.js';
import type { SqlRunner } from '../../lib/protocol/sql-runner.js';
import { recordMessages } from '../support/pg-messages.js';

/**
 * Write-through (docs/protocol.md, "Write-through"): after a commit, the rows it inserted or updated hold their
 * committed image, so the next read is a hit, and that image is byte for byte what a miss and a fill would store.
 */
const Thing = defineEntity({
  name: 'WtThing',
  tableName: 'wt_thing',
  xaCache: true,
  properties: {
    id: p.integer().primary(),
    name: p.string(),
    big: p.bigint().nullable(),
    amount: p.decimal().precision(12).scale(4).nullable(),
    data: p.json<Record<string, unknown>>().nullable(),
    blob: p.blob().nullable(),
    at: p.datetime().nullable(),
    day: p.date().nullable(),
    labels: p.array().nullable(),
    mood: p.enum(['calm', 'busy']).nullable(),
    ratio: p.double().nullable(),
    flag: p.boolean().nullable(),
    /** A database default the ORM does not know the value of. */
    note: p.string().defaultRaw(`'fresh'`),
    /** Set by a BEFORE trigger on every insert and update. */
    stamp: p.string().nullable(),
  },
});
type ThingT = InstanceType<typeof Thing.class>;
/** A second cached table, for transactions that write rows of two. */
const Part = defineEntity({
  name: 'WtPart',
  tableName: 'wt_part',
  xaCache: true,
  properties: {
    id: p.integer().primary(),
    label: p.string(),
  },
});

const TABLE = 'public.wt_thing';
const rowKey = (id: number): string => `e:${TABLE}:${id}`;
const READ = { regions: [`rows:${TABLE}`], lease: false } as const;
const FULL: Partial<ThingT> = {
  big: 9007199254740993n, // beyond 2^53
  amount: '12.3400',
  data: { z: 1, a: [1, 'x', null], nested: { b: true } },
  blob: Buffer.from([0, 1, 127, 255]),
  at: new Date('2024-02-03T04:05:06.789Z'),
  day: '2024-02-03',
  labels: ['x', 'y, z', '"q"'],
  mood: 'busy',
  ratio: 0.1,
  flag: true,
};

describe('write-through of committed row images', function () {
  this.timeout(60_000);
  let orm: MikroORM;
  let other: MikroORM;
  let admin: pg.Client;
  let sql: string[];
  let namespace: string;

  const open = (extra: Partial<XaCacheOptions> = {}, log?: string[]): Promise<MikroORM> =>
    MikroORM.init(
      withXaCache(
        { entities: [Thing, Part], clientUrl: sharedServers().db, ...(log ? { onQuery: (q: string) => (log.push(q), q) } : {}) },
        { servers: sharedServers().memcachedAddresses, namespace, logTable: 'xa_cache_log', ...extra },
      ),
    );
  const cache = (o: MikroORM = orm): XaCacheAdapter => o.config.getResultCacheAdapter() as XaCacheAdapter;
  const settle = async (): Promise<void> => {
    await cache(orm).promotes.settle();
    await cache(other).promotes.settle();
  };
  /** The payload cached under a row's key, if it is a hit. */
  const cached = async (id: number): Promise<Buffer | undefined> => {
    const read = await cache().xa.reader.read(rowKey(id), READ);
    return read.status === 'hit' ? read.payload : undefined;
  };
  /** What a miss and a fill store for the row now. */
  const filled = async (id: number): Promise<Buffer | undefined> => {
    await invalidate(orm.em.fork(), Thing, [id]);
    await orm.em.fork().findOne(Thing, id);
    return cached(id);
  };
  const fromDatabase = async (id: number): Promise<Record<string, unknown>> => wrap(await other.em.fork().findOneOrFail(Thing, id, { refresh: true })).toObject();

  before(async () => {
    namespace = `wt${randomUUID().slice(0, 8)}`;
    sql = [];
    orm = await open({}, sql);
    other = await open();
    admin = new pg.Client({ connectionString: sharedServers().db });
    await admin.connect();
  });
  after(async () => {
    await admin.end();
    await orm.close(true);
    await other.close(true);
  });

  beforeEach(async () => {
    await orm.schema.refresh();
    await installWriteCapture(orm);
    await admin.query(`
      CREATE OR REPLACE FUNCTION wt_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN NEW.stamp := 'stamped:' || NEW.name; RETURN NEW; END $$;
      CREATE TRIGGER wt_stamp BEFORE INSERT OR UPDATE ON wt_thing FOR EACH ROW EXECUTE FUNCTION wt_stamp();
      ALTER TABLE wt_thing ADD CONSTRAINT wt_name_unique UNIQUE (name) DEFERRABLE INITIALLY DEFERRED;
      INSERT INTO wt_thing (id, name) VALUES (1, 'one'), (2, 'two');
      INSERT INTO wt_part (id, label) VALUES (1, 'p1');
    `);
    // Tables were re-created: what earlier tests cached names rows that no longer exist.
    await invalidate(orm.em.fork(), Thing, [1, 2, 3]);
    await invalidate(orm.em.fork(), Part, [1]);
    sql.length = 0;
  });

  it('after a flush, the next read is a hit with zero SQL, equal to the database and to what a fill stores (every column type)', async () => {
    await orm.em.fork().findOneOrFail(Thing, 1); // cached before the write
    const em = orm.em.fork();
    const thing = await em.findOneOrFail(Thing, 1);
    Object.assign(thing, FULL, { name: 'uno' });
    await em.flush();
    await settle();
    sql.length = 0;
    const hits = cache().xa.stats.hits;
    const read = await orm.em.fork().findOneOrFail(Thing, 1);
    expect(sql, 'SQL after the write').to.deep.equal([]);
    expect(cache().xa.stats.hits).to.equal(hits + 1);
    expect(wrap(read).toObject()).to.deep.equal(await fromDatabase(1));
    expect(read.stamp, 'the trigger ran on the update').to.equal('stamped:uno');
    expect(read.big).to.equal(9007199254740993n);
    expect(read.amount).to.equal('12.3400');
    expect(Buffer.isBuffer(read.blob) && read.blob.equals(FULL.blob as Buffer)).to.equal(true);
    const written = await cached(1);
    expect(written, 'written through').to.be.instanceOf(Buffer);
    expect((written as Buffer).equals((await filled(1)) as Buffer), 'byte for byte what a fill stores').to.equal(true);
  });

  describe('the read of the written rows rides along the log statement', () => {
    /** Statements the application's pg clients send while `work` runs (every client, counted at the driver). */
    const statementsDuring = async (work: () => Promise<void>): Promise<string[]> => {
      const recording = recordMessages();
      try {
        await work();
      } finally {
        recording.stop();
      }
      return recording.sent.map((text) => text.replace(/\s+/g, ' ').trim());
    };

    it('a flush sends BEGIN with its UPDATE, the log statement carrying the read, COMMIT: no SELECT of its own', async () => {
      await orm.em.fork().findOneOrFail(Thing, 1);
      const em = orm.em.fork();
      (await em.findOneOrFail(Thing, 1)).name = 'carried';
      const sent = await statementsDuring(() => em.flush());
      const kinds = sent.map((text) => (/^\/\* xa-cache: joined rows \*\/ with taken as [^;]*;\s*select /i.test(text) ? 'log + read' : /^with taken as/i.test(text) ? 'log' : text.split(' ')[0]!.toLowerCase()));
      expect(kinds).to.deep.equal(['begin;update', 'log + read', 'commit']);
      await settle();
      sql.length = 0;
      expect((await orm.em.fork().findOneOrFail(Thing, 1)).name).to.equal('carried');
      expect(sql, 'a hit').to.deep.equal([]);
      expect(((await cached(1)) as Buffer).equals((await filled(1)) as Buffer), 'byte for byte what a fill stores').to.equal(true);
    });

    it('the log statement and the read go out as two statements of one message: its one row, then the rows read', async () => {
      await orm.em.fork().find(Thing, { id: [1, 2] });
      const em = orm.em.fork();
      for (const thing of await em.find(Thing, { id: [1, 2] })) thing.name = `joined ${thing.id}`;
      const answers: unknown[] = [];
      const query = pg.Client.prototype.query;
      pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
        const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string } | undefined)?.text;
        const result = (query as (...a: unknown[]) => unknown).apply(this, args);
        if (text?.includes('WITH taken AS') && result instanceof Promise) void result.then((r: unknown) => answers.push(r), () => {});
        return result;
      } as typeof query;
      try {
        await em.flush();
      } finally {
        pg.Client.prototype.query = query;
      }
      expect(answers, 'one message').to.have.length(1);
      const results = answers[0] as Array<{ rows: Array<Record<string, unknown>> }>;
      expect(results, 'two statements answered').to.be.an('array').with.length(2);
      const [log, read] = results as [{ rows: Array<Record<string, unknown>> }, { rows: Array<Record<string, unknown>> }];
      expect(log.rows, 'the log statement: one row').to.have.length(1);
      const taken = JSON.parse(log.rows[0]!.taken as string) as Array<{ op: string; n: unknown[] }>;
      expect(taken.map((t) => [t.op, t.n.length])).to.deep.equal([['UPDATE', 2]]);
      expect(read.rows.map((r) => r.name).sort(), 'the rows read, as the read returns them').to.deep.equal(['joined 1', 'joined 2']);
      await settle();
      sql.length = 0;
      expect((await orm.em.fork().findOneOrFail(Thing, 1)).name).to.equal('joined 1');
      expect((await orm.em.fork().findOneOrFail(Thing, 2)).name).to.equal('joined 2');
      expect(sql, 'both written through: hits').to.deep.equal([]);
      expect(((await cached(1)) as Buffer).equals((await filled(1)) as Buffer), 'byte for byte what a fill stores').to.equal(true);
    });

    it('the row region\'s generation is read in the same store call as prepare\'s locks, not in one of its own', async () => {
      const em = orm.em.fork();
      (await em.findOneOrFail(Thing, 1)).name = 'read with the locks';
      await settle();
      // Every store call while the flush runs, by the ops it sent (background work of the library may add calls of
      // its own, and a lost compare-and-swap a round: what is asserted is where the generation read travels).
      const store = cache().xa.store as unknown as Record<'execute' | 'getMulti', (...a: unknown[]) => unknown>;
      const originals = { execute: store.execute, getMulti: store.getMulti };
      const calls: Array<Array<{ op: string; key: string }>> = [];
      store.execute = (...a: unknown[]) => {
        calls.push((a[0] as Array<{ op: string; key: string }>).map(({ op, key }) => ({ op, key })));
        return originals.execute.apply(store, a);
      };
      store.getMulti = (...a: unknown[]) => {
        calls.push((a[0] as string[]).map((key) => ({ op: 'get', key })));
        return originals.getMulti.apply(store, a);
      };
      try {
        await em.flush();
      } finally {
        Object.assign(store, originals);
      }
      const generationReads = calls.filter((ops) => ops.some(({ op, key }) => op === 'get' && key.startsWith(`r:rows:${TABLE}`)));
      expect(generationReads, 'the generation is read').to.not.have.length(0);
      for (const ops of generationReads) expect(ops.some(({ op, key }) => op !== 'get' && key === rowKey(1)), `read along the row's lock: ${JSON.stringify(ops)}`).to.equal(true);
      await settle();
      sql.length = 0;
      expect((await orm.em.fork().findOneOrFail(Thing, 1)).name).to.equal('read with the locks');
      expect(sql, 'written through: a hit').to.deep.equal([]);
    });

    it('rows of two tables: the first read is carried, the second runs on its own, both are written through', async () => {
      await orm.em.fork().findOneOrFail(Thing, 1);
      await orm.em.fork().findOneOrFail(Part, 1);
      const em = orm.em.fork();
      (await em.findOneOrFail(Thing, 1)).name = 'both';
      (await em.findOneOrFail(Part, 1)).label = 'both too';
      const sent = await statementsDuring(() => em.flush());
      expect(sent.filter((text) => /^select/i.test(text)), 'one read on its own').to.have.length(1);
      await settle();
      sql.length = 0;
      expect((await orm.em.fork().findOneOrFail(Thing, 1)).name).to.equal('both');
      expect((await orm.em.fork().findOneOrFail(Part, 1)).label).to.equal('both too');
      expect(sql, 'hits').to.deep.equal([]);
    });

    it('a failed log statement fails the flush and the read it carried, and nothing waits', async () => {
      await orm.em.fork().findOneOrFail(Thing, 1);
      const before = await cached(1);
      await admin.query(`ALTER TABLE xa_cache_log ADD CONSTRAINT wt_refuse CHECK (tx_id IS NULL) NOT VALID`);
      try {
        const em = orm.em.fork();
        (await em.findOneOrFail(Thing, 1)).name = 'refused';
        let error: unknown;
        await em.flush().catch((e: unknown) => (error = e));
        expect(String(error)).to.match(/wt_refuse/);
      } finally {
        await admin.query(`ALTER TABLE xa_cache_log DROP CONSTRAINT wt_refuse`);
      }
      await settle();
      expect((await orm.em.fork().findOneOrFail(Thing, 1)).name, 'rolled back').to.equal('one');
      const after = await cached(1);
      if (after) expect(after.equals(before as Buffer), 'the old image, or evicted').to.equal(true);
      const em = orm.em.fork();
      (await em.findOneOrFail(Thing, 1)).name = 'accepted';
      await em.flush();
      await settle();
      expect((await orm.em.fork().findOneOrFail(Thing, 1)).name).to.equal('accepted');
    });
  });

  it('commits after the first of their shape read through the statement kept from it: still byte for byte what a fill stores', async () => {
    for (const [i, id] of [1, 2, 1].entries()) {
      await orm.em.fork().findOneOrFail(Thing, id);
      const em = orm.em.fork();
      Object.assign(await em.findOneOrFail(Thing, id), FULL, { name: `kept ${i}`, amount: `${i}.5000`, big: 9007199254740993n + BigInt(i) });
      await em.flush();
      await settle();
      const written = await cached(id);
      expect(written, `commit ${i}: written through`).to.be.instanceOf(Buffer);
      expect((written as Buffer).equals((await filled(id)) as Buffer), `commit ${i}: byte for byte what a fill stores`).to.equal(true);
    }
  });

  it('writes nulls through exactly', async () => {
    const em = orm.em.fork();
    const thing = await em.findOneOrFail(Thing, 2);
    Object.assign(thing, FULL);
    await em.flush();
    const again = orm.em.fork();
    const nulled = await again.findOneOrFail(Thing, 2);
    for (const column of Object.keys(FULL)) (nulled as unknown as Record<string, unknown>)[column] = null;
    await again.flush();
    await settle();
    sql.length = 0;
    const read = await orm.em.fork().findOneOrFail(Thing, 2);
    expect(sql).to.deep.equal([]);
    expect(read.big).to.equal(null);
    expect(read.data).to.equal(null);
    expect(wrap(read).toObject()).to.deep.equal(await fromDatabase(2));
    expect(((await cached(2)) as Buffer).equals((await filled(2)) as Buffer)).to.equal(true);
  });

  it('an insert holds the row with its database defaults and trigger values', async () => {
    // Values are recorded with the row region's generation, which the first read creates: with several memcached
    // servers, the copy on the row's own server (docs/protocol.md, "Region copies"), so the new row's key is read once.
    await orm.em.fork().findOneOrFail(Thing, 1);
    expect(await orm.em.fork().findOne(Thing, 3)).to.equal(null);
    const em = orm.em.fork();
    em.create(Thing, { id: 3, name: 'three', at: FULL.at });
    await em.flush();
    await settle();
    sql.length = 0;
    const read = await orm.em.fork().findOneOrFail(Thing, 3);
    expect(sql).to.deep.equal([]);
    expect(read.note).to.equal('fresh');
    expect(read.stamp).to.equal('stamped:three');
    expect(wrap(read).toObject()).to.deep.equal(await fromDatabase(3));
    expect(((await cached(3)) as Buffer).equals((await filled(3)) as Buffer)).to.equal(true);
  });

  it('takes the last state of a row written by several statements, raw SQL included', async () => {
    await orm.em.fork().transactional(async (em) => {
      const thing = await em.findOneOrFail(Thing, 1);
      thing.name = 'first';
      await em.flush();
      await em.execute(`UPDATE wt_thing SET name = 'second', amount = 1.5 WHERE id = 1`);
    });
    await settle();
    sql.length = 0;
    const read = await orm.em.fork().findOneOrFail(Thing, 1);
    expect(sql).to.deep.equal([]);
    expect(read.name).to.equal('second');
    expect(read.stamp).to.equal('stamped:second');
    expect(read.amount).to.equal('1.5000');
  });

  it('rows only the database names (raw SQL) are read after prepare and written through', async () => {
    await orm.em.fork().findOneOrFail(Thing, 1);
    await orm.em.fork().findOneOrFail(Thing, 2);
    await orm.em.fork().transactional(async (em) => {
      await em.execute(`UPDATE wt_thing SET name = 'raw', data = '{"k": [1, 2]}' WHERE id = 2`);
    });
    await settle();
    sql.length = 0;
    const read = await orm.em.fork().findOneOrFail(Thing, 2);
    expect(sql).to.deep.equal([]);
    expect(read.name).to.equal('raw');
    expect(read.stamp).to.equal('stamped:raw');
    expect(((await cached(2)) as Buffer).equals((await filled(2)) as Buffer)).to.equal(true);
  });

  it('deletes evict', async () => {
    await orm.em.fork().findOneOrFail(Thing, 2);
    await orm.em.fork().transactional(async (em) => {
      const thing = await em.findOneOrFail(Thing, 2);
      thing.name = 'gone soon';
      await em.flush();
      em.remove(thing);
    });
    await settle();
    expect(await cached(2)).to.equal(undefined);
    expect(await orm.em.fork().findOne(Thing, 2)).to.equal(null);
  });

  it('a failed COMMIT (deferred constraint) leaves no image of the rolled-back write', async () => {
    await orm.em.fork().findOneOrFail(Thing, 1);
    const em = orm.em.fork();
    const thing = await em.findOneOrFail(Thing, 1);
    thing.name = 'two'; // violates the deferred unique constraint at COMMIT, after prepare supplied the image
    let failed = false;
    await em.flush().catch(() => (failed = true));
    expect(failed, 'COMMIT refused').to.equal(true);
    await settle();
    expect(await cached(1), 'released: evicted').to.equal(undefined);
    expect((await orm.em.fork().findOneOrFail(Thing, 1)).name).to.equal('one');
  });

  it('a rolled-back transaction or savepoint leaves cached rows as they were', async () => {
    await orm.em.fork().findOneOrFail(Thing, 1);
    const before = await cached(1);
    await orm.em
      .fork()
      .transactional(async (em) => {
        (await em.findOneOrFail(Thing, 1)).name = 'never';
        await em.flush();
        throw new Error('roll back');
      })
      .catch(() => undefined);
    await settle();
    expect((await cached(1))?.equals(before as Buffer), 'still cached as before').to.equal(true);
    await orm.em.fork().transactional(async (em) => {
      await em
        .transactional(async (inner) => {
          (await inner.findOneOrFail(Thing, 1)).name = 'savepoint';
          await inner.flush();
          throw new Error('roll back the savepoint');
        })
        .catch(() => undefined);
      (await em.findOneOrFail(Thing, 2)).name = 'kept';
    });
    await settle();
    expect((await orm.em.fork().findOneOrFail(Thing, 1)).name).to.equal('one');
    expect((await orm.em.fork().findOneOrFail(Thing, 2)).name).to.equal('kept');
    expect(wrap(await orm.em.fork().findOneOrFail(Thing, 1)).toObject()).to.deep.equal(await fromDatabase(1));
  });

  it('two writers racing on one row leave it evicted or holding the newest image', async () => {
    for (let round = 0; round < 12; round++) {
      await Promise.all(
        [orm, other].map((o, w) =>
          o.em.fork().transactional(async (em) => {
            const thing = await em.findOneOrFail(Thing, 1);
            thing.name = `r${round}w${w}`;
            thing.ratio = round + w / 10;
          }),
        ),
      );
      await settle();
      const payload = await cached(1);
      if (payload) expect(payload.equals((await filled(1)) as Buffer), `round ${round}: the cached image is the committed one`).to.equal(true);
      expect(wrap(await orm.em.fork().findOneOrFail(Thing, 1)).toObject()).to.deep.equal(await fromDatabase(1));
    }
  });

  it('a lock another writer joined is evicted, not written, whichever promotes last', async () => {
    await orm.em.fork().findOneOrFail(Thing, 1); // the row region has a generation
    const mutant = await open({ unsafeTestSwitches: { writeThroughSharedLock: true } });
    await mutant.connect();
    const writer = async (): Promise<{ db: pg.Client; runner: SqlRunner }> => {
      const db = new pg.Client({ connectionString: sharedServers().db });
      await db.connect();
      await db.query('BEGIN');
      return { db, runner: { query: async (text: string, params?: unknown[]) => ({ rows: (await db.query(text, params)).rows as object[] }) } };
    };
    const race = async (xa: XaCacheAdapter['xa'], lastToPromote: number): Promise<void> => {
      await invalidate(orm.em.fork(), Thing, [1]);
      await orm.em.fork().findOneOrFail(Thing, 1);
      const txs = [xa.begin(), xa.begin()];
      const dbs = [await writer(), await writer()];
      for (const [i, tx] of txs.entries()) {
        tx.invalidate([rowKey(1)]);
        await tx.prepare(dbs[i]!.runner);
        const generations = await xa.regionGenerations([`rows:${TABLE}`]);
        expect(tx.supplyValues([{ key: rowKey(1), payload: Buffer.from(`image ${i}`), regions: [`rows:${TABLE}`] }], generations)).to.equal(1);
      }
      for (const { db } of dbs) await db.query('COMMIT');
      await txs[1 - lastToPromote]!.promote();
      await txs[lastToPromote]!.promote();
      for (const { db } of dbs) await db.end();
    };
    try {
      for (const lastToPromote of [0, 1]) {
        await race(cache().xa, lastToPromote);
        expect(await cached(1), `writer ${lastToPromote} promoted last`).to.equal(undefined);
      }
      // The safeguard switched off: the first committer, promoting last, writes its older image.
      await race(cache(mutant).xa, 0);
      expect((await cached(1))?.toString()).to.equal('image 0');
    } finally {
      await mutant.close(true);
    }
  });

  it('writeThrough: false evicts as before', async () => {
    const log: string[] = [];
    const off = await open({ writeThrough: false }, log);
    try {
      const em = off.em.fork();
      (await em.findOneOrFail(Thing, 1)).name = 'off';
      await em.flush();
      await cache(off).promotes.settle();
      expect(await cached(1)).to.equal(undefined);
      log.length = 0;
      expect((await off.em.fork().findOneOrFail(Thing, 1)).name).to.equal('off');
      expect(log.filter((q) => /^select/i.test(q))).to.have.length(1);
    } finally {
      await off.close(true);
    }
  });
});
