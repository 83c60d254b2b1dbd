import type { MikroORM } from '@mikro-orm/core';
import type { ServerProbe } from '../store/cache-store.js';
import { XaPostgreSqlDriver } from '../mikro-orm/xa-driver.js';
import { OperationsError } from './operations-error.js';
import { OutsideChangesFollower } from './outside-changes-follower.js';
import { captureTargets, verifyWriteCapture } from '../mikro-orm/write-capture-setup.js';
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
  /**
   * Whether to reject when no memcached server answers the startup probe (default true). With false, the cache
   * starts anyway and logs a warning: reads go to the database and writes follow the failure policy until a
   * server answers. Servers that do not answer while others do are always only logged (and counted).
   */
  readonly requireMemcached?: boolean;
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
 * First it probes every memcached server (connect within `connectTimeoutMs`, one `get` within `timeoutMs`). If none
 * answers it rejects, naming them (unless `requireMemcached: false`: then it warns). Servers that do not answer
 * while others do are logged as a warning naming them and counted in `stats.serversUnreachableAtStart`; the
 * probe's results are in `runtime.memcachedAtStart`.
 *
 * Rejects when a declared `uniqueKeys` entry has no unique index on exactly its columns in the database
 * (`XaConfigError` naming the entity, table and columns).
 *
 * Rejects if the startup sweep fails (the database refused the log statements): the cache would still be
 * correct, but an operator should know. A memcached server that is down does not reject (as long as one answers);
 * its keys stay in doubt (`runtime.lastSweep.unresolved`) for the next sweep.
 */
export async function startXaCache(orm: MikroORM, options: StartXaCacheOptions = {}): Promise<XaCacheRuntime> {
  if (!(await orm.isConnected())) await orm.connect();
  const driver = orm.em.getDriver();
  if (!(driver instanceof XaPostgreSqlDriver)) throw OperationsError.notXaOrm(driver.constructor.name);
  const connection = driver.xaConnection;
  const cache = connection.cache.xa;
  const probes = (await cache.store.probe?.()) ?? [];
  const unreachable = probes.filter((p) => !p.reachable);
  cache.stats.serversUnreachableAtStart += unreachable.length;
  if (unreachable.length > 0) {
    const named = unreachable.map((p) => `${p.server} (${p.error?.message ?? 'no answer'})`).join(', ');
    const servers = unreachable.map((p) => p.server);
    if (unreachable.length < probes.length) {
      cache.options.logger?.('warn', `memcached unreachable at startup: ${named}; keys on ${unreachable.length === 1 ? 'it' : 'them'} are read from the database and writes to them follow the failure policy until ${unreachable.length === 1 ? 'it answers' : 'they answer'}`, { servers });
    } else if (options.requireMemcached ?? true) {
      throw OperationsError.memcachedUnreachable(unreachable);
    } else {
      cache.options.logger?.('warn', `no memcached server answered at startup (${named}); starting anyway (requireMemcached: false): reads go to the database and writes follow the failure policy until one answers`, { servers });
    }
  }
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
  (runtime as { memcachedAtStart: readonly ServerProbe[] }).memcachedAtStart = probes;
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
    // The follower's check answers the capture gate's question afresh every round (over every captured table,
    // tenant schemas included); stopped, it leaves the gate to check again on its own.
    onUncaptured: (tables) => (tables === undefined ? connection.cache.captureGate.recheck() : connection.cache.captureGate.report(tables)),
  });
}
