import { randomUUID } from 'node:crypto';
import { MikroORM, defineEntity, p } from '@mikro-orm/postgresql';
import { withXaCache } from '../../lib/mikro-orm/with-xa-cache.js';
import type { XaCacheAdapter, XaCacheOptions } from '../../lib/mikro-orm/xa-cache-adapter.js';

/** Tables of their own, so the predicate specs never meet the bookstore's. */
export const Writer = defineEntity({
  name: 'Writer',
  tableName: 'pq_writer',
  xaCache: true,
  properties: {
    id: p.integer().primary(),
    name: p.string(),
  },
});

export const Novel = defineEntity({
  name: 'Novel',
  tableName: 'pq_novel',
  xaCache: true,
  properties: {
    id: p.integer().primary(),
    title: p.string(),
    price: p.integer(),
    published: p.boolean(),
    genre: p.string(),
    writer: () => p.manyToOne(Writer),
  },
});

/** An ORM over the two tables with the cache, and the SQL it sends. */
export interface PredicateStore {
  readonly orm: MikroORM;
  /** Statements sent since the last call. */
  takeSql(): string[];
  cache(): XaCacheAdapter;
  close(): Promise<void>;
}

export async function openPredicateStore(servers: readonly string[], clientUrl: string, namespace = `pq${randomUUID().slice(0, 8)}`, cache: Partial<XaCacheOptions> = {}): Promise<PredicateStore> {
  const sql: string[] = [];
  const orm = await MikroORM.init(
    withXaCache(
      {
        entities: [Writer, Novel],
        clientUrl,
        onQuery: (query: string) => {
          sql.push(query);
          return query;
        },
      },
      { servers, namespace, logTable: 'xa_cache_log', ...cache },
    ),
  );
  return {
    orm,
    takeSql: () => sql.splice(0, sql.length),
    cache: () => orm.config.getResultCacheAdapter() as XaCacheAdapter,
    close: () => orm.close(true),
  };
}

/** `writers` writers, and `perWriter` novels each; novel `n` of writer `w` has id `w * 100 + n`. */
export async function seedPredicateStore(orm: MikroORM, writers: number, perWriter: number): Promise<void> {
  const em = orm.em.fork();
  for (let w = 1; w <= writers; w++) {
    const writer = em.create(Writer, { id: w, name: `Writer ${w}` });
    for (let n = 1; n <= perWriter; n++) {
      em.create(Novel, { id: w * 100 + n, title: `Novel ${w}.${n}`, price: 10 + n, published: n % 2 === 0, genre: n % 3 === 0 ? 'poetry' : 'prose', writer });
    }
  }
  await em.flush();
}
