import type { Options } from '@mikro-orm/postgresql';
import { withXaCache } from 'mikro-orm-xa-cache';
import { Book } from './book.entity.js';
import type { ExampleSettings } from './settings.js';

/** The MikroORM configuration of the example: an ordinary PostgreSQL config, wrapped by `withXaCache`. */
export function exampleOrmOptions(settings: ExampleSettings): Options {
  return withXaCache(
    { entities: [Book], clientUrl: settings.databaseUrl },
    { servers: settings.memcachedServers, ...(settings.namespace ? { namespace: settings.namespace } : {}) },
  );
}
