import { defineConfig } from '@mikro-orm/postgresql';
import { Migrator } from '@mikro-orm/migrations';
import { withXaCache } from '../../lib/mikro-orm/with-xa-cache.js';
import { entities } from '../support/bookstore.js';

/**
 * The MikroORM config the schema-tools spec gives the real `mikro-orm` CLI (`--config`): the bookstore with the
 * cache, on the database, memcached, log table and migrations folder the spec puts in the environment.
 */
export default defineConfig(
  withXaCache(
    {
      entities,
      clientUrl: process.env.XA_SPEC_DB,
      extensions: [Migrator],
      migrations: { path: process.env.XA_SPEC_MIGRATIONS, emit: 'cjs', snapshot: false },
    },
    { servers: (process.env.XA_SPEC_MEMCACHED ?? '').split(','), namespace: 'schema-tools', logTable: process.env.XA_SPEC_LOG_TABLE ?? 'xa_cache_log' },
  ),
);
