import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { MikroORM, defineEntity, p, Type, type Platform } from '@mikro-orm/postgresql';
import { sharedServers } from '../support/global-servers.js';
import { withXaCache } from '../../lib/mikro-orm/with-xa-cache.js';
import type { XaCacheAdapter } from '../../lib/mikro-orm/xa-cache-adapter.js';
import { installWriteCapture } from '../../lib/mikro-orm/write-capture-setup.js';

/** A custom type: stored as text "x,y", used in JavaScript as a point. */
class PointType extends Type<{ x: number; y: number } | null, string | null> {
  override convertToDatabaseValue(value: { x: number; y: number } | null): string | null {
    return value === null ? null : `${value.x},${value.y}`;
  }

  override convertToJSValue(value: string | null): { x: number; y: number } | null {
    if (value === null) return null;
    const [x, y] = value.split(',').map(Number) as [number, number];
    return { x, y };
  }

  override getColumnType(_prop: unknown, _platform: Platform): string {
    return 'text';
  }
}

const Document = defineEntity({
  name: 'Document',
  xaCache: true,
  properties: {
    slug: p.text().primary(),
    body: p.text(),
    location: p.type(PointType).nullable(),
  },
});

/**
 * Inputs the cache cannot keep have a defined outcome, not an error: a row larger than memcached's item size is
 * read from the database every time; keys longer than 250 bytes, or with spaces and control characters, are hashed;
 * custom types come back as the database read would give them.
 */
describe('inputs the cache cannot keep as they are', () => {
  let orm: MikroORM;
  let sql: string[];
  before(async () => {
    const s = sharedServers();
    sql = [];
    orm = await MikroORM.init(
      withXaCache(
        { entities: [Document], clientUrl: s.db, onQuery: (q: string) => (sql.push(q), q) },
        { servers: s.memcachedAddresses, namespace: `bad${randomUUID().slice(0, 6)}` },
      ),
    );
    await orm.schema.refresh();
    await installWriteCapture(orm);
  });
  after(async () => orm.close(true));

  const adapter = (): XaCacheAdapter => orm.config.getResultCacheAdapter() as XaCacheAdapter;
  const twice = async (slug: string): Promise<{ sqlOnSecondRead: number; body: string | undefined }> => {
    await orm.em.fork().findOne(Document, slug);
    sql.length = 0;
    const doc = await orm.em.fork().findOne(Document, slug);
    return { sqlOnSecondRead: sql.length, body: doc?.body };
  };

  it('reads a row larger than the item size from the database every time, and counts it', async () => {
    const big = 'x'.repeat(2 * 1024 * 1024);
    await orm.em.fork().insert(Document, { slug: 'big', body: big });
    const result = await twice('big');
    expect(result.body?.length).to.equal(big.length);
    expect(result.sqlOnSecondRead).to.equal(1);
    expect(adapter().xa.stats.errors.too_large).to.be.greaterThan(0);
  });

  it('caches rows whose keys are over 250 bytes or hold spaces and control characters', async () => {
    for (const slug of ['s'.repeat(400), 'with spaces and\ttabs', 'new\nline', 'quote"s and \\back']) {
      await orm.em.fork().insert(Document, { slug, body: `body of ${slug.slice(0, 10)}` });
      const result = await twice(slug);
      expect(result.sqlOnSecondRead, JSON.stringify(slug.slice(0, 20))).to.equal(0);
      expect(result.body).to.equal(`body of ${slug.slice(0, 10)}`);
    }
  });

  it('gives back custom types as a database read does', async () => {
    await orm.em.fork().insert(Document, { slug: 'located', body: 'b', location: { x: 3, y: 4 } });
    await orm.em.fork().findOneOrFail(Document, 'located');
    sql.length = 0;
    const doc = await orm.em.fork().findOneOrFail(Document, 'located');
    expect(sql).to.deep.equal([]);
    expect(doc.location).to.deep.equal({ x: 3, y: 4 });
    const em = orm.em.fork();
    await em.findOneOrFail(Document, 'located');
    await em.flush();
    expect(sql.filter((q) => /^update/i.test(q)), 'a custom type read from the cache is not dirty').to.deep.equal([]);
  });
});
