import { sharedServers } from './global-servers.js';
import { openBookstore, seedBookstore, type Bookstore } from './bookstore.js';

/**
 * Registers mocha hooks for a suite over the seeded bookstore on the shared servers, in a namespace of its own:
 * opened and seeded once, SQL log emptied before each test, closed after. Returns the accessor.
 */
export function useSeededBookstore(): () => Bookstore {
  let bookstore: Bookstore | undefined;
  before(async () => {
    const s = sharedServers();
    bookstore = await openBookstore(s.memcachedAddresses, s.db);
    await seedBookstore(bookstore.orm);
  });
  beforeEach(() => bookstore?.takeSql());
  after(async () => bookstore?.close());
  return () => {
    if (!bookstore) throw new Error('the bookstore is opened by the suite hooks');
    return bookstore;
  };
}
