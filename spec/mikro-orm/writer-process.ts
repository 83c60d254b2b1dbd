/**
 * A second application process for the cross-process tests: its own ORM over the same database and memcached
 * namespace. It reads commands on stdin (`title <bookId> <title>`, `move <bookId> <authorId>`) and answers
 * `done <n>` once the transaction's commit has returned.
 */
import { createInterface } from 'node:readline';
import { Author, Book, openBookstore } from '../support/bookstore.js';

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const store = await openBookstore(env('MEMCACHED_SERVERS').split(','), env('DATABASE_URL'), { namespace: env('NAMESPACE') });
let n = 0;
for await (const line of createInterface({ input: process.stdin })) {
  const [command, a, b] = line.trim().split(' ');
  if (command === 'quit') break;
  await store.orm.em.fork().transactional(async (em) => {
    const book = await em.findOneOrFail(Book, Number(a));
    if (command === 'title') book.title = String(b);
    if (command === 'move') book.author = em.getReference(Author, Number(b));
  });
  process.stdout.write(`done ${++n}\n`);
}
await store.close();
