import type { MikroORM } from '@mikro-orm/core';
import { XaPostgreSqlDriver } from '../mikro-orm/xa-driver.js';
import { OperationsError } from './operations-error.js';
import { XaCacheRuntime, type RuntimeSweepOptions } from './xa-cache-runtime.js';

/** Options of {@link startXaCache}. The cache logs through MikroORM's logger (namespace `xa-cache`) unless its options gave a `logger`. */
export type StartXaCacheOptions = RuntimeSweepOptions;

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
  const runtime = new XaCacheRuntime(cache, await connection.sqlRunner(), options);
  await runtime.sweepNow();
  runtime.schedule();
  if ((options.sweepIntervalMs ?? 0) === 0) await runtime.scheduleFollowUp();
  return runtime;
}
