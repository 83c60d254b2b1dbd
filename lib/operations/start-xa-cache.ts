import type { MikroORM } from '@mikro-orm/core';
import { XaPostgreSqlDriver } from '../mikro-orm/xa-driver.js';
import { OperationsError } from './operations-error.js';
import { OutsideChangesFollower } from './outside-changes-follower.js';
import { verifyWriteCapture } from '../mikro-orm/write-capture-setup.js';
import { verifyUniqueKeys } from '../mikro-orm/unique-key-catalog.js';
import { XaCacheRuntime, type RuntimeSweepOptions } from './xa-cache-runtime.js';

/** Options of {@link startXaCache}. The cache logs through MikroORM's logger (namespace `xa-cache`) unless its options gave a `logger`. */
export interface StartXaCacheOptions extends RuntimeSweepOptions {
  /**
   * What to do when a table lacks the database-side write capture (see `installWriteCapture`): `require`
   * (default) rejects, naming the tables and the command that installs it; `warn` logs them and stops caching
   * those tables in this process.
   */
  readonly writeCapture?: 'require' | 'warn';
  /** Schemas of the tables of wildcard-schema entities (`schema: '*'`), for the capture check. */
  readonly captureSchemas?: readonly string[];
  /** Apply outside writers' captured changes every this many milliseconds (0: never). Default 1000. */
  readonly outsideChangesIntervalMs?: number;
}

/**
 * The one call an application awaits on startup, before it serves: connects the ORM if needed (which creates the
 * log table if absent), runs the recovery sweeper once, so in-doubt entries left by processes that died are
 * resolved now rather than when their locks expire (their rows are swept at any age once the writer's database
 * session is gone), and then sweeps every `sweepIntervalMs` if given. Without an interval, one follow-up sweep
 * runs `minAgeMs` later if rows were left, so none found at startup stays in the log.
 *
 * ```ts
 * const orm = await MikroORM.init(withXaCache(config, { servers }));
 * const cache = await startXaCache(orm, { sweepIntervalMs: 30_000 });
 * // … serve; expose `await cache.metrics()` on /metrics …
 * await cache.stop();
 * await orm.close();
 * ```
 *
 * Rejects when a declared `uniqueKeys` entry has no unique index on exactly its columns in the database
 * (`XaConfigError` naming the entity, table and columns).
 *
 * Rejects if the startup sweep fails (the database refused the log statements): the cache would still be
 * correct, but an operator should know. A memcached server that is down does not reject; its keys stay in doubt
 * (`runtime.lastSweep.unresolved`) for the next sweep.
 */
export async function startXaCache(orm: MikroORM, options: StartXaCacheOptions = {}): Promise<XaCacheRuntime> {
  if (!(await orm.isConnected())) await orm.connect();
  const driver = orm.em.getDriver();
  if (!(driver instanceof XaPostgreSqlDriver)) throw OperationsError.notXaOrm(driver.constructor.name);
  const connection = driver.xaConnection;
  const cache = connection.cache.xa;
  const missing = await verifyWriteCapture(orm, options.captureSchemas ? { schemas: options.captureSchemas } : {});
  if (missing.length > 0) {
    const tables = missing.map((t) => `${t.schema}.${t.table}`);
    if ((options.writeCapture ?? 'require') === 'require') throw OperationsError.captureMissing(tables);
    connection.cache.stopCaching(missing.map((t) => `${t.schema}.${t.logicalTable ?? t.table}`));
    cache.options.logger?.('warn', `write capture missing on ${tables.join(', ')}: these tables are not cached; run "mikro-orm-xa-cache capture --apply" or installWriteCapture(orm)`, { tables });
  }
  // Declared unique keys must be enforced by the database, or one index entry could stand for two rows.
  await verifyUniqueKeys(orm, options.captureSchemas);
  const runtime = new XaCacheRuntime(cache, await connection.sqlRunner(), options);
  const follower = new OutsideChangesFollower(cache, await connection.sqlRunner(), options.outsideChangesIntervalMs ?? 1000);
  await follower.runNow();
  follower.start();
  runtime.onStop(() => follower.stop());
  await runtime.sweepNow();
  runtime.schedule();
  if ((options.sweepIntervalMs ?? 0) === 0) await runtime.scheduleFollowUp();
  return runtime;
}
