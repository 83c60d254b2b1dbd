import type { MikroORM } from '@mikro-orm/core';
import { XaPostgreSqlDriver } from '../mikro-orm/xa-driver.js';
import { OperationsError } from './operations-error.js';
import { OutsideChangesFollower } from './outside-changes-follower.js';
import { captureTargets, verifyWriteCapture } from '../mikro-orm/write-capture-setup.js';
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
  /**
   * Check the outside-changes feed every this many milliseconds (0: never); the elected follower also applies
   * it then, besides at once on every notification. Default 1000.
   */
  readonly outsideChangesIntervalMs?: number;
  /**
   * Stop serving from the cache (reads go to the database) when outside writers' changes cannot be vouched for
   * within this many milliseconds: the oldest unapplied change is older, or the feed could not be read or
   * applied for that long. Default 30000.
   */
  readonly outsideChangesMaxLagMs?: number;
  /**
   * `elected` (default): the process holding an advisory lock on a connection of its own applies the feed,
   * woken by `NOTIFY`; the others only check it. `every`: every process applies it on its interval, no extra
   * connection (the behaviour before election). `none`: this process neither applies nor checks (a sidecar,
   * `mikro-orm-xa-cache follow`, does).
   */
  readonly outsideChangesFollower?: 'elected' | 'every' | 'none';
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
  const runtime = new XaCacheRuntime(cache, await connection.sqlRunner(), options);
  const mode = options.outsideChangesFollower ?? 'elected';
  if (mode !== 'none') {
    const follower = followerOf(orm, options, mode === 'elected');
    runtime.attachFollower(follower);
    await follower.start();
  }
  await runtime.sweepNow();
  runtime.schedule();
  if ((options.sweepIntervalMs ?? 0) === 0) await runtime.scheduleFollowUp();
  return runtime;
}

/**
 * The outside-changes follower of an ORM started with `withXaCache`: elected (a session of its own for the lock
 * and LISTEN) or not; serving stops in this ORM while it says the feed is down. Not started.
 */
export function followerOf(orm: MikroORM, options: Pick<StartXaCacheOptions, 'outsideChangesIntervalMs' | 'outsideChangesMaxLagMs' | 'captureSchemas'>, elected: boolean): OutsideChangesFollower {
  const driver = orm.em.getDriver();
  if (!(driver instanceof XaPostgreSqlDriver)) throw OperationsError.notXaOrm(driver.constructor.name);
  const connection = driver.xaConnection;
  const intervalMs = options.outsideChangesIntervalMs ?? 1000;
  const maxLagMs = options.outsideChangesMaxLagMs ?? 30_000;
  if (!Number.isInteger(intervalMs) || intervalMs < 0) throw OperationsError.invalid('outsideChangesIntervalMs', intervalMs, 'a whole number of milliseconds, 0 or more');
  if (!Number.isInteger(maxLagMs) || maxLagMs <= intervalMs) throw OperationsError.invalid('outsideChangesMaxLagMs', maxLagMs, 'a whole number of milliseconds, more than outsideChangesIntervalMs');
  return new OutsideChangesFollower(connection.cache.xa, { query: async (sql, params) => (await connection.sqlRunner()).query(sql, params) }, {
    intervalMs,
    maxLagMs,
    ...(elected ? { session: () => connection.sessionClient('mikro-orm-xa-cache follower') } : {}),
    // Tables this process stopped caching (writeCapture: 'warn') may lack capture: nothing of theirs is served.
    tables: async () =>
      (await captureTargets(orm, options.captureSchemas ? { schemas: options.captureSchemas } : {})).filter((t) => !connection.cache.stoppedTables.has(`${t.schema}.${t.logicalTable ?? t.table}`)),
    onSuspend: (reason) => (connection.cache.servingSuspended = reason),
    onUncaptured: (tables) => connection.cache.suspendTables(tables),
  });
}
