/**
 * Operations of the consistency checker, what a worker answers, and the seeded generator that picks them.
 * Everything here is plain data: it crosses the IPC channel and is written to the run's log.
 */
import { CODES, GROUPS, ITEMS, tagOf } from './schema.js';

/**
 * How a write reaches the database: the unit of work, `nativeUpdate`, raw `em.execute`, and ways only the
 * database reports: `em.getKysely()` in the transaction, an insert into `c_touch` whose trigger updates the item,
 * `SELECT c_set_item(...)` (a function with a side effect).
 */
export type WriteVia = 'flush' | 'nativeUpdate' | 'execute' | 'kysely' | 'trigger' | 'function';

export type Op =
  | { kind: 'read'; id: number }
  | { kind: 'readMany'; ids: number[] }
  | { kind: 'group'; g: number }
  | { kind: 'count'; g: number }
  | { kind: 'query'; g: number }
  | { kind: 'update'; ids: number[]; via: WriteVia; rollback?: boolean }
  /** `em.nativeDelete(CTag, tag)`: the database deletes the tag's items (ON DELETE CASCADE); the tag is re-created. */
  | { kind: 'cascade'; tag: number; rollback: boolean }
  /** One autocommitted `insertInto('c_kwrite')` through `em.getKysely()` outside a transaction: its trigger writes the item and the history. */
  | { kind: 'kyselyOutside'; id: number }
  /** A transaction made REPEATABLE READ by `SET TRANSACTION` sent through `em.execute`, that reads (checked against its snapshot) and writes. */
  | { kind: 'rrWrite'; ids: number[]; rollback: boolean }
  | { kind: 'move'; id: number; to: number }
  /** Inserted with `code` if the code is free then, else with none. */
  | { kind: 'insert'; id: number; g: number; code: string }
  /** Lookups by the unique key `code`: `findOne(CItem, { code })`, or `find(CItem, { code: [...] })` for two. */
  | { kind: 'byCode'; codes: string[] }
  /** Gives item `id` the code: moves it there if the code is free, swaps codes with its holder if not. */
  | { kind: 'recode'; id: number; code: string; via: 'flush' | 'execute' | 'kysely' }
  | { kind: 'delete'; id: number }
  | { kind: 'multi'; ids: number[]; moveId: number | null; to: number; rollback: boolean }
  | { kind: 'savepoint'; outer: number; inner: number }
  | { kind: 'rr'; ids: number[]; g: number; pauseMs: number }
  /** The external writer (a plain `pg` client, not the library): items' versions and tokens, in one transaction. */
  | { kind: 'extUpdate'; ids: number[] }
  /** The external writer: an item moved to group `to` (both groups' versions bumped, as a library move does). */
  | { kind: 'extMove'; id: number; to: number };

/** What a worker is asked to do at a protocol phase of this op's transaction (fault injection). */
export type PhaseMode = 'crash-mid-promote' | 'hold-mid-promote' | undefined;

/** One thing a read saw. */
export type Observation =
  /** An item or group row (`i:<id>`, `g:<id>`): token null = absent. */
  | { key: string; token: string | null; version: number | null }
  /** A collection, or the ids of a cached query, of group g: `m:<g>` with the member ids, sorted. */
  | { key: string; members: number[]; via: 'collection' | 'query' }
  /** A cached count of group g's members: `n:<g>`. */
  | { key: string; count: number }
  /** A lookup by code: `k:<code>` with the id of the item it returned, null for none. */
  | { key: string; owner: number | null };

export interface OpResult {
  readonly ok: boolean;
  readonly error?: string;
  /** Reads outside a transaction, or inside a READ COMMITTED one before it wrote. */
  readonly obs: Observation[];
  /** Reads inside a REPEATABLE READ transaction, with its snapshot (`pg_current_snapshot()`). */
  readonly rr?: { snapshot: string; obs: Observation[] };
  /** The token of the transaction that was to commit. */
  readonly token?: string;
  /** Tokens of rolled-back transactions or savepoints. */
  readonly rolledBack?: string[];
  /** Own-write checks that failed inside the transaction (G4). */
  readonly ownWriteFailures?: string[];
  /** Keys its transaction committed without locking them (failure policy `degrade`; up to 20 per transaction). */
  readonly degraded?: string[];
  /** The external writer: when its COMMIT was acknowledged (epoch ms, `performance.timeOrigin + performance.now()`). */
  readonly ackAt?: number;
}

