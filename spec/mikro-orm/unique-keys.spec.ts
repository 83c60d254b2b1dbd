import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import pg from 'pg';
import { MikroORM, defineEntity, p, type EntityManager } from '@mikro-orm/postgresql';
import { sharedServers } from '../support/global-servers.js';
import { withXaCache } from '../../lib/mikro-orm/with-xa-cache.js';
import { installWriteCapture } from '../../lib/mikro-orm/write-capture-setup.js';
import { invalidateAll } from '../../lib/mikro-orm/invalidation.js';
import { startXaCache } from '../../lib/operations/start-xa-cache.js';
import { XaConfigError } from '../../lib/mikro-orm/xa-errors.js';
import type { XaCacheAdapter } from '../../lib/mikro-orm/xa-cache-adapter.js';
import { Member } from './decorated-entities.js';
import { captureDeriver } from '../../lib/mikro-orm/captured-keys.js';
import { keys, regions } from '../../lib/mikro-orm/cache-keys.js';
import { decodeValue, encodeValue } from '../../lib/mikro-orm/value-codec.js';

/**
 * Lookups by declared unique keys (`xaCache: { uniqueKeys }`, issue 18): served from index entries and the row
 * cache without SQL, and after every kind of write the lookup returns the committed owner of a value, never the
 * previous one. Writes go through one ORM, lookups through another with its own memcached client (the same
 * namespace), as a second process would.
 */
const Tenant = defineEntity({
  name: 'UkTenant',
  tableName: 'uk_tenant',
  properties: { id: p.integer().primary(), name: p.string() },
});

const User = defineEntity({
  name: 'UkUser',
  tableName: 'uk_user',
  xaCache: { uniqueKeys: [['email'], ['tenant', 'slug']] },
  uniques: [{ properties: ['tenant', 'slug'] }],
  properties: {
    id: p.integer().primary(),
    email: p.string().unique(),
    slug: p.string(),
    name: p.string(),
    tenant: () => p.manyToOne(Tenant),
  },
});

/** Not cached; an insert into it renames a user's email through a trigger. */
const Rename = defineEntity({
  name: 'UkRename',
  tableName: 'uk_rename',
  properties: { id: p.integer().primary(), userId: p.integer(), email: p.string() },
});

const entities = [Tenant, User, Rename];
type UserT = InstanceType<typeof User.class>;

