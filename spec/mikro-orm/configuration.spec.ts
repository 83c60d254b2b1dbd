import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { Kysely, PostgresDialect } from 'kysely';
import { MikroORM } from '@mikro-orm/postgresql';
import { sharedServers } from '../support/global-servers.js';
import { Book, entities } from '../support/bookstore.js';
import { withXaCache } from '../../lib/mikro-orm/with-xa-cache.js';
import { XaCacheAdapter } from '../../lib/mikro-orm/xa-cache-adapter.js';
import { ReadOnlyEntityError, XaConfigError } from '../../lib/mikro-orm/xa-errors.js';
import { ProtocolConfigError } from '../../lib/protocol/protocol-errors.js';
import { StoreConfigError } from '../../lib/store/store-errors.js';
import { Country, Genre, Shelf } from './decorated-entities.js';
import { installWriteCapture } from '../../lib/mikro-orm/write-capture-setup.js';

describe('configuration', () => {
  const servers = (): string[] => sharedServers().memcachedAddresses;

  describe('fails at once with a message that says what to fix', () => {
    const cases: Array<[string, () => unknown, new (...args: never[]) => Error, RegExp]> = [
      ['no servers', () => withXaCache({ entities }, { servers: [] }), XaConfigError, /servers must list at least one/],
      ['servers not a list', () => withXaCache({ entities }, { servers: '127.0.0.1:11211' as unknown as string[] }), XaConfigError, /servers must list/],
      ['a malformed address', () => withXaCache({ entities }, { servers: ['localhost'] }), StoreConfigError, /host:port/],
      ['a negative lock lifetime', () => withXaCache({ entities }, { servers: servers(), lockTtlSeconds: -1 }), ProtocolConfigError, /lockTtlSeconds/],
      ['an unknown failure policy', () => withXaCache({ entities }, { servers: servers(), failurePolicy: 'sometimes' as 'strict' }), ProtocolConfigError, /strict' or 'degrade/],
      ['a fractional row TTL', () => withXaCache({ entities }, { servers: servers(), rowTtlSeconds: 1.5 }), XaConfigError, /rowTtlSeconds/],
      ['a log table name that is not an identifier', () => withXaCache({ entities }, { servers: servers(), logTable: 'x; drop table y' }), ProtocolConfigError, /logTable/],
    ];
    for (const [name, run, type, message] of cases) {
      it(name, () => {
        expect(run).to.throw(type, message);
      });
    }
  });

  it('refuses the adapter without the XA driver, which would leave writes uninvalidated', async () => {
    const s = sharedServers();
    const orm = await MikroORM.init({ entities, clientUrl: s.db, resultCache: { adapter: XaCacheAdapter, options: { servers: s.memcachedAddresses } } });
    try {
      await orm.schema.ensureDatabase();
      let error: unknown;
      await orm.em.fork().find(Book, {}, { cache: 1000 }).catch((e: unknown) => (error = e));
      expect(error).to.be.instanceOf(XaConfigError);
      expect(String(error)).to.match(/withXaCache/);
    } finally {
      await orm.close(true);
    }
  });

  it('fails at startup for a cached entity with a composite primary key', async () => {
    const s = sharedServers();
    let error: unknown;
    await MikroORM.init(withXaCache({ entities: [Shelf], clientUrl: s.db }, { servers: s.memcachedAddresses })).then((orm) => orm.close(true), (e: unknown) => (error = e));
    expect(String(error)).to.match(/Shelf.*composite primary key/);
  });

  it('fails on connect, naming the table, when the log table cannot be created', async () => {
    const s = sharedServers();
    let error: unknown;
    const orm = await MikroORM.init(withXaCache({ entities, clientUrl: s.db }, { servers: s.memcachedAddresses, logTable: 'no_such_schema.xa_log' }));
    await orm.connect().catch((e: unknown) => (error = e));
    await orm.close(true);
    expect(error).to.be.instanceOf(XaConfigError);
    expect(String(error)).to.match(/no_such_schema\.xa_log/);
  });

  it('refuses on connect a ready-made Kysely instance or dialect in driverOptions, whose writes it could not prepare', async () => {
    const s = sharedServers();
    for (const made of ['instance', 'dialect'] as const) {
      const pool = new pg.Pool({ connectionString: s.db, max: 1 });
      const dialect = new PostgresDialect({ pool });
      const driverOptions = made === 'instance' ? new Kysely({ dialect }) : dialect;
      let error: unknown;
      const orm = await MikroORM.init(withXaCache({ entities, clientUrl: s.db, driverOptions }, { servers: s.memcachedAddresses }));
      await orm.connect().catch((e: unknown) => (error = e));
      await orm.close(true);
      await pool.end().catch(() => undefined);
      expect(error, made).to.be.instanceOf(XaConfigError);
      expect(String(error), made).to.match(/ready-made Kysely/);
    }
  });

  describe('decorated class entities', () => {
    let orm: MikroORM;
    before(async () => {
      const s = sharedServers();
      orm = await MikroORM.init(withXaCache({ entities: [Genre, Country], clientUrl: s.db }, { servers: s.memcachedAddresses, namespace: `d${randomUUID().slice(0, 8)}` }));
      await orm.schema.refresh();
      await installWriteCapture(orm);
      const em = orm.em.fork();
      em.create(Genre, { id: 1, name: 'Poetry' });
      await em.flush();
      await orm.em.fork().insert(Country, { code: 'FR', name: 'France' }).catch(() => undefined);
    });
    after(async () => orm.close(true));

    it('are cached when marked with @Cacheable()', async () => {
      await orm.em.fork().findOneOrFail(Genre, 1);
      const adapter = orm.config.getResultCacheAdapter() as XaCacheAdapter;
      const hits = adapter.xa.stats.hits;
      expect((await orm.em.fork().findOneOrFail(Genre, 1)).name).to.equal('Poetry');
      expect(adapter.xa.stats.hits).to.equal(hits + 1);
    });

    it('refuses writes to a read-only cached entity', async () => {
      const em = orm.em.fork();
      em.create(Country, { code: 'DE', name: 'Germany' });
      let error: unknown;
      await em.flush().catch((e: unknown) => (error = e));
      expect(error).to.be.instanceOf(ReadOnlyEntityError);
      let native: unknown;
      await orm.em.fork().nativeUpdate(Country, { code: 'FR' }, { name: 'x' }).catch((e: unknown) => (native = e));
      expect(native).to.be.instanceOf(ReadOnlyEntityError);
    });
  });
});
