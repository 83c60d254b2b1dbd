import { combineGenerations, regionCopies, type ProtocolContext } from './protocol-context.js';

/**
 * The current generation of each region, as a reader would record it (every copy read and holding a generation,
 * combined): one multi-get, no writes. A region with a copy that is absent, locked, foreign or unreachable has no
 * entry: a value tagged with it could not be trusted, so the caller must not store one.
 *
 * Write-through reads these before the database COMMIT (see `CacheTransaction.supplyValues`): a value tagged with a
 * generation read before the commit stops matching as soon as any region-wide write that commits afterwards
 * renews the region, exactly as a fill's does.
 */
export async function currentGenerations(ctx: Pick<ProtocolContext, 'store' | 'codec'>, regions: readonly string[]): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  if (regions.length === 0) return found;
  const copies = regions.map((region) => regionCopies(region, ctx.store));
  const fetched = await ctx.store.getMulti(copies.flat());
  regions.forEach((region, i) => {
    const ids: string[] = [];
    for (const key of copies[i] as string[]) {
      const item = fetched.failed.has(key) ? undefined : fetched.items.get(key);
      const entry = item ? ctx.codec.decode(key, item.value) : undefined;
      if (entry?.kind !== 'generation') return;
      ids.push(entry.id);
    }
    found.set(region, combineGenerations(ids));
  });
  return found;
}
