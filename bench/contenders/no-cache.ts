import { MikroORM } from '@mikro-orm/postgresql';
import { entities } from '../../spec/support/bookstore.js';
import { baseOptions, type Contender } from './contender.js';

/** MikroORM 7 + PostgreSQL, no second-level cache: every read is a query. */
export const noCache: Contender = {
  key: 'none',
  label: 'no cache',
  description: 'MikroORM 7 + PostgreSQL, no cache option anywhere',
  memcachedServers: 1,
  unavailable: () => undefined,
  async open(ctx) {
    const counter = { sql: 0 };
    const orm = await MikroORM.init({ ...baseOptions(ctx, counter), entities });
    return {
      orm,
      fills: false,
      pkOptions: {},
      queryCache: undefined,
      collectionCache: undefined,
      counters: () => ({ ...counter, cache: 0 }),
      close: () => orm.close(true),
    };
  },
};
