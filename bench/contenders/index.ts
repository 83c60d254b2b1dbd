import type { Contender } from './contender.js';
import { memoryAdapter } from './memory-adapter.js';
import { naiveMemjs } from './naive-memjs.js';
import { noCache } from './no-cache.js';
import { redisAdapter } from './redis-adapter.js';
import { xaCache } from './xa-cache.js';

export type { Contender, ContenderContext, OpenContender } from './contender.js';

/** Every contender, in report order. */
export const allContenders: readonly Contender[] = [noCache, memoryAdapter, naiveMemjs, redisAdapter, xaCache];
