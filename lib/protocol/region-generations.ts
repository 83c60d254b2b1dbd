import { combineGenerations, isSpreadRegion, regionCopies, spreadCopyOn, type ProtocolContext } from './protocol-context.js';

/**
 * The current generation of each region, as a reader would record it (every copy read and holding a generation,
 * combined; for a spread region, each server's copy on its own), keyed by `generationGroup`: one multi-get, no
 * writes. A group with a copy that is absent, locked, foreign or unreachable has no entry: a value tagged with it
 * could not be trusted, so the caller must not store one.
 *
 * Write-through reads these before the database COMMIT (see `CacheTransaction.supplyValues`; most often in the
 * same socket write as prepare's locks, `CacheTransaction.readGenerationsWithPrepare`): a value tagged with a
 * generation read before the commit stops matching as soon as any region-wide write that commits afterwards
 * renews the region, exactly as a fill's does.
 */
export async function currentGenerations(ctx: Pick<ProtocolContext, 'store' | 'codec'>, regions: readonly string[]): Promise<Map<string, string>> {
  if (regions.length === 0) return new Map();
  const groups = generationReadKeys(ctx, regions);
  const fetched = await ctx.store.getMulti([...groups.values()].flat());
  return generationsFrom(ctx, groups, (key) => (fetched.failed.has(key) ? undefined : fetched.items.get(key)?.value));
}

/** The keys {@link currentGenerations} reads, by generation group. */
export function generationReadKeys(ctx: Pick<ProtocolContext, 'store'>, regions: Iterable<string>): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const region of regions) {
    if (!isSpreadRegion(region)) groups.set(region, regionCopies(region, ctx.store));
    else for (const server of ctx.store.servers) groups.set(`${region}\n${server}`, [spreadCopyOn(region, server, ctx.store)]);
  }
  return groups;
}

/** The generations of `groups` from what their keys held (`bytes`: undefined when absent or unreachable). */
export function generationsFrom(ctx: Pick<ProtocolContext, 'codec'>, groups: ReadonlyMap<string, readonly string[]>, bytes: (key: string) => Buffer | undefined): Map<string, string> {
  const found = new Map<string, string>();
  for (const [group, keys] of groups) {
    const ids: string[] = [];
    for (const key of keys) {
      const value = bytes(key);
      const entry = value ? ctx.codec.decode(key, value) : undefined;
      if (entry?.kind === 'generation') ids.push(entry.id);
    }
    if (ids.length === keys.length) found.set(group, combineGenerations(ids));
  }
  return found;
}
