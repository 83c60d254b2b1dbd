import type { Contender } from './contender.js';
import { memoryAdapter } from './memory-adapter.js';
import { naiveMemjs } from './naive-memjs.js';
import { noCache } from './no-cache.js';
import { redisAdapter } from './redis-adapter.js';
import { xaCache, xaCacheTwoServers } from './xa-cache.js';

export type { Contender, ContenderContext, OpenContender } from './contender.js';

/** Every contender, in report order. */
export const allContenders: readonly Contender[] = [noCache, memoryAdapter, naiveMemjs, redisAdapter, xaCache, xaCacheTwoServers];

/** The contender of a key, or an error naming the known ones. */
export function contenderOf(key: string): Contender {
  const c = allContenders.find((x) => x.key === key);
  if (!c) throw new Error(`unknown contender ${key} (known: ${allContenders.map((x) => x.key).join(', ')})`);
  return c;
}
