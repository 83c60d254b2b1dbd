import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import pg from 'pg';
import { sql, type Kysely } from 'kysely';
import { MikroORM, defineEntity, p, type EntityManager } from '@mikro-orm/postgresql';
import { sharedServers } from '../support/global-servers.js';
import { PartitionProxy } from '../support/partition-proxy.js';
import { withXaCache } from '../../lib/mikro-orm/with-xa-cache.js';
import { installWriteCapture, verifyWriteCapture } from '../../lib/mikro-orm/write-capture-setup.js';
import { invalidate, invalidateAll, invalidateTable } from '../../lib/mikro-orm/invalidation.js';
import { startXaCache } from '../../lib/operations/start-xa-cache.js';
import type { XaCacheAdapter } from '../../lib/mikro-orm/xa-cache-adapter.js';

/**
 * G8 through writes the library does not see itself: PostgreSQL reports them (the database-side capture). Each
 * scenario writes through one ORM and checks through another (its own ORM and memcached client, the same
 * namespace), as a second process would.
 */
const Parent = defineEntity({
  name: 'DwParent',
  tableName: 'dw_parent',
  xaCache: true,
  properties: {
    id: p.integer().primary(),
    name: p.string(),
    kids: () => p.oneToMany(Kid).mappedBy('parent'),
    pets: () => p.oneToMany(Pet).mappedBy('owner'),
    ranked: () => p.oneToMany(Ranked).mappedBy('parent').orderBy({ rank: 'asc' }),
    clubs: () => p.manyToMany(Club).pivotTable('dw_parent_clubs'),
  },
});

const Kid = defineEntity({
  name: 'DwKid',
  tableName: 'dw_kid',
  xaCache: true,
  properties: {
    id: p.integer().primary(),
    name: p.string(),
    parent: () => p.manyToOne(Parent).nullable().deleteRule('set null').updateRule('cascade'),
  },
});

const Pet = defineEntity({
  name: 'DwPet',
  tableName: 'dw_pet',
  xaCache: true,
  properties: {
    id: p.integer().primary(),
    name: p.string(),
    owner: () => p.manyToOne(Parent).deleteRule('cascade').updateRule('cascade'),
  },
});

const Ranked = defineEntity({
  name: 'DwRanked',
  tableName: 'dw_ranked',
  xaCache: true,
  properties: {
    id: p.integer().primary(),
    rank: p.integer(),
    parent: () => p.manyToOne(Parent).deleteRule('cascade').updateRule('cascade'),
  },
});

const Club = defineEntity({
  name: 'DwClub',
  tableName: 'dw_club',
  xaCache: true,
  properties: {
    id: p.integer().primary(),
    label: p.string(),
    members: () => p.manyToMany(Parent).mappedBy('clubs'),
  },
});

/** Not cached; a trigger on it updates a cached table. */
const Audit = defineEntity({
  name: 'DwAudit',
  tableName: 'dw_audit',
  properties: { id: p.integer().primary(), kidId: p.integer(), name: p.string() },
});

/** A cached entity over a partitioned table (created by hand below). */
const Reading = defineEntity({
  name: 'DwReading',
  tableName: 'dw_reading',
  xaCache: true,
  properties: { id: p.integer().primary(), value: p.integer() },
});

const entities = [Parent, Kid, Pet, Ranked, Club, Audit, Reading];
type KidT = InstanceType<typeof Kid.class>;

