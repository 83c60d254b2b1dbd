/**
 * Child process for the operator-tool and startup-sweep tests: an application process with its own ORM that
 * renames one book and stops dead in the middle of promote (after COMMIT), printing "READY" so the parent can
 * SIGKILL it there. It leaves a real in-doubt transaction: committed, its log row present, some keys locked.
 */
import { Book, openBookstore } from '../support/bookstore.js';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

const hang = async (): Promise<never> => {
  process.stdout.write('READY\n');
  return new Promise<never>(() => setInterval(() => undefined, 1000));
};

const store = await openBookstore(env('MEMCACHED_SERVERS').split(','), env('DATABASE_URL'), {
  namespace: env('NAMESPACE'),
  logTable: env('LOG_TABLE'),
  // The application's secrets, when a test needs its entries authenticated.
  ...(process.env.SECRETS ? { secrets: process.env.SECRETS.split(',') } : {}),
  midPromoteHook: hang,
});
const em = store.orm.em.fork();
const book = await em.findOneOrFail(Book, Number(env('BOOK_ID')));
book.title = env('TITLE');
await em.flush();
process.stdout.write('FINISHED\n');
