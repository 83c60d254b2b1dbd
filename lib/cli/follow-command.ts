import { MikroORM, type Options } from '@mikro-orm/core';
import { startXaCache } from '../operations/start-xa-cache.js';
import type { XaCacheRuntime } from '../operations/xa-cache-runtime.js';
import type { OutsideFeedHealth } from '../operations/feed-health.js';
import { XaPostgreSqlDriver } from '../mikro-orm/xa-driver.js';
import type { CliConfig } from './cli-config.js';
import type { CommandOptions } from './command-options.js';
import { CliError, EXIT, describe } from './cli-errors.js';
import type { CliOutput } from './cli-output.js';
import { formatAge } from './text-table.js';
import { stopSignal } from './stop-signal.js';
import { showCatchUp } from './catch-up-progress.js';
import { ProgressLine } from './progress-line.js';

/**
 * `follow`: a sidecar that applies outside writers' changes (psql, other services, migrations) until
 * SIGINT/SIGTERM. It starts the application's ORM from its MikroORM config — the entity metadata is what maps
 * a changed row to cache keys — with `--db`, `--memcached`, `--namespace` and `--log-table` taking precedence,
 * and competes for the follower lock like any application process: with several sidecars (or applications)
 * one follows and the others stand by. Prints a line whenever its role or the feed's health changes.
 */
export async function followCommand(config: CliConfig, v: CommandOptions, io: CliOutput): Promise<number> {
  if (!config.ormConfig) throw CliError.config('follow needs the MikroORM config (its entities name what a changed row invalidates)', 'give --config FILE (the compiled .js config)');
  const orm = await MikroORM.init(ormOptions(config));
  if (!(orm.em.getDriver() instanceof XaPostgreSqlDriver)) {
    await orm.close(true);
    throw CliError.config(`the MikroORM config ${config.configFile} does not use the cache`, 'wrap it with withXaCache(config, { servers })');
  }
  const signal = stopSignal();
  try {
    const caughtUp = await showCatchUp(orm, ProgressLine.of(io, v));
    let runtime: XaCacheRuntime;
    try {
      runtime = await startXaCache(orm, {
        writeCapture: 'warn',
        outsideChangesFollower: 'elected',
        outsideChangesIntervalMs: v.intervalMs,
        outsideChangesMaxLagMs: v.maxLagMs,
        ...(v.schemas.length > 0 ? { captureSchemas: v.schemas } : {}),
      });
    } finally {
      caughtUp();
    }
    let last = '';
    try {
      while (!signal.stopping) {
        const health = runtime.follower?.health;
        const line = health ? stateLine(health) : 'not following';
        if (line !== last || (!v.quiet && v.json)) {
          io.out(v.json ? JSON.stringify({ at: new Date().toISOString(), ...health }) : `${new Date().toISOString()} ${line}`);
          last = line;
        }
        await signal.pause(v.intervalMs);
      }
    } finally {
      await runtime.stop();
    }
  } catch (error) {
    io.err(`mikro-orm-xa-cache: follow stopped: ${describe(error)}`);
    return EXIT.failed;
  } finally {
    signal.release();
    await orm.close(true);
  }
  return EXIT.ok;
}

/** The application's config with the tool's connection settings laid over it. */
function ormOptions(config: CliConfig): Options {
  const raw = config.ormConfig as unknown as Options & { resultCache?: { options?: Record<string, unknown> } };
  const url = typeof config.pg.connectionString === 'string' ? config.pg.connectionString : undefined;
  return {
    ...raw,
    ...(url ? { clientUrl: url } : {}),
    debug: false,
    resultCache: { ...raw.resultCache, options: { ...raw.resultCache?.options, servers: config.memcached, namespace: config.namespace, logTable: config.logTable } },
  } as Options;
}

/** One line of state: role, lag, and why serving is suspended (what the application processes decide too). */
function stateLine(h: OutsideFeedHealth): string {
  const role = h.leading ? 'following (holds the follower lock)' : 'standing by (another process follows)';
  const lag = h.lagMs === undefined ? 'lag unknown' : h.lagMs < 1000 ? 'lag < 1s' : `lag ${formatAge(h.lagMs)}`;
  const down = h.suspended ? `; FEED DOWN: ${h.suspended}` : '';
  const error = h.lastError && !h.suspended ? `; last error: ${h.lastError}` : '';
  return `${role}, ${lag}${down}${error}`;
}