/** A small, seedable PRNG (mulberry32), so an op stream is reproducible from its seed. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)] as T;
  }
  distinct(count: number, lo: number, hi: number): number[] {
    const out = new Set<number>();
    while (out.size < count) out.add(this.int(lo, hi));
    return [...out].sort((a, b) => a - b);
  }
}

/**
 * The op mix: about half reads (rows, collections, queries), half writes of every kind. `extraReads` replaces that
 * share of the ops with plain reads of rows and collections, `predicateShare` with cached group queries and moves
 * between groups (0: the mix as is, the stream of a seed unchanged).
 */
export function nextOp(rng: Rng, codeShare = 0.125, extraReads = 0, predicateShare = 0): Op {
  if (extraReads > 0 && rng.next() < extraReads) {
    const pick = rng.next();
    if (pick < 0.6) return { kind: 'read', id: rng.int(1, ITEMS) };
    if (pick < 0.8) return { kind: 'readMany', ids: rng.distinct(3, 1, ITEMS) };
    return { kind: 'group', g: rng.int(1, GROUPS) };
  }
  const r = rng.next();
  const id = rng.int(1, ITEMS);
  const g = rng.int(1, GROUPS);
  const code = rng.pick(CODES);
  // Cached queries of one group (a conjunction, docs/usage.md) while items move in and out of groups.
  if (predicateShare > 0 && rng.next() < predicateShare) return r < 0.7 ? { kind: 'query', g } : { kind: 'move', id, to: g };
  // Lookups by the unique key and writes that change which item holds a code: an eighth of the mix by default.
  if (rng.next() < codeShare) {
    if (r < 0.65) return { kind: 'byCode', codes: rng.next() < 0.75 ? [code] : [...new Set([code, rng.pick(CODES)])] };
    return { kind: 'recode', id, code, via: rng.pick(['flush', 'flush', 'execute', 'kysely'] as const) };
  }
  if (r < 0.2) return { kind: 'read', id };
  if (r < 0.27) return { kind: 'readMany', ids: rng.distinct(3, 1, ITEMS) };
  if (r < 0.35) return { kind: 'group', g };
  if (r < 0.4) return { kind: 'count', g };
  if (r < 0.45) return { kind: 'query', g };
  if (r < 0.53) return { kind: 'update', ids: rng.distinct(rng.int(1, 2), 1, ITEMS), via: rng.pick(['flush', 'flush', 'nativeUpdate', 'execute'] as const) };
  // Writes only the database reports, a quarter of them rolled back.
  if (r < 0.61) return { kind: 'update', ids: rng.distinct(rng.int(1, 2), 1, ITEMS), via: rng.pick(['kysely', 'trigger', 'function'] as const), rollback: rng.next() < 0.25 };
  if (r < 0.63) return { kind: 'cascade', tag: tagOf(id), rollback: rng.next() < 0.25 };
  if (r < 0.65) return { kind: 'kyselyOutside', id };
  if (r < 0.67) return { kind: 'rrWrite', ids: rng.distinct(rng.int(1, 2), 1, ITEMS), rollback: rng.next() < 0.25 };
  if (r < 0.72) return { kind: 'move', id, to: g };
  if (r < 0.77) return { kind: 'insert', id, g, code };
  if (r < 0.80) return { kind: 'delete', id };
  if (r < 0.89) return { kind: 'multi', ids: rng.distinct(rng.int(2, 3), 1, ITEMS), moveId: rng.next() < 0.5 ? id : null, to: g, rollback: rng.next() < 0.3 };
  if (r < 0.93) {
    const [outer, inner] = rng.distinct(2, 1, ITEMS) as [number, number];
    return rng.next() < 0.5 ? { kind: 'savepoint', outer, inner } : { kind: 'savepoint', outer: inner, inner: outer };
  }
  return { kind: 'rr', ids: rng.distinct(3, 1, ITEMS), g, pauseMs: rng.int(5, 40) };
}

/** The external writer's mix: one or two items updated (three quarters), or an item moved to another group. */
export function nextExternalOp(rng: Rng): Op {
  if (rng.next() < 0.75) return { kind: 'extUpdate', ids: rng.distinct(rng.int(1, 2), 1, ITEMS) };
  return { kind: 'extMove', id: rng.int(1, ITEMS), to: rng.int(1, GROUPS) };
}

/** Ops of the external writer, whose commits are held to the outside-writers bound (G13) rather than to G2. */
export const isExternal = (op: Op): boolean => op.kind === 'extUpdate' || op.kind === 'extMove';

export const isWrite = (op: Op): boolean => !['read', 'readMany', 'group', 'count', 'query', 'rr', 'byCode'].includes(op.kind);
