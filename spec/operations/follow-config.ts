/**
 * The MikroORM config `mikro-orm-xa-cache follow` loads in the outside-writers tests (as an application's
 * compiled config would be): servers from the environment the test gives the child.
 */
import { cachedConfig } from './outside-model.js';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

export default cachedConfig({ db: env('DATABASE_URL'), memcached: env('MEMCACHED_SERVERS').split(','), namespace: env('XA_CACHE_NAMESPACE') });
