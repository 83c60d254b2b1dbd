import { combineGenerations, isSpreadRegion, regionCopies, spreadCopyOn, type ProtocolContext } from './protocol-context.js';

/**
 * The current generation of each region, as a reader would record it (every copy read and holding a generation,
 * combined; for a spread region, each server's copy on its own), keyed by `generationGroup`: one multi-get, no
 * writes. A group with a copy that is absent, locked, foreign or unreachable has no entry: a value tagged with it
 * could not be trusted, so the caller must not store one.
 *
 * Write-through reads these before the database COMMIT (see `CacheTransaction.supplyValues`): a value tagged with a
 * generation read before the commit stops matching as soon as any region-wide write that commits afterwards
 * renews the region, exactly as a fill's does.
 */
export async function currentGenerations(ctx: Pick<ProtocolContext, 'store' | 'codec'>, regions: readonly string[]): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  if (regions.length === 0) return found;
  const groups = new Map<string, string[]>();
  for (const region of regions) {
    if (!isSpreadRegion(region)) groups.set(region, regionCopies(region, ctx.store));
    else for (const server of ctx.store.servers) groups.set(`${region}\n${server}`, [spreadCopyOn(region, server, ctx.store)]);
  }
  const fetched = await ctx.store.getMulti([...groups.values()].flat());
  for (const [group, keys] of groups) {
    const ids: string[] = [];
    for (const key of keys) {
      const item = fetched.failed.has(key) ? undefined : fetched.items.get(key);
      const entry = item ? ctx.codec.decode(key, item.value) : undefined;
      if (entry?.kind === 'generation') ids.push(entry.id);
    }
    if (ids.length === keys.length) found.set(group, combineGenerations(ids));
  }
  return found;
}
