import type { MikroORM } from '@mikro-orm/core';
import type { XaCacheAdapter } from '../mikro-orm/xa-cache-adapter.js';
import type { ProgressLine } from './progress-line.js';
import { formatCount } from './text-table.js';

/** How often the line is refreshed while the backlog is applied (the counter it reads is in memory). */
const REFRESH_MS = 200;

/**
 * `follow` at start: `startXaCache` applies the whole backlog of outside changes (the changes committed while no
 * follower ran) before it returns, which on a big backlog is the long, silent part of starting. This draws
 * `catching up on outside changes: 1,500 of 40,000 applied` until the returned function is called.
 * The total is the change table's rows when it starts; changes committed meanwhile are applied too.
 */
export async function showCatchUp(orm: MikroORM, progress: ProgressLine): Promise<() => void> {
  const idle = (): void => undefined;
  if (!progress.enabled) return idle;
  const { xa } = orm.config.getResultCacheAdapter() as XaCacheAdapter;
  let pending: number;
  try {
    const rows = await orm.em.getConnection().execute<Array<{ n: number }>>(`SELECT count(*)::int AS n FROM ${xa.capture.table}`);
    pending = rows[0]?.n ?? 0;
  } catch {
    // No change table (capture not installed): there is nothing to catch up on, and startXaCache says what is wrong.
    return idle;
  }
  if (pending === 0) return idle;
  const base = xa.stats.outsideChanges;
  const draw = (): void => {
    const applied = xa.stats.outsideChanges - base;
    progress.update(`catching up on outside changes: ${formatCount(applied)}${applied <= pending ? ` of ${formatCount(pending)}` : ''} applied`);
  };
  draw();
  const timer = setInterval(draw, REFRESH_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    progress.clear();
  };
}