describe('lookups by unique keys (xaCache.uniqueKeys)', function () {
  this.timeout(120_000);
  let writer: MikroORM;
  let reader: MikroORM;
  let admin: pg.Client;
  const readerSql: string[] = [];

  const open = async (namespace: string, onQuery?: (sql: string) => string): Promise<MikroORM> =>
    MikroORM.init(withXaCache({ entities, clientUrl: sharedServers().db, ...(onQuery ? { onQuery } : {}) }, { servers: sharedServers().memcachedAddresses, namespace, logTable: 'xa_cache_log' }));

  before(async () => {
    const namespace = `uk${randomUUID().slice(0, 8)}`;
    writer = await open(namespace);
    reader = await open(namespace, (sql) => {
      readerSql.push(sql);
      return sql;
    });
    admin = new pg.Client({ connectionString: sharedServers().db });
    await admin.connect();
    // Until an ORM has connected, the database's identity (and with it which keys are its) is unknown: no caching.
    await reader.connect();
  });
  after(async () => {
    await admin.end();
    await writer.close(true);
    await reader.close(true);
  });

  beforeEach(async () => {
    await writer.schema.refresh();
    await installWriteCapture(writer);
    await admin.query(`
      INSERT INTO uk_tenant (id, name) VALUES (1, 't1'), (2, 't2');
      INSERT INTO uk_user (id, email, slug, name, tenant_id) VALUES (1, 'a@x', 'ann', 'Ann', 1), (2, 'b@x', 'bob', 'Bob', 1), (3, 'c@x', 'ann', 'Cy', 2);
      CREATE OR REPLACE FUNCTION uk_rename_user() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN UPDATE uk_user SET email = NEW.email WHERE id = NEW.user_id; RETURN NEW; END $$;
      CREATE TRIGGER uk_rename_user AFTER INSERT ON uk_rename FOR EACH ROW EXECUTE FUNCTION uk_rename_user();
    `);
    // Tables were dropped and re-created: DDL is no write the capture reports, so what earlier tests cached is
    // invalidated by hand, as an application does after such a migration; the reader checks the capture again.
    await invalidateAll(writer.em.fork());
    (reader.config.getResultCacheAdapter() as XaCacheAdapter).captureGate.recheck();
  });

  const fresh = (): EntityManager => reader.em.fork() as EntityManager;
  const owner = async (email: string): Promise<number | null> => ((await fresh().findOne(User, { email })) as UserT | null)?.id ?? null;
  const bySlug = async (tenant: number, slug: string): Promise<number | null> => ((await fresh().findOne(User, { tenant, slug })) as UserT | null)?.id ?? null;
  /** Reads until the lookups are served from the cache (the first fills the index entry, the second the row). */
  const warm = async (...emails: string[]): Promise<void> => {
    for (let i = 0; i < 2; i++) for (const email of emails) await owner(email);
  };
  const sqlOf = async (read: () => Promise<unknown>): Promise<string[]> => {
    readerSql.length = 0;
    await read();
    return readerSql.splice(0);
  };
  /** The state of a value's index entry as the reader's memcached client sees it, without leasing it. */
  const entry = async (email: string): Promise<string> => {
    const key = keys.unique('public.uk_user', ['email'], [email]);
    const read = (await (reader.config.getResultCacheAdapter() as XaCacheAdapter).xa.reader.readMany([key], { regions: [regions.rows('public.uk_user')], lease: false })).get(key);
    if (read?.status !== 'hit') return 'miss';
    const decoded = decodeValue(read.payload);
    return decoded.ok ? `pk ${String(decoded.value)}` : 'undecodable';
  };
  const stats = (): { hits: number } => (reader.config.getResultCacheAdapter() as XaCacheAdapter).xa.stats;

  describe('served without SQL', () => {
    it('findOne, findOneOrFail, find with a list and $in, and a composite key: 0 statements on hits', async () => {
      const reads: Array<[string, () => Promise<unknown>]> = [
        ['findOne', () => fresh().findOne(User, { email: 'a@x' })],
        ['findOneOrFail', () => fresh().findOneOrFail(User, { email: 'b@x' })],
        ['find list', () => fresh().find(User, { email: ['a@x', 'c@x'] })],
        ['find $in', () => fresh().find(User, { email: { $in: ['b@x', 'c@x'] } })],
        ['composite', () => fresh().findOne(User, { tenant: 2, slug: 'ann' })],
      ];
      for (const [name, read] of reads) {
        await read();
        await read();
        expect(await sqlOf(read), name).to.deep.equal([]);
      }
      expect(((await fresh().find(User, { email: ['a@x', 'c@x'] })) as UserT[]).map((u) => u.id).sort()).to.deep.equal([1, 3]);
      expect(await bySlug(1, 'ann')).to.equal(1);
      expect(await bySlug(2, 'ann')).to.equal(3);
      expect(stats().hits).to.be.greaterThan(0);
    });

    it('a value no row holds is not cached: each lookup asks the database, and an insert of it is seen at once', async () => {
      await warm('new@x');
      expect(await sqlOf(() => owner('new@x'))).to.have.length(1);
      await admin.query(`INSERT INTO uk_user (id, email, slug, name, tenant_id) VALUES (9, 'new@x', 'new', 'New', 1)`); // outside the library
      expect(await owner('new@x')).to.equal(9);
    });

    it('a value in another form the database equates with the stored one is answered by the database, never cached', async () => {
      for (let i = 0; i < 3; i++) {
        const found = (await fresh().findOne(User, { tenant: '02' as never, slug: 'ann' })) as UserT | null;
        expect(found?.id).to.equal(3);
      }
      expect(await sqlOf(() => fresh().findOne(User, { tenant: '02' as never, slug: 'ann' }))).to.have.length(1);
      expect(((await fresh().find(User, { email: ['a@x', 'b@x'] })) as UserT[]).map((u) => u.id).sort()).to.deep.equal([1, 2]);
    });

    it('fields and limits are honoured; inside a transaction the database answers', async () => {
      await warm('a@x');
      const partial = (await fresh().findOneOrFail(User, { email: 'a@x' }, { fields: ['email'] })) as UserT;
      expect(partial.email).to.equal('a@x');
      const inside = await sqlOf(() => fresh().transactional((em) => em.findOne(User, { email: 'a@x' })));
      expect(inside.some((s) => /from "uk_user"/.test(s))).to.equal(true);
    });
  });

  it('an index entry naming a row that no longer holds the value is not served: the database answers', async () => {
    // What a lookup sees when it read the entry just before a commit moved the value: forge it with a real lease.
    const xa = (reader.config.getResultCacheAdapter() as XaCacheAdapter).xa;
    const key = keys.unique('public.uk_user', ['email'], ['a@x']);
    const read = (await xa.reader.readMany([key], { regions: [regions.rows('public.uk_user')] })).get(key);
    expect(read?.status === 'miss' && read.ticket !== undefined).to.equal(true);
    if (read?.status === 'miss' && read.ticket) expect(await xa.reader.fill(read.ticket, encodeValue(2))).to.equal(true);
    expect(await entry('a@x')).to.equal('pk 2');
    for (let i = 0; i < 2; i++) expect(await owner('a@x')).to.equal(1);
    expect(((await fresh().find(User, { email: ['a@x', 'b@x'] })) as UserT[]).map((u) => u.id).sort()).to.deep.equal([1, 2]);
  });

  it('a fill racing a write of the value is refused (the lease the lookup took is voided by the write)', async () => {
    const xa = (reader.config.getResultCacheAdapter() as XaCacheAdapter).xa;
    const key = keys.unique('public.uk_user', ['email'], ['a@x']);
    // A lookup's first step: the multi-get that leases the missing entry, before its database read…
    const read = (await xa.reader.readMany([key], { regions: [regions.rows('public.uk_user')] })).get(key);
    if (read?.status !== 'miss' || !read.ticket) throw new Error(`expected a leased miss, got ${JSON.stringify(read)}`);
    // …then a write moves the value away and commits before the lookup fills what it read (user 1)…
    await writer.em.fork().nativeUpdate(User, { id: 1 }, { email: 'z@x' });
    // …and the fill is refused: the entry never names a row that no longer holds the value.
    expect(await xa.reader.fill(read.ticket, encodeValue(1))).to.equal(false);
    expect(await entry('a@x')).to.equal('miss');
    expect(await owner('a@x')).to.equal(null);
  });

  describe('every write path moves the value to its committed owner', () => {
    const moved = async (write: () => Promise<unknown>): Promise<void> => {
      await warm('a@x', 'z@x');
      expect(await sqlOf(() => owner('a@x'))).to.deep.equal([]);
      expect(await entry('a@x')).to.equal('pk 1');
      await write();
      // The write named the index entries of the old and the new value itself (not only the row): both are gone.
      expect([await entry('a@x'), await entry('z@x')]).to.deep.equal(['miss', 'miss']);
      expect(await owner('a@x')).to.equal(null);
      expect(await owner('z@x')).to.equal(1);
      await warm('z@x');
      expect(await owner('z@x')).to.equal(1);
    };

    it('flush (which names the entries itself: the capture adds nothing, so no second lock round)', () =>
      moved(async () => {
        const em = writer.em.fork();
        (await em.findOneOrFail(User, 1)).email = 'z@x';
        const stats = (writer.config.getResultCacheAdapter() as XaCacheAdapter).xa.stats;
        const before = stats.capturedKeys;
        await em.flush();
        expect(stats.capturedKeys - before).to.equal(0);
      }));

    it('nativeUpdate by primary key', () => moved(() => writer.em.fork().nativeUpdate(User, { id: 1 }, { email: 'z@x' })));

    it('nativeUpdate by the unique value itself', () => moved(() => writer.em.fork().nativeUpdate(User, { email: 'a@x' }, { email: 'z@x' })));

    it('raw SQL through em.execute', () => moved(() => writer.em.fork().execute(`UPDATE uk_user SET email = 'z@x' WHERE id = 1`)));

    it('a trigger fired by a flush of another entity', () =>
      moved(async () => {
        const em = writer.em.fork();
        em.create(Rename, { id: 1, userId: 1, email: 'z@x' });
        await em.flush();
      }));

    it('an outside writer (psql), applied by applyOutsideChanges', () =>
      moved(async () => {
        await admin.query(`UPDATE uk_user SET email = 'z@x' WHERE id = 1`);
        const adapter = writer.config.getResultCacheAdapter() as XaCacheAdapter;
        const driver = writer.em.getDriver() as unknown as { xaConnection: { sqlRunner(): Promise<unknown> } };
        await adapter.xa.applyOutsideChanges((await driver.xaConnection.sqlRunner()) as never);
      }));

    it('a composite key: slug changed by flush, and the row moved to another tenant', async () => {
      for (let i = 0; i < 2; i++) await Promise.all([bySlug(1, 'ann'), bySlug(1, 'ada'), bySlug(2, 'bob')]);
      const em = writer.em.fork();
      (await em.findOneOrFail(User, 1)).slug = 'ada';
      await em.flush();
      expect(await bySlug(1, 'ann')).to.equal(null);
      expect(await bySlug(1, 'ada')).to.equal(1);
      await writer.em.fork().nativeUpdate(User, { id: 2 }, { tenant: 2 });
      expect(await bySlug(1, 'bob')).to.equal(null);
      expect(await bySlug(2, 'bob')).to.equal(2);
    });

    it('two users swap emails in one transaction', async () => {
      await warm('a@x', 'b@x');
      await writer.em.fork().transactional(async (em) => {
        await em.execute(`UPDATE uk_user SET email = 'tmp@x' WHERE id = 1`);
        await em.nativeUpdate(User, { id: 2 }, { email: 'a@x' });
        const one = await em.findOneOrFail(User, 1);
        one.email = 'b@x';
        await em.flush();
      });
      expect([await entry('a@x'), await entry('b@x')]).to.deep.equal(['miss', 'miss']);
      expect(await owner('a@x')).to.equal(2);
      expect(await owner('b@x')).to.equal(1);
      expect(await owner('tmp@x')).to.equal(null);
      await warm('a@x', 'b@x');
      expect([await owner('a@x'), await owner('b@x')]).to.deep.equal([2, 1]);
    });

    it('delete and re-insert the same email (one transaction, then two)', async () => {
      await warm('a@x', 'b@x');
      await writer.em.fork().transactional(async (em) => {
        em.remove(em.getReference(User, 1));
        await em.flush();
        em.create(User, { id: 7, email: 'a@x', slug: 'new', name: 'New', tenant: 1 });
      });
      expect(await owner('a@x')).to.equal(7);
      await warm('a@x');
      await writer.em.fork().nativeDelete(User, { id: 2 });
      expect(await owner('b@x')).to.equal(null);
      await writer.em.fork().execute(`INSERT INTO uk_user (id, email, slug, name, tenant_id) VALUES (8, 'b@x', 'b8', 'B8', 2)`);
      expect(await owner('b@x')).to.equal(8);
      expect(await owner('a@x')).to.equal(7);
    });

    it('a rolled-back change leaves the committed owner', async () => {
      await warm('a@x', 'z@x');
      await writer.em
        .fork()
        .transactional(async (em) => {
          await em.nativeUpdate(User, { id: 1 }, { email: 'z@x' });
          expect((await em.findOneOrFail(User, { email: 'z@x' })).id).to.equal(1); // its own write, from the database
          throw new Error('roll back');
        })
        .catch((error: Error) => expect(error.message).to.equal('roll back'));
      expect(await owner('a@x')).to.equal(1);
      expect(await owner('z@x')).to.equal(null);
      await warm('a@x');
      expect(await sqlOf(() => owner('a@x'))).to.deep.equal([]);
    });

    it('TRUNCATE drops every index entry of the table', async () => {
      await warm('a@x');
      await writer.em.fork().execute('TRUNCATE uk_user CASCADE');
      expect(await owner('a@x')).to.equal(null);
    });
  });

  it('the decorator form: @Cacheable({ uniqueKeys })', async () => {
    const sql: string[] = [];
    const orm = await MikroORM.init(
      withXaCache(
        { entities: [Member], clientUrl: sharedServers().db, onQuery: (q: string) => (sql.push(q), q) },
        { servers: sharedServers().memcachedAddresses, namespace: `ukd${randomUUID().slice(0, 8)}`, logTable: 'xa_cache_log' },
      ),
    );
    try {
      await orm.schema.refresh();
      await installWriteCapture(orm);
      await orm.em.fork().insert(Member, { id: 1, handle: 'ann' });
      const find = async (): Promise<number | undefined> => (await orm.em.fork().findOne(Member, { handle: 'ann' }))?.id;
      await find();
      await find();
      sql.length = 0;
      expect(await find()).to.equal(1);
      expect(sql).to.deep.equal([]);
    } finally {
      await orm.close(true);
    }
  });

  describe('concurrent writers and readers', () => {
    const USERS = [1, 2, 3, 4, 5, 6];
    const POOL = Array.from({ length: 10 }, (_, i) => `v${i}@x`);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(Math.random() * list.length)] as T;

    /**
     * Writers move values between users through precise writes only (by primary key, no flush: nothing but the
     * capture names the entries), readers look values up all along; then, quiescent, every cached entry must name
     * the row that holds its value in the database, and every lookup must return the database's owner.
     */
    const run = async (): Promise<string[]> => {
      await admin.query(`DELETE FROM uk_user; INSERT INTO uk_user (id, email, slug, name, tenant_id) SELECT i, 'v' || i || '@x', 's' || i, 'n', 1 FROM generate_series(1, 6) i`);
      let stop = false;
      const wrong: string[] = [];
      const readers = Array.from({ length: 2 }, async () => {
        while (!stop) {
          const asked = [pick(POOL), pick(POOL)];
          const found = (await fresh().find(User, { email: asked })) as UserT[];
          for (const u of found) if (!asked.includes(u.email)) wrong.push(`asked ${asked.join(',')}, got ${u.id} ${u.email}`);
        }
      });
      const writers = Array.from({ length: 2 }, async () => {
        for (let i = 0; i < 40; i++) {
          const [a, b] = [pick(USERS), pick(USERS)];
          const op = pick(['move', 'swap', 'reinsert'] as const);
          await writer.em
            .fork()
            .transactional(async (em) => {
              if (op === 'move') await em.nativeUpdate(User, { id: a }, { email: pick(POOL) });
              else if (op === 'swap' && a !== b) {
                const [ua, ub] = [await em.findOneOrFail(User, a), await em.findOneOrFail(User, b)];
                const [ea, eb] = [ua.email, ub.email];
                await em.nativeUpdate(User, { id: a }, { email: `tmp${randomUUID()}` });
                await em.nativeUpdate(User, { id: b }, { email: ea });
                await em.nativeUpdate(User, { id: a }, { email: eb });
              } else if (op === 'reinsert') {
                await em.nativeDelete(User, { id: a });
                await em.insert(User, { id: a, email: pick(POOL), slug: `s${a}`, name: 'n', tenant: 1 });
              }
            })
            .catch(() => undefined); // unique violations, deadlocks, a row another writer deleted: rolled back
        }
      });
      await Promise.all(writers);
      stop = true;
      await Promise.all(readers);
      const owners = new Map((await admin.query(`SELECT email, id FROM uk_user`)).rows.map((r: { email: string; id: number }) => [r.email, r.id]));
      for (const value of POOL) {
        const state = await entry(value);
        if (state !== 'miss' && state !== `pk ${owners.get(value)}`) wrong.push(`entry ${value}: ${state}, owner ${owners.get(value) ?? 'none'}`);
        const seen = await owner(value);
        if (seen !== (owners.get(value) ?? null)) wrong.push(`lookup ${value}: ${seen}, owner ${owners.get(value) ?? 'none'}`);
      }
      return wrong;
    };

    it('every entry names the committed owner of its value', async () => {
      expect(await run()).to.deep.equal([]);
    });

    it('mutation: a capture that forgets the old values\' entries leaves entries naming rows that lost the value', async () => {
      const xa = (writer.config.getResultCacheAdapter() as XaCacheAdapter).xa;
      const honest = captureDeriver(writer.getMetadata().getAll().values());
      const oldEntries = (changes: Parameters<typeof honest>[0]): Set<string> =>
        new Set([...honest(changes.filter((c) => c.oldRows).map((c) => ({ ...c, op: 'DELETE' as const, newRows: undefined }))).keys].filter((k) => k.startsWith('u:')));
      xa.useCapture((changes) => {
        const derived = honest(changes);
        const forgotten = oldEntries(changes);
        return { keys: [...derived.keys].filter((k) => !forgotten.has(k)), regions: derived.regions };
      });
      try {
        let wrong: string[] = [];
        for (let round = 0; round < 3 && wrong.length === 0; round++) wrong = await run();
        expect(wrong.filter((w) => w.startsWith('entry '))).to.not.deep.equal([]);
        // The row check keeps lookups right even then: a stale entry costs a database read, never a wrong row.
        expect(wrong.filter((w) => !w.startsWith('entry '))).to.deep.equal([]);
      } finally {
        xa.useCapture(honest);
      }
    });
  });

  describe('startup checks', () => {
    const init = async (entity: object): Promise<unknown> =>
      MikroORM.init(withXaCache({ entities: [Tenant, entity as typeof Tenant], clientUrl: sharedServers().db }, { servers: sharedServers().memcachedAddresses })).then(
        async (orm) => {
          await orm.close(true);
          return undefined;
        },
        (error: unknown) => error,
      );

    it('MikroORM.init fails naming the entity and column of a key with no unique constraint in the metadata', async () => {
      const NotUnique = defineEntity({ name: 'UkBad1', tableName: 'uk_bad1', xaCache: { uniqueKeys: [['name']] }, properties: { id: p.integer().primary(), name: p.string() } });
      const error = await init(NotUnique);
      expect(error).to.be.instanceOf(XaConfigError);
      expect((error as Error).message).to.match(/UkBad1/).and.match(/name/).and.match(/no unique constraint/);
    });

    it('… a composite key matching no uniques entry, an unknown property, a column type whose JSON form differs', async () => {
      const cases: Array<[object, RegExp]> = [
        [defineEntity({ name: 'UkBad2', tableName: 'uk_bad2', xaCache: { uniqueKeys: [['a', 'b']] }, uniques: [{ properties: ['a'] }], properties: { id: p.integer().primary(), a: p.string(), b: p.string() } }), /UkBad2.*no unique constraint on exactly column\(s\) a, b/],
        [defineEntity({ name: 'UkBad3', tableName: 'uk_bad3', xaCache: { uniqueKeys: [['nope']] }, properties: { id: p.integer().primary() } }), /UkBad3.*"nope", which is not a property/],
        [defineEntity({ name: 'UkBad4', tableName: 'uk_bad4', xaCache: { uniqueKeys: [['at']] }, properties: { id: p.integer().primary(), at: p.datetime().unique() } }), /UkBad4.*column "at" has type/],
      ];
      for (const [entity, message] of cases) {
        const error = await init(entity);
        expect(error, String(message)).to.be.instanceOf(XaConfigError);
        expect((error as Error).message).to.match(message);
      }
    });

    it('startXaCache fails naming the entity and columns when the database has no unique index on exactly them', async () => {
      const constraint = (await admin.query(`SELECT conname FROM pg_constraint WHERE conrelid = 'uk_user'::regclass AND contype = 'u' AND array_length(conkey, 1) = 1`)).rows[0] as { conname: string };
      await admin.query(`ALTER TABLE uk_user DROP CONSTRAINT ${constraint.conname}`);
      await admin.query(`CREATE UNIQUE INDEX uk_user_lower_email ON uk_user (lower(email))`);
      await admin.query(`CREATE UNIQUE INDEX uk_user_partial_email ON uk_user (email) WHERE id > 0`);
      const error = await startXaCache(writer).then(
        async (runtime) => {
          await runtime.stop();
          return undefined;
        },
        (e: unknown) => e,
      );
      expect(error).to.be.instanceOf(XaConfigError);
      expect((error as Error).message).to.match(/UkUser \(public\.uk_user: email\)/);
      expect((error as Error).message).not.to.match(/tenant_id/);
    });
  });
});
