import { randomUUID } from 'node:crypto';
import { MikroORM, defineEntity, p, type Options } from '@mikro-orm/postgresql';
import { withXaCache } from '../../lib/mikro-orm/with-xa-cache.js';
import { installWriteCapture } from '../../lib/mikro-orm/write-capture-setup.js';
import type { XaCacheAdapter, XaCacheOptions } from '../../lib/mikro-orm/xa-cache-adapter.js';

/** A realistic schema for the integration tests, the demo and the benchmarks. */
export const Publisher = defineEntity({
  name: 'Publisher',
  xaCache: true,
  properties: {
    id: p.integer().primary(),
    name: p.string(),
  },
});

export const Author = defineEntity({
  name: 'Author',
  // Lookups by email are served like lookups by id (docs/usage.md, "Lookups by unique keys").
  xaCache: { ttlSeconds: 600, uniqueKeys: [['email']] },
  properties: {
    id: p.integer().primary(),
    name: p.string(),
    email: p.string().nullable().unique(),
    born: p.datetime().nullable(),
    mentor: () => p.manyToOne(Author).nullable(),
    books: () => p.oneToMany(Book).mappedBy('author').orderBy({ id: 'asc' }),
  },
});

export const Tag = defineEntity({
  name: 'Tag',
  xaCache: true,
  properties: {
    id: p.integer().primary(),
    label: p.string(),
    books: () => p.manyToMany(Book).mappedBy('tags'),
  },
});

export const Book = defineEntity({
  name: 'Book',
  xaCache: true,
  properties: {
    id: p.integer().primary(),
    title: p.string(),
    price: p.integer(),
    author: () => p.manyToOne(Author),
    publisher: () => p.manyToOne(Publisher).nullable(),
    tags: () => p.manyToMany(Tag),
  },
});

/** Not cached: reads and writes pass straight through. */
export const Review = defineEntity({
  name: 'Review',
  properties: {
    id: p.integer().primary(),
    // The database deletes a book's reviews itself: writes the unit of work never sees.
    book: () => p.manyToOne(Book).deleteRule('cascade'),
    stars: p.integer(),
  },
});

export const entities = [Publisher, Author, Tag, Book, Review];

/** An ORM over the bookstore with the cache, and the SQL it sends. */
export interface Bookstore {
  readonly orm: MikroORM;
  /** Every statement sent through the ORM connection (not BEGIN/COMMIT), in order. */
  readonly sql: string[];
  /** Statements sent since the last call. */
  takeSql(): string[];
  /** The cache adapter (protocol, stats). */
  cache(): XaCacheAdapter;
  close(): Promise<void>;
}

/** Opens the bookstore with the cache over the given servers; `namespace` isolates tests from each other. */
export async function openBookstore(servers: readonly string[], clientUrl: string, cache: Partial<XaCacheOptions> = {}, extra: Partial<Options> = {}): Promise<Bookstore> {
  const sql: string[] = [];
  const orm = await MikroORM.init(
    withXaCache(
      {
        entities,
        clientUrl,
        onQuery: (query: string) => {
          sql.push(query);
          return query;
        },
        ...extra,
      },
      { servers, namespace: cache.namespace ?? `b${randomUUID().slice(0, 8)}`, logTable: 'xa_cache_log', ...cache },
    ),
  );
  return {
    orm,
    sql,
    takeSql: () => sql.splice(0, sql.length),
    cache: () => orm.config.getResultCacheAdapter() as XaCacheAdapter,
    close: () => orm.close(true),
  };
}

/** Creates the schema and seeds: 3 publishers, 4 authors (one mentoring another), 12 books, 4 tags, reviews. */
export async function seedBookstore(orm: MikroORM): Promise<void> {
  await orm.schema.refresh();
  await installWriteCapture(orm);
  const em = orm.em.fork();
  const publishers = [1, 2, 3].map((id) => em.create(Publisher, { id, name: `Publisher ${id}` }));
  const authors = [1, 2, 3, 4].map((id) => em.create(Author, { id, name: `Author ${id}`, email: `a${id}@example.org`, born: new Date(Date.UTC(1970 + id, 0, 1)) }));
  (authors[1] as { mentor: unknown }).mentor = authors[0];
  const tags = [1, 2, 3, 4].map((id) => em.create(Tag, { id, label: `tag-${id}` }));
  for (let id = 1; id <= 12; id++) {
    const book = em.create(Book, { id, title: `Book ${id}`, price: 10 + id, author: authors[(id - 1) % 4]!, publisher: publishers[(id - 1) % 3]! });
    book.tags.add(tags[(id - 1) % 4]!, tags[id % 4]!);
    em.create(Review, { id, book, stars: (id % 5) + 1 });
  }
  await em.flush();
}
