import { keys as keyNames, regions as regionNames } from '../mikro-orm/cache-keys.js';
import { EXIT } from './cli-errors.js';
import type { CliOutput } from './cli-output.js';
import type { CliSession } from './cli-session.js';
import type { CommandOptions } from './command-options.js';

/** What one `invalidate` names: item keys to evict and regions to renew. */
export interface Invalidation {
  readonly keys: readonly string[];
  readonly regions: readonly string[];
}

/** The prefix inspect shows region keys with; `--key r:<region>` names a region. */
const REGION_PREFIX = 'r:';

/**
 * What the flags name. A table alone: its regions (query results, rows, collections). Rows of a table: their row
 * keys, and still the table's query and collection regions, since the results and collections that hold those
 * rows cannot be named from outside. Raw keys: as given.
 */
export function invalidationOf(options: CommandOptions): Invalidation {
  const [target] = options.tables;
  if (!target) {
    return {
      keys: options.keys.filter((k) => !k.startsWith(REGION_PREFIX)),
      regions: options.keys.filter((k) => k.startsWith(REGION_PREFIX)).map((k) => k.slice(REGION_PREFIX.length)),
    };
  }
  const table = `${target.schema}.${target.table}`;
  if (options.ids.length === 0) return { keys: [], regions: [regionNames.query(table), regionNames.rows(table), regionNames.collections(table)] };
  return { keys: options.ids.map((id) => keyNames.row(table, id)), regions: [regionNames.query(table), regionNames.collections(table)] };
}

/**
 * `invalidate`: evicts items and renews regions now, for changes no database can report (another database, a
 * restore, a fix made by hand in memcached's data source), through the same `invalidateNow` the application
 * applies outside writes with: locks held by running transactions are marked so their holders write no value
 * over it. Exit 0 when every key was reached, 4 otherwise.
 */
export async function invalidateCommand(session: CliSession, options: CommandOptions, io: CliOutput): Promise<number> {
  const plan = invalidationOf(options);
  const unreached = await session.cache.invalidateNow(plan.keys, plan.regions);
  const missed = new Set(unreached);
  const { namespace } = session.config;
  if (options.json) {
    io.out(JSON.stringify({ namespace, keys: plan.keys, regions: plan.regions, unreached }, null, 2));
  } else {
    for (const key of unreached) io.err(`warning: ${key} could not be reached; run the command again once its memcached server answers`);
    const items = plan.keys.filter((k) => !missed.has(k)).length;
    const regions = plan.regions.filter((r) => !missed.has(`${REGION_PREFIX}${r}`)).length;
    io.out(`Invalidated ${items} item${items === 1 ? '' : 's'} and renewed ${regions} region${regions === 1 ? '' : 's'} in namespace "${namespace}"${missed.size > 0 ? `; ${missed.size} not reached` : ''}.`);
    for (const key of plan.keys) io.out(`  ${key}  ${missed.has(key) ? 'NOT REACHED' : 'evicted'}`);
    for (const region of plan.regions) io.out(`  ${REGION_PREFIX}${region}  ${missed.has(`${REGION_PREFIX}${region}`) ? 'NOT REACHED' : 'renewed'}`);
  }
  return missed.size > 0 ? EXIT.unreachable : EXIT.ok;
}