describe('writes PostgreSQL makes on its own are seen (database-side capture)', function () {
  this.timeout(120_000);
  let writer: MikroORM;
  let reader: MikroORM;
  let admin: pg.Client;

  const open = async (namespace: string): Promise<MikroORM> =>
    MikroORM.init(withXaCache({ entities, clientUrl: sharedServers().db }, { servers: sharedServers().memcachedAddresses, namespace, logTable: 'xa_cache_log' }));

  before(async () => {
    const namespace = `dw${randomUUID().slice(0, 8)}`;
    writer = await open(namespace);
    reader = await open(namespace);
    admin = new pg.Client({ connectionString: sharedServers().db });
    await admin.connect();
  });
  after(async () => {
    await admin.end();
    await writer.close(true);
    await reader.close(true);
  });

  beforeEach(async () => {
    await admin.query('DROP TABLE IF EXISTS dw_reading CASCADE');
    await writer.schema.refresh();
    // A partitioned table MikroORM's schema generator would not create.
    await admin.query(`DROP TABLE IF EXISTS dw_reading CASCADE;
      CREATE TABLE dw_reading (id int PRIMARY KEY, value int NOT NULL) PARTITION BY RANGE (id);
      CREATE TABLE dw_reading_low PARTITION OF dw_reading FOR VALUES FROM (0) TO (100);
      CREATE TABLE dw_reading_high PARTITION OF dw_reading FOR VALUES FROM (100) TO (1000);`);
    await installWriteCapture(writer);
    await admin.query(`
      INSERT INTO dw_parent (id, name) VALUES (1, 'p1'), (2, 'p2');
      INSERT INTO dw_kid (id, name, parent_id) VALUES (1, 'k1', 1), (2, 'k2', 1), (3, 'k3', 2);
      INSERT INTO dw_pet (id, name, owner_id) VALUES (1, 'cat', 1), (2, 'dog', 2);
      INSERT INTO dw_ranked (id, rank, parent_id) VALUES (1, 1, 1), (2, 2, 1), (3, 3, 1);
      INSERT INTO dw_club (id, label) VALUES (1, 'chess'), (2, 'go');
      INSERT INTO dw_parent_clubs (dw_parent_id, dw_club_id) VALUES (1, 1), (2, 1);
      INSERT INTO dw_reading (id, value) VALUES (5, 50), (150, 1500);
      CREATE OR REPLACE FUNCTION dw_rename_kid(kid int, n text) RETURNS int LANGUAGE sql AS $$ UPDATE dw_kid SET name = n WHERE id = kid RETURNING id $$;
      CREATE OR REPLACE PROCEDURE dw_rename_pet(pet int, n text) LANGUAGE sql AS $$ UPDATE dw_pet SET name = n WHERE id = pet $$;
      CREATE OR REPLACE FUNCTION dw_audit_copies() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN UPDATE dw_kid SET name = NEW.name WHERE id = NEW.kid_id; RETURN NEW; END $$;
      CREATE TRIGGER dw_audit_copies AFTER INSERT ON dw_audit FOR EACH ROW EXECUTE FUNCTION dw_audit_copies();
      CREATE OR REPLACE VIEW dw_kid_view AS SELECT id, name FROM dw_kid;
    `);
    // Tables were dropped and re-created: DDL is no write the capture reports, so what earlier tests cached is
    // invalidated by hand, as an application does after such a migration.
    await invalidateAll(writer.em.fork());
  });

  const fresh = (): EntityManager => reader.em.fork() as EntityManager;
  const kid = async (id: number): Promise<{ name: string; parent: number | null } | null> => {
    const k = (await fresh().findOne(Kid, id)) as KidT | null;
    return k ? { name: k.name, parent: k.parent ? (k.parent as unknown as { id: number }).id : null } : null;
  };
  const kidIds = async (parentId: number): Promise<number[]> => {
    const parent = await fresh().findOne(Parent, parentId, { populate: ['kids'] });
    return parent ? parent.kids.getItems().map((k) => k.id).sort() : [];
  };
  const petIds = async (parentId: number): Promise<number[]> => {
    const parent = await fresh().findOne(Parent, parentId, { populate: ['pets'] });
    return parent ? parent.pets.getItems().map((k) => k.id).sort() : [];
  };
  const rankedOrder = async (parentId: number): Promise<number[]> => (await fresh().findOneOrFail(Parent, parentId, { populate: ['ranked'] })).ranked.getItems().map((r) => r.id);
  const clubMembers = async (clubId: number): Promise<number[]> => (await fresh().findOneOrFail(Club, clubId, { populate: ['members'] })).members.getItems().map((m) => m.id).sort();
  const kidCount = (): Promise<number> => fresh().count(Kid, { name: { $ne: '' } }, { cache: 60_000 });
  const warm = async (): Promise<void> => {
    for (let i = 0; i < 2; i++) {
      await Promise.all([kid(1), kid(2), kid(3), kidIds(1), kidIds(2), petIds(1), petIds(2), rankedOrder(1), clubMembers(1), kidCount()]);
      await fresh().findOne(Pet, 1);
      await fresh().findOne(Reading, 5);
      await fresh().findOne(Reading, 150);
    }
  };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- untyped tables
  const sqlIn = (em: EntityManager): Kysely<any> => em.getKysely() as unknown as Kysely<any>;

  it('every cached table and partition has its capture installed', async () => {
    expect(await verifyWriteCapture(writer)).to.deep.equal([]);
    await admin.query('DROP TRIGGER xa_cache_log_upd ON dw_kid');
    expect((await verifyWriteCapture(writer)).map((t) => t.table)).to.deep.equal(['dw_kid']);
    await installWriteCapture(writer);
    expect(await verifyWriteCapture(writer)).to.deep.equal([]);
  });

  it('startXaCache fails naming a table without capture, or with writeCapture: warn stops caching it', async () => {
    await admin.query('DROP TRIGGER xa_cache_log_del ON dw_pet');
    const error = await startXaCache(writer).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(error?.message).to.match(/public\.dw_pet/).and.match(/capture --apply/);
    const runtime = await startXaCache(reader, { writeCapture: 'warn' });
    try {
      await fresh().findOne(Pet, 1);
      await admin.query(`DELETE FROM dw_pet WHERE id = 1`); // not captured now, but the table is no longer cached
      expect(await fresh().findOne(Pet, 1)).to.equal(null);
      expect((await kid(1))?.name).to.equal('k1'); // other tables still cached
    } finally {
      await runtime.stop();
      (reader.config.getResultCacheAdapter() as XaCacheAdapter).stoppedTables.clear();
    }
  });

  it('startXaCache applies outside writers\' changes (psql, other programs) within its interval', async () => {
    const runtime = await startXaCache(reader, { outsideChangesIntervalMs: 50 });
    try {
      await warm();
      await admin.query(`UPDATE dw_kid SET name = 'outside' WHERE id = 2`);
      let name: string | undefined;
      for (let i = 0; i < 100 && name !== 'outside'; i++) {
        await new Promise((r) => setTimeout(r, 20));
        name = (await kid(2))?.name;
      }
      expect(name).to.equal('outside');
    } finally {
      await runtime.stop();
    }
  });

  describe('1. nothing a rolled-back transaction wrote is ever served (G1)', () => {
    const rolledBack = async (write: (em: EntityManager) => Promise<unknown>): Promise<void> => {
      await writer.em
        .fork()
        .transactional(async (em) => {
          await write(em as EntityManager);
          // Read the changed row inside the transaction: it must not be filled for everyone else.
          await em.findOne(Kid, 2);
          await em.findOne(Parent, 1, { populate: ['kids'] });
          throw new Error('roll back');
        })
        .catch((error: Error) => expect(error.message).to.equal('roll back'));
    };

    it('a parent removed by flush, the database setting its kids\' parent to null', async () => {
      await rolledBack(async (em) => {
        em.remove(em.getReference(Parent, 1));
        await em.flush();
      });
      expect(await kid(2)).to.deep.equal({ name: 'k2', parent: 1 });
      expect(await kidIds(1)).to.deep.equal([1, 2]);
    });

    it('an AFTER trigger fired by a flush', async () => {
      await rolledBack(async (em) => {
        em.create(Audit, { id: 1, kidId: 2, name: 'from-trigger' });
        await em.flush();
      });
      expect(await kid(2)).to.deep.equal({ name: 'k2', parent: 1 });
    });

    it('a function with a side effect, through em.execute', async () => {
      await rolledBack((em) => em.execute(`SELECT dw_rename_kid(2, 'from-function')`));
      expect(await kid(2)).to.deep.equal({ name: 'k2', parent: 1 });
    });

    it('a write through em.getKysely()', async () => {
      await rolledBack((em) => sqlIn(em).updateTable('dw_kid').set({ name: 'from-kysely' }).where('id', '=', 2).execute());
      expect(await kid(2)).to.deep.equal({ name: 'k2', parent: 1 });
    });
  });

  describe('2. a transaction sees what the database cascaded for it (G4)', () => {
    it('after flushing a parent\'s removal, its kids read inside the transaction have no parent and its pets are gone', async () => {
      await warm();
      await writer.em.fork().transactional(async (em) => {
        em.remove(em.getReference(Parent, 1));
        await em.flush();
        em.clear();
        expect((await em.findOneOrFail(Kid, 2)).parent).to.equal(null);
        expect(await em.findOne(Pet, 1)).to.equal(null);
      });
    });

    it('after nativeDelete of a parent', async () => {
      await warm();
      await writer.em.fork().transactional(async (em) => {
        await em.nativeDelete(Parent, { id: 1 });
        expect((await em.findOneOrFail(Kid, 1)).parent).to.equal(null);
        expect(await em.findOne(Pet, 1)).to.equal(null);
      });
    });
  });

  describe('3. cascades outside a flush are invalidated for everyone (G2)', () => {
    const afterParentGone = async (): Promise<void> => {
      expect(await kid(1)).to.deep.equal({ name: 'k1', parent: null });
      expect(await kid(2)).to.deep.equal({ name: 'k2', parent: null });
      expect(await kidIds(1)).to.deep.equal([]);
      expect(await petIds(1)).to.deep.equal([]);
      expect(await fresh().findOne(Pet, 1)).to.equal(null);
      expect(await clubMembers(1)).to.deep.equal([2]);
    };

    it('em.nativeDelete: the database sets null and deletes cached children', async () => {
      await warm();
      await writer.em.fork().nativeDelete(Parent, { id: 1 });
      await afterParentGone();
    });

    it('a raw DELETE through em.execute', async () => {
      await warm();
      await writer.em.fork().execute('DELETE FROM dw_parent WHERE id = 1');
      await afterParentGone();
    });

    it('TRUNCATE … CASCADE: rows, finds by id, both sides of m:n, query results', async () => {
      await warm();
      await writer.em.fork().execute('TRUNCATE dw_parent CASCADE');
      expect(await kid(1)).to.equal(null);
      expect(await fresh().findOne(Parent, 2)).to.equal(null);
      expect(await fresh().find(Kid, { id: [1, 2, 3] })).to.have.length(0);
      expect(await fresh().findOne(Pet, 1)).to.equal(null);
      expect(await clubMembers(1)).to.deep.equal([]);
      expect(await kidCount()).to.equal(0);
    });

    it('ON UPDATE CASCADE: a parent\'s key changed, its children follow', async () => {
      await warm();
      await writer.em.fork().execute('UPDATE dw_parent SET id = 7 WHERE id = 1');
      expect(await kid(1)).to.deep.equal({ name: 'k1', parent: 7 });
      expect(await kidIds(1)).to.deep.equal([]);
      expect(await kidIds(7)).to.deep.equal([1, 2]);
    });
  });

  describe('4. writes through em.getKysely()', () => {
    it('inside a transaction: rows, collections and query results', async () => {
      await warm();
      await writer.em.fork().transactional(async (em) => {
        await sqlIn(em as EntityManager).updateTable('dw_kid').set({ name: 'kysely', parent_id: 2 }).where('id', '=', 1).execute();
      });
      expect(await kid(1)).to.deep.equal({ name: 'kysely', parent: 2 });
      expect(await kidIds(1)).to.deep.equal([2]);
      expect(await kidIds(2)).to.deep.equal([1, 3]);
    });

    it('outside any transaction, while another process claims each change the moment it commits', async () => {
      // A follower that claims every change as soon as it commits: a Kysely write takes its own changes at its
      // prepare, so none is left for it, and each write is read back at once.
      const claimer = new pg.Client({ connectionString: sharedServers().db });
      await claimer.connect();
      let claiming = true;
      const claims = (async () => {
        while (claiming) await claimer.query(`UPDATE xa_cache_log_changes SET claimed_until = clock_timestamp() + interval '30 seconds' WHERE claimed_until IS NULL`);
      })();
      try {
        for (let i = 0; i < 15; i++) {
          expect((await kid(1))?.name).to.not.equal(`v${i}`);
          expect((await kid(1))?.name, 'cached').to.not.equal(`v${i}`);
          await sqlIn(writer.em.fork() as EntityManager).updateTable('dw_kid').set({ name: `v${i}` }).where('id', '=', 1).execute();
          expect((await kid(1))?.name, `write ${i}`).to.equal(`v${i}`);
        }
      } finally {
        claiming = false;
        await claims;
        await claimer.query('DELETE FROM xa_cache_log_changes');
        await claimer.end();
      }
    });

    it('outside any transaction, every way Kysely sends a write, read back at once by another process (no follower runs)', async () => {
      const writes: Array<[string, (db: Kysely<any>) => Promise<unknown>]> = [ // eslint-disable-line @typescript-eslint/no-explicit-any -- untyped tables
        ['the query builder', (db) => db.updateTable('dw_kid').set({ name: 'builder' }).where('id', '=', 1).execute()],
        ['sql`…` (raw)', (db) => sql`UPDATE dw_kid SET name = 'raw' WHERE id = 1`.execute(db)],
        ['a function called by a SELECT', (db) => sql`SELECT dw_rename_kid(1, 'function')`.execute(db)],
        ['transaction().execute()', (db) => db.transaction().execute((trx) => trx.updateTable('dw_kid').set({ name: 'transaction' }).where('id', '=', 1).execute())],
        [
          'startTransaction() … commit()',
          async (db) => {
            const trx = await db.startTransaction().execute();
            await trx.updateTable('dw_kid').set({ name: 'controlled' }).where('id', '=', 1).execute();
            await trx.commit().execute();
          },
        ],
        [
          'BEGIN … COMMIT sent as SQL on one connection',
          (db) =>
            db.connection().execute(async (c) => {
              await sql`BEGIN`.execute(c);
              await sql`UPDATE dw_kid SET name = 'begin-commit' WHERE id = 1`.execute(c);
              await sql`COMMIT`.execute(c);
            }),
        ],
        ['a multi-row builder write moving a kid', (db) => db.updateTable('dw_kid').set({ name: 'moved', parent_id: 2 }).where('id', 'in', [1]).execute()],
      ];
      for (const [how, write] of writes) {
        await warm();
        await write(sqlIn(writer.em.fork() as EntityManager));
        const expected = (await admin.query('SELECT name FROM dw_kid WHERE id = 1')).rows[0].name as string;
        expect((await kid(1))?.name, how).to.equal(expected);
      }
      expect(await kidIds(2), 'the collection of the kid\'s new parent').to.deep.equal([1, 3]);
      expect(await kidIds(1)).to.deep.equal([2]);
    });

    it('each commit is prepared once: a flush by the ORM, Kysely inside em.transactional with it, a Kysely transaction by the driver', async () => {
      const stats = (writer.config.getResultCacheAdapter() as XaCacheAdapter).xa.stats;
      const prepares = async (work: () => Promise<unknown>): Promise<number> => {
        const before = stats.prepares;
        await work();
        return stats.prepares - before;
      };
      const em = writer.em.fork();
      const k = (await em.findOneOrFail(Kid, 1)) as KidT;
      k.name = 'flushed';
      expect(await prepares(() => em.flush()), 'flush').to.equal(1);
      expect(
        await prepares(() => writer.em.fork().transactional((tx) => sqlIn(tx as EntityManager).updateTable('dw_kid').set({ name: 'in-orm-tx' }).where('id', '=', 1).execute())),
        'Kysely inside em.transactional',
      ).to.equal(1);
      const db = sqlIn(writer.em.fork() as EntityManager);
      expect(await prepares(() => db.transaction().execute((trx) => trx.updateTable('dw_kid').set({ name: 'kysely-trx' }).where('id', '=', 1).execute())), 'Kysely transaction').to.equal(1);
      expect(await prepares(() => db.updateTable('dw_kid').set({ name: 'kysely-auto' }).where('id', '=', 1).execute()), 'Kysely autocommit').to.equal(1);
      expect(await prepares(() => db.selectFrom('dw_kid').selectAll().execute()), 'a Kysely read').to.equal(0);
      expect((await kid(1))?.name).to.equal('kysely-auto');
    });

    it('rolled back through Kysely: nothing changes, nothing is left locked', async () => {
      await warm();
      const db = sqlIn(writer.em.fork() as EntityManager);
      await db
        .transaction()
        .execute(async (trx) => {
          await trx.updateTable('dw_kid').set({ name: 'never' }).where('id', '=', 1).execute();
          throw new Error('roll back');
        })
        .catch((error: Error) => expect(error.message).to.equal('roll back'));
      const failed = await db
        .updateTable('dw_kid')
        .set({ parent_id: 99 })
        .where('id', '=', 1)
        .execute()
        .then(
          () => undefined,
          (e: Error) => e,
        );
      expect(failed?.message).to.match(/foreign key/);
      expect(await kid(1)).to.deep.equal({ name: 'k1', parent: 1 });
      const stats = (reader.config.getResultCacheAdapter() as XaCacheAdapter).xa.stats;
      const hits = stats.hits;
      expect(await kid(1)).to.deep.equal({ name: 'k1', parent: 1 });
      expect(stats.hits, 'served from the cache again: no lock left behind').to.be.greaterThan(hits);
    });

    it('a procedure that commits inside is refused by PostgreSQL, through em.execute and through Kysely alike (a documented limit)', async () => {
      await admin.query(`CREATE OR REPLACE PROCEDURE dw_commit_inside() LANGUAGE plpgsql AS $$ BEGIN UPDATE dw_kid SET name = 'committed-inside' WHERE id = 1; COMMIT; END $$`);
      const viaExecute = await writer.em
        .fork()
        .execute('CALL dw_commit_inside()')
        .then(
          () => undefined,
          (e: Error) => e,
        );
      const viaKysely = await sql`CALL dw_commit_inside()`.execute(sqlIn(writer.em.fork() as EntityManager)).then(
        () => undefined,
        (e: Error) => e,
      );
      for (const error of [viaExecute, viaKysely]) expect(error?.message).to.match(/invalid transaction termination/);
      expect((await admin.query('SELECT name FROM dw_kid WHERE id = 1')).rows[0].name).to.equal('k1');
      expect(await kid(1)).to.deep.equal({ name: 'k1', parent: 1 });
    });

    it('a process cut off from memcached: its Kysely writes fail and change nothing, so no other process can read a value the database replaced (strict)', async () => {
      const direct = sharedServers().memcachedAddresses[0] as string;
      const proxy = await PartitionProxy.start(direct);
      const namespace = `dwcut${randomUUID().slice(0, 8)}`;
      const on = (servers: string[]): Promise<MikroORM> =>
        MikroORM.init(withXaCache({ entities, clientUrl: sharedServers().db }, { servers, namespace, logTable: 'xa_cache_log', store: { timeoutMs: 200, retryAfterMs: 50 } }));
      const seen = await on([direct]);
      const cut = await on([proxy.address]);
      const name = async (): Promise<string | undefined> => ((await seen.em.fork().findOne(Kid, 1)) as KidT | null)?.name;
      try {
        expect(await name()).to.equal('k1');
        expect(await name()).to.equal('k1'); // cached
        proxy.partition();
        const db = sqlIn(cut.em.fork() as EntityManager);
        const attempts: Array<[string, () => Promise<unknown>]> = [
          ['builder', () => db.updateTable('dw_kid').set({ name: 'cut-builder' }).where('id', '=', 1).execute()],
          ['raw', () => sql`UPDATE dw_kid SET name = 'cut-raw' WHERE id = 1`.execute(db)],
          ['transaction()', () => db.transaction().execute((trx) => trx.updateTable('dw_kid').set({ name: 'cut-trx' }).where('id', '=', 1).execute())],
        ];
        for (const [how, attempt] of attempts) {
          const error = await attempt().then(
            () => undefined,
            (e: Error) => e,
          );
          expect(error, how).to.be.instanceOf(Error);
          expect((await admin.query('SELECT name FROM dw_kid WHERE id = 1')).rows[0].name, `${how}: rolled back`).to.equal('k1');
          expect(await name(), how).to.equal('k1');
        }
        proxy.heal();
        await new Promise((r) => setTimeout(r, 100)); // past the store's retryAfterMs
        await db.updateTable('dw_kid').set({ name: 'healed' }).where('id', '=', 1).execute();
        expect(await name()).to.equal('healed');
      } finally {
        await cut.close(true);
        await seen.close(true);
        await proxy.close();
      }
    });

    it('outside any transaction', async () => {
      await warm();
      await sqlIn(writer.em.fork() as EntityManager).deleteFrom('dw_kid').where('id', '=', 3).execute();
      expect(await kid(3)).to.equal(null);
      expect(await kidIds(2)).to.deep.equal([]);
      expect(await kidCount()).to.equal(2);
    });
  });

  describe('5. writes PostgreSQL makes on its own', () => {
    it('a trigger on an uncached table updating a cached one', async () => {
      await warm();
      const em = writer.em.fork();
      em.create(Audit, { id: 1, kidId: 1, name: 'via-trigger' });
      await em.flush();
      expect((await kid(1))?.name).to.equal('via-trigger');
    });

    it('SELECT f() with a side effect', async () => {
      await warm();
      await writer.em.fork().execute(`SELECT dw_rename_kid(1, 'via-function')`);
      expect((await kid(1))?.name).to.equal('via-function');
    });

    it('CALL of a procedure', async () => {
      await warm();
      await writer.em.fork().execute(`CALL dw_rename_pet(1, 'via-procedure')`);
      expect((await fresh().findOneOrFail(Pet, 1)).name).to.equal('via-procedure');
    });

    it('DO', async () => {
      await warm();
      await writer.em.fork().execute(`DO $$ BEGIN UPDATE dw_kid SET name = 'via-do' WHERE id = 1; END $$`);
      expect((await kid(1))?.name).to.equal('via-do');
    });

    it('an updatable view', async () => {
      await warm();
      await writer.em.fork().execute(`UPDATE dw_kid_view SET name = 'via-view' WHERE id = 1`);
      expect((await kid(1))?.name).to.equal('via-view');
    });

    it('a rule', async () => {
      await admin.query(`CREATE RULE dw_audit_rule AS ON UPDATE TO dw_audit DO ALSO UPDATE dw_kid SET name = NEW.name WHERE id = NEW.kid_id`);
      await admin.query(`INSERT INTO dw_audit (id, kid_id, name) VALUES (9, 1, 'x')`);
      await warm();
      await writer.em.fork().execute(`UPDATE dw_audit SET name = 'via-rule' WHERE id = 9`);
      expect((await kid(1))?.name).to.equal('via-rule');
    });

    it('a partitioned table, written through the parent and through a partition', async () => {
      await warm();
      await writer.em.fork().execute('UPDATE dw_reading SET value = 51 WHERE id = 5');
      await writer.em.fork().execute('UPDATE dw_reading_high SET value = 1501 WHERE id = 150');
      expect((await fresh().findOneOrFail(Reading, 5)).value).to.equal(51);
      expect((await fresh().findOneOrFail(Reading, 150)).value).to.equal(1501);
    });

    it('COPY … FROM', async () => {
      await warm();
      await writer.em.fork().execute(`COPY dw_kid (id, name, parent_id) FROM PROGRAM 'printf "4,copied,1\\n"' WITH (FORMAT csv)`);
      expect(await kidIds(1)).to.deep.equal([1, 2, 4]);
      expect(await kidCount()).to.equal(4);
    });
  });

  it('6. REPEATABLE READ set in SQL: nothing newer than the snapshot is served, nothing from it is filled (G5, G3)', async () => {
    await warm();
    await writer.em.fork().transactional(async (em) => {
      await em.execute('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      expect((await em.findOneOrFail(Kid, 1)).name).to.equal('k1'); // takes the snapshot
      await admin.query(`UPDATE dw_kid SET name = 'newer' WHERE id = 1`);
      await reader.em.fork().execute(`UPDATE dw_kid SET name = 'newest' WHERE id = 1`);
      em.clear();
      expect((await em.findOneOrFail(Kid, 1)).name).to.equal('k1');
      em.clear();
      await em.findOne(Kid, 2); // would fill its snapshot's row if the transaction filled
    });
    expect((await kid(1))?.name).to.equal('newest');
  });

  describe('7. a 1:m collection ordered by a mutable column', () => {
    it('is served in the new order after a flush changes the order column', async () => {
      await warm();
      expect(await rankedOrder(1)).to.deep.equal([1, 2, 3]);
      const em = writer.em.fork();
      (await em.findOneOrFail(Ranked, 1)).rank = 9;
      await em.flush();
      expect(await rankedOrder(1)).to.deep.equal([2, 3, 1]);
    });

    it('is served in the new order after nativeUpdate changes it', async () => {
      await warm();
      await writer.em.fork().nativeUpdate(Ranked, { id: 3 }, { rank: 0 });
      expect(await rankedOrder(1)).to.deep.equal([3, 1, 2]);
    });
  });

  it('read-only transactions commit (prepare never asks a read-only transaction to delete)', async () => {
    await writer.em.fork().transactional(async (em) => expect((await em.findOneOrFail(Kid, 1)).name).to.equal('k1'), { readOnly: true });
  });

  describe('explicit invalidation, for what no database reports', () => {
    // Triggers do not fire in this session: a change the capture cannot see, as from another database.
    const unseen = (sql: string): Promise<unknown> => admin.query(`SET session_replication_role = replica; ${sql}; SET session_replication_role = origin`);

    it('invalidate(em, Entity, ids): the rows and their collections, now', async () => {
      await warm();
      await unseen(`UPDATE dw_kid SET name = 'unseen', parent_id = 2 WHERE id = 1`);
      expect((await kid(1))?.name).to.equal('k1'); // the cache cannot know
      expect(await invalidate(writer.em.fork(), Kid, [1])).to.deep.equal([]);
      expect(await kid(1)).to.deep.equal({ name: 'unseen', parent: 2 });
      expect(await kidCount()).to.equal(3);
      await invalidate(writer.em.fork(), Parent, [1, 2]);
      expect(await kidIds(1)).to.deep.equal([2]);
      expect(await kidIds(2)).to.deep.equal([1, 3]);
    });

    it('invalidateTable and invalidateAll: every row, collection and query result of the tables', async () => {
      await warm();
      await unseen(`UPDATE dw_kid SET name = name || '!'`);
      await invalidateTable(writer.em.fork(), Kid);
      expect((await kid(2))?.name).to.equal('k2!');
      await unseen(`UPDATE dw_pet SET name = 'x'; DELETE FROM dw_parent_clubs`);
      await invalidateAll(writer.em.fork());
      expect((await fresh().findOneOrFail(Pet, 1)).name).to.equal('x');
      expect(await clubMembers(1)).to.deep.equal([]);
    });

    it('inside a transaction: joins its prepare, so a rollback invalidates nothing and a commit does', async () => {
      await warm();
      await unseen(`UPDATE dw_kid SET name = 'later' WHERE id = 3`);
      await writer.em
        .fork()
        .transactional(async (em) => {
          await invalidate(em, Kid, [3]);
          throw new Error('roll back');
        })
        .catch(() => undefined);
      expect((await kid(3))?.name).to.equal('k3');
      await writer.em.fork().transactional((em) => invalidate(em, Kid, [3]));
      expect((await kid(3))?.name).to.equal('later');
    });
  });
});
