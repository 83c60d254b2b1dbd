/**
 * A collection read is two reads: the member ids (the collection entry, or the database) and then each member's
 * row (the row cache). MikroORM puts a loaded child into the collection of the owner its own foreign key names
 * (`EntityLoader.initializeOneToMany`), so a member whose row, read in a version the checker allows on its own
 * (stale within the outside-writers bound, say), names another group — or is absent — is silently left out. The
 * collection then equals no committed membership, yet each of its two halves was an allowed read. Members are
 * never added that way: only the rows of the ids read are loaded.
 */
import type { CommittedTx } from './schema.js';

/** Per item key (`i:<id>`): the group it was in after each of its versions (null: absent). */
export type ItemGroups = ReadonlyMap<string, ReadonlyMap<number, number | null>>;

/**
 * The group of every item at each of its versions. Item states do not record it; every writer that changes an
 * item's group records the memberships of both groups in the same transaction, so an item is in the group whose
 * membership in its own transaction lists it, or else still in the group of its previous version.
 */
export function itemGroups(history: readonly CommittedTx[]): ItemGroups {
  const listedIn = new Map<string, number>();
  const versions = new Map<string, Array<{ version: number; token: string | null; tx: string }>>();
  for (const tx of history) {
    for (const s of tx.states) {
      if (s.key.startsWith('g:') && s.members) for (const id of s.members) listedIn.set(`${tx.token}|i:${id}`, Number(s.key.slice(2)));
      if (s.key.startsWith('i:')) versions.set(s.key, [...(versions.get(s.key) ?? []), { version: s.version, token: s.token, tx: tx.token }]);
    }
  }
  const out = new Map<string, Map<number, number | null>>();
  for (const [key, list] of versions) {
    const groups = new Map<number, number | null>();
    let group: number | null = null;
    for (const s of list.sort((a, b) => a.version - b.version)) {
      group = s.token === null ? null : (listedIn.get(`${s.tx}|${key}`) ?? group);
      groups.set(s.version, group);
    }
    out.set(key, groups);
  }
  return out;
}

/** A membership the ids may have been read in, and the members left out with the row version that placed each elsewhere. */
export interface MemberRowsMix {
  readonly membership: number;
  readonly left: ReadonlyArray<{ readonly id: number; readonly version: number }>;
}

/**
 * Explains the members of group `g` a collection read returned as one allowed membership minus members whose row
 * was read in an allowed version that does not place them in `g`. `memberships`: the allowed states of the group
 * (its version and members); `rowVersions(id)`: the allowed versions of item `id`'s row. Newest membership first,
 * and for each left-out member its newest such row version.
 */
export function explainByMemberRows(
  observed: readonly number[],
  g: number,
  memberships: ReadonlyArray<{ readonly version: number; readonly members?: readonly number[] }>,
  rowVersions: (id: number) => readonly number[],
  groups: ItemGroups,
): MemberRowsMix | undefined {
  const seen = new Set(observed);
  for (const m of [...memberships].sort((a, b) => b.version - a.version)) {
    const members = m.members ?? [];
    if (!observed.every((id) => members.includes(id))) continue;
    const left: Array<{ id: number; version: number }> = [];
    for (const id of members.filter((x) => !seen.has(x))) {
      const at = groups.get(`i:${id}`);
      const version = [...rowVersions(id)].sort((a, b) => b - a).find((v) => at?.has(v) && at.get(v) !== g);
      if (version === undefined) break;
      left.push({ id, version });
    }
    if (left.length === members.length - observed.length) return { membership: m.version, left };
  }
  return undefined;
}
