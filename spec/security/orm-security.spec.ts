import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { MikroORM, defineEntity, p } from '@mikro-orm/postgresql';
import { sharedServers } from '../support/global-servers.js';
import { dumpMemcached } from '../support/memcached-scan.js';
import { withXaCache } from '../../lib/mikro-orm/with-xa-cache.js';
import { installWriteCapture } from '../../lib/mikro-orm/write-capture-setup.js';
import { XaConfigError } from '../../lib/mikro-orm/xa-errors.js';
import type { XaCacheAdapter } from '../../lib/mikro-orm/xa-cache-adapter.js';

const Account = defineEntity({
  name: 'Account',
  xaCache: { secretFields: ['passwordHash'] },
  properties: {
    id: p.integer().primary(),
    email: p.string(),
    passwordHash: p.string().lazy(),
  },
});

const SECRET = 'argon2id$v=19$m=65536$very-secret-hash';

describe('secret fields never enter the cache', () => {
  let orm: MikroORM;
  const namespace = `s${randomUUID().slice(0, 8)}`;
  before(async () => {
    const s = sharedServers();
    orm = await MikroORM.init(withXaCache({ entities: [Account], clientUrl: s.db }, { servers: s.memcachedAddresses, namespace }));
    await orm.schema.refresh();
    await installWriteCapture(orm);
    await orm.em.fork().insert(Account, { id: 1, email: 'ada@example.org', passwordHash: SECRET });
  });
  after(async () => orm.close(true));

  it('caches the row without the secret, and loads the secret only when asked', async () => {
    await orm.em.fork().findOneOrFail(Account, 1);
    const account = await orm.em.fork().findOneOrFail(Account, 1);
    expect(account.email).to.equal('ada@example.org');
    const withSecret = await orm.em.fork().findOneOrFail(Account, 1, { populate: ['passwordHash'] });
    expect(withSecret.passwordHash).to.equal(SECRET);
    await orm.em.fork().find(Account, {}, { cache: 60_000, populate: ['passwordHash'] });
    await orm.em.fork().find(Account, {}, { cache: 60_000 });
    const bytes = [];
    for (const server of sharedServers().memcachedAddresses) bytes.push(...(await dumpMemcached(server, `${namespace}/`)).values());
    expect(bytes.length, 'something was cached').to.be.greaterThan(0);
    expect(bytes.some((b) => b.includes(Buffer.from('very-secret-hash')))).to.equal(false);
    expect(bytes.some((b) => b.includes(Buffer.from('ada@example.org')))).to.equal(true);
  });

  it('refuses, at startup, a secret field that is not lazy', async () => {
    const Leaky = defineEntity({ name: 'Leaky', xaCache: { secretFields: ['token'] }, properties: { id: p.integer().primary(), token: p.string() } });
    let error: unknown;
    await MikroORM.init(withXaCache({ entities: [Leaky], clientUrl: sharedServers().db }, { servers: sharedServers().memcachedAddresses })).then((o) => o.close(true), (e: unknown) => (error = e));
    expect(error).to.be.instanceOf(XaConfigError);
    expect(String(error)).to.match(/secret field "token" must be lazy/);
  });
});

const Tenant = {
  Author: defineEntity({
    name: 'TenantAuthor',
    tableName: 'author',
    schema: '*',
    xaCache: true,
    properties: {
      id: p.integer().primary(),
      name: p.string(),
      books: () => p.oneToMany(Tenant.Book).mappedBy('author'),
    },
  }),
  Book: defineEntity({
    name: 'TenantBook',
    tableName: 'book',
    schema: '*',
    xaCache: true,
    properties: {
      id: p.integer().primary(),
      title: p.string(),
      author: () => p.manyToOne(Tenant.Author),
    },
  }),
};

describe('tenants (schema per tenant) never share cache entries', () => {
  let orm: MikroORM;
  before(async () => {
    const s = sharedServers();
    orm = await MikroORM.init(withXaCache({ entities: [Tenant.Author, Tenant.Book], clientUrl: s.db }, { servers: s.memcachedAddresses, namespace: `t${randomUUID().slice(0, 8)}` }));
    for (const schema of ['tenant_a', 'tenant_b']) {
      await orm.em.fork().execute(`drop schema if exists ${schema} cascade`);
      await orm.schema.create({ schema, includeWildcardSchema: true } as never);
      await installWriteCapture(orm, { schemas: [schema] });
      const em = orm.em.fork({ schema });
      const author = em.create(Tenant.Author, { id: 1, name: `${schema} author` });
      em.create(Tenant.Book, { id: 1, title: `${schema} book`, author });
      if (schema === 'tenant_b') em.create(Tenant.Book, { id: 2, title: 'only in b', author });
      await em.flush();
    }
  });
  after(async () => orm.close(true));

  const read = async (schema: string) => {
    const em = orm.em.fork({ schema });
    const book = await em.findOneOrFail(Tenant.Book, 1);
    const titles = (await em.find(Tenant.Book, {}, { cache: 60_000, orderBy: { id: 'asc' } })).map((b) => b.title);
    const author = await orm.em.fork({ schema }).findOneOrFail(Tenant.Author, 1, { populate: ['books'] });
    return { title: book.title, titles, members: author.books.getItems().map((b) => b.id) };
  };

  it('serves each schema its own rows, query results and collections with the same primary keys', async () => {
    const stats = (orm.config.getResultCacheAdapter() as XaCacheAdapter).xa.stats;
    for (let round = 0; round < 2; round++) {
      const hits = stats.hits;
      expect(await read('tenant_a')).to.deep.equal({ title: 'tenant_a book', titles: ['tenant_a book'], members: [1] });
      expect(await read('tenant_b')).to.deep.equal({ title: 'tenant_b book', titles: ['tenant_b book', 'only in b'], members: [1, 2] });
      // the second round is served from the cache: rows, results and collections of both tenants
      if (round === 1) expect(stats.hits - hits).to.be.at.least(6);
    }
  });

  it('invalidates only the schema written', async () => {
    const em = orm.em.fork({ schema: 'tenant_a' });
    (await em.findOneOrFail(Tenant.Book, 1)).title = 'a, revised';
    await em.flush();
    expect((await read('tenant_a')).title).to.equal('a, revised');
    expect((await read('tenant_b')).title).to.equal('tenant_b book');
  });
});
