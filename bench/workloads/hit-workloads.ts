import { Author, Book } from '../../spec/support/bookstore.js';
import { forEachIndex, seededRandom, type Operation } from '../measure.js';
import type { Workload } from './workload.js';

/**
 * A read-hit workload: every key read once (the cache filled; not without a cache), then uniformly random keys. `check` makes sure an
 * answer is what the data says (a hit that returned nothing would be fast).
 */
async function hits(name: string, fill: boolean, keys: readonly number[], read: (key: number) => Promise<unknown>, check: (result: unknown, key: number) => boolean): Promise<Operation> {
  const checked = async (key: number): Promise<void> => {
    const result = await read(key);
    if (!check(result, key)) throw new Error(`${name}: wrong answer for key ${key}`);
  };
  if (fill) await forEachIndex(keys.length, 32, (i) => checked(keys[i] as number));
  const random = seededRandom(7919);
  return async () => {
    await checked(keys[Math.floor(random() * keys.length)] as number);
  };
}

const range = (from: number, count: number): number[] => Array.from({ length: count }, (_, i) => from + i);

export const pkHit: Workload = {
  key: 'pk',
  title: 'Primary-key hit',
  operation: '`em.fork().findOne(Book, id)` over all books, uniformly random, every one cached (result-cache adapters: with `{ cache }`; xa-cache serves it from its row cache without the option)',
  inFlight: 32,
  headline: 'throughput',
  prepare: ({ orm, pkOptions, fills }, data) =>
    hits('pk', fills, range(1, data.books), (id) => orm.em.fork().findOne(Book, id, pkOptions as never), (book, id) => (book as { id: number } | null)?.id === id),
};

/** `findOneOrFail(Author, id, { populate: ['books'] })` and a sum over the books, for the given authors. */
function collectionOf(size: number, authors: (data: Parameters<Workload['prepare']>[1]) => number[]): Workload['prepare'] {
  return ({ orm, collectionCache, fills }, data) =>
    hits(
      `collection of ${size}`,
      fills,
      authors(data),
      async (id) => {
        const author = await orm.em.fork().findOneOrFail(Author, id, { populate: ['books'], ...(collectionCache ? { cache: collectionCache } : {}) });
        let sum = 0;
        for (const book of author.books) sum += book.price;
        return { count: author.books.length, sum };
      },
      (r) => (r as { count: number }).count === size && Number.isFinite((r as { sum: number }).sum),
    );
}

export const collection50: Workload = {
  key: 'collection50',
  title: 'Collection of 50 books',
  operation: "`em.fork().findOneOrFail(Author, id, { populate: ['books'] })` over the authors of 50 books, uniformly random, iterating the books (result-cache adapters: with `{ cache }`; xa-cache caches the collection itself)",
  inFlight: 32,
  headline: 'throughput',
  prepare: collectionOf(50, (d) => range(1, d.books / d.booksPerAuthor)),
};

export const collection500: Workload = {
  key: 'collection500',
  title: 'Collection of 500 books',
  operation: 'the same over the authors of 500 books',
  inFlight: 32,
  headline: 'throughput',
  prepare: collectionOf(500, (d) => range(d.books / d.booksPerAuthor + 1, d.largeAuthors)),
};
