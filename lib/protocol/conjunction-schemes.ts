import { v4 as uuidv4 } from 'uuid';
import type { MultiGetResult, StoreResult } from '../store/cache-store.js';
import { lockHolders } from './entry.js';
import { regionCopies, type ProtocolContext } from './protocol-context.js';

/**
 * Conjunction schemes (django-cacheops' word): per table, the column sets whose equality conjunctions cached query
 * results depend on. A result of `author_id = 3 AND published = true` depends on the region of that conjunction
 * instead of the whole table; a writer renews the conjunction regions its rows' old and new values fall in, for every
 * scheme of the table. See docs/protocol.md, "Conjunction regions", for why a scheme appearing while a writer runs
 * loses no invalidation.
 *
 * The set lives in memcached under `s:<table>` (a `value` entry, bound and sealed like every value) as
 * `{ v: <version>, s: [{ c: [columns], e: established }] }`. The version is a random UUID chosen when the set is
 * created and never changed afterwards: conjunction regions are named with it, so a set that memcached lost and
 * someone re-created names other regions, and no result read under the lost set is ever trusted again.
 */

/** Most schemes kept per table; queries of further column sets keep depending on the whole table. */
export const MAX_SCHEMES_PER_TABLE = 32;

/** Attempts of {@link SchemeRegistry.establish} against concurrent changes of the set. */
const ESTABLISH_ATTEMPTS = 3;

/** How long a process leaves a pending scheme alone before it looks at the in-flight region again. */
const RECHECK_MS = 20;

/** One scheme: its columns (sorted, so one column set has one name) and whether results may be cached under it. */
export interface Scheme {
  readonly columns: readonly string[];
  /**
   * Whether results may depend on it. A scheme is first added *pending* (writers from then on renew its regions) and
   * becomes established only once no writer that may have missed it is still in flight.
   */
  readonly established: boolean;
}

/** A table's scheme set as stored. */
export interface SchemeSet {
  /** Random, fixed at creation: part of every conjunction region's name. */
  readonly version: string;
  readonly schemes: readonly Scheme[];
}

/** What a read of a table's scheme key found. */
export type SchemeView =
  | { readonly state: 'set'; readonly set: SchemeSet }
  /** No set (never created, evicted, or bytes that are not ours): no result can be trusted under any scheme. */
  | { readonly state: 'absent' }
  /** The server did not answer: the writer cannot name conjunctions and must renew the table-wide generation. */
  | { readonly state: 'unreachable' };

/** Store key of a table's scheme set. Not a region: it holds a value. */
export function schemeKey(table: string): string {
  return `s:${table}`;
}

/** The one name of a column set. */
export function schemeName(columns: readonly string[]): string {
  return columns.join(',');
}

/** A read guard (see `ReadOptions.guard`): the set must still be this version, with this scheme established. */
export interface SchemeGuard {
  readonly key: string;
  holds(bytes: Buffer | undefined): boolean;
}

/**
 * Reads, registers and establishes schemes, and keeps the last set read per table in process: the read path names
 * conjunction regions from it without a round trip of its own, and checks it in the same multi-get as the result
 * (the {@link guard}).
 */
export class SchemeRegistry {
  readonly #known = new Map<string, { bytes: Buffer; set: SchemeSet | undefined }>();
  /** Schemes added pending, with the writers that may have missed them (see {@link establish}). */
  readonly #waiting = new Map<string, { version: string; holders: ReadonlySet<string>; notBefore: number }>();
  /** When a scheme that could not be established now may be tried again. */
  readonly #retryAt = new Map<string, number>();

  constructor(private readonly ctx: Pick<ProtocolContext, 'store' | 'codec' | 'stats'>) {}

  /** The set last read for a table in this process, if any. */
  cached(table: string): SchemeSet | undefined {
    return this.#known.get(table)?.set;
  }

  /** Forgets every set read (the data scope changed: keys name other data now). */
  forget(): void {
    this.#known.clear();
    this.#waiting.clear();
    this.#retryAt.clear();
  }

  /** Decodes what was read under a table's scheme key, and remembers it. */
  observe(table: string, bytes: Buffer | undefined): SchemeView {
    if (bytes === undefined) {
      this.#known.delete(table);
      return { state: 'absent' };
    }
    const last = this.#known.get(table);
    if (last && last.bytes.equals(bytes)) return last.set ? { state: 'set', set: last.set } : { state: 'absent' };
    const set = this.#decode(table, bytes);
    this.#known.set(table, { bytes, set });
    return set ? { state: 'set', set } : { state: 'absent' };
  }

  /** The view of a table's scheme set from the answer to a `get` of its key sent along other requests. */
  viewOf(table: string, result: StoreResult | undefined): SchemeView {
    if (!result || result.status === 'error') return { state: 'unreachable' };
    return this.observe(table, result.status === 'hit' ? result.item.value : undefined);
  }

  /** Reads the scheme sets of tables now (one multi-get). */
  async read(tables: Iterable<string>): Promise<Map<string, SchemeView>> {
    const list = [...new Set(tables)];
    const views = new Map<string, SchemeView>();
    if (list.length === 0) return views;
    const fetched = await this.ctx.store.getMulti(list.map(schemeKey));
    for (const table of list) {
      const key = schemeKey(table);
      if (fetched.failed.has(key)) views.set(table, { state: 'unreachable' });
      else views.set(table, this.observe(table, fetched.items.get(key)?.value));
    }
    return views;
  }

  /**
   * A guard for reads of results cached under `columns` of the set `version`: it holds while the scheme key still
   * holds that version with the scheme established. Reading it updates what this process knows.
   */
  guard(table: string, columns: readonly string[], version: string): SchemeGuard {
    const name = schemeName(columns);
    return {
      key: schemeKey(table),
      holds: (bytes) => {
        const view = this.observe(table, bytes);
        return view.state === 'set' && view.set.version === version && view.set.schemes.some((s) => s.established && schemeName(s.columns) === name);
      },
    };
  }

  /**
   * Makes `columns` an established scheme of `table` when it can, in steps that never wait:
   *
   * 1. add it pending (compare-and-swap on the set): from then on every writer that reads the set renews its
   *    conjunctions;
   * 2. read every copy of `inFlightRegion` — the region every writer of the table locks *before* it reads the set —
   *    strictly after the scheme was seen in the set: its holders `H` are the only writers that may have read the
   *    set without the scheme (per-key linearizability: a writer that joined later read the set later);
   * 3. at a later call, once no copy lists a holder of `H` any more (each committed or rolled back), mark it
   *    established (compare-and-swap against the set read in the same round trip).
   *
   * Resolves to the set when the scheme is established in it, else undefined (results keep depending on the table
   * for now; the next call goes on from where this one stopped).
   */
  async establish(table: string, columns: readonly string[], inFlightRegion: string): Promise<SchemeSet | undefined> {
    const id = `${table}|${schemeName(columns)}`;
    const waiting = this.#waiting.get(id);
    if (waiting && Date.now() < waiting.notBefore) return undefined;
    if ((this.#retryAt.get(id) ?? 0) > Date.now()) return undefined;
    const set = await this.#establish(table, columns, inFlightRegion, id);
    // Not now (a full set, an unreachable server, lost races): the queries of the next few ms pay no round trip for it.
    if (set) this.#retryAt.delete(id);
    else {
      if (this.#retryAt.size >= 10_000) this.#retryAt.clear();
      this.#retryAt.set(id, Date.now() + RECHECK_MS);
    }
    return set;
  }

  async #establish(table: string, columns: readonly string[], inFlightRegion: string, id: string): Promise<SchemeSet | undefined> {
    const { store } = this.ctx;
    const key = schemeKey(table);
    const name = schemeName(columns);
    const copies = regionCopies(inFlightRegion, store);
    for (let attempt = 0; attempt < ESTABLISH_ATTEMPTS; attempt++) {
      const fetched = await store.getMulti([key, ...copies]);
      if (fetched.failed.has(key)) return undefined;
      const item = fetched.items.get(key);
      const view = this.observe(table, item?.value);
      const known = view.state === 'set' ? view.set.schemes.find((s) => schemeName(s.columns) === name) : undefined;
      if (view.state === 'set' && known?.established) {
        this.#waiting.delete(id);
        return view.set;
      }
      let current: SchemeSet;
      let cas = item?.cas;
      const wait = this.#waiting.get(id);
      if (known !== undefined && wait && view.state === 'set' && wait.version === view.set.version) {
        // Step 3: this round trip read the region after the holders were recorded.
        const now = holdersOf(copies, fetched, this.ctx);
        if (now === undefined || [...wait.holders].some((h) => now.has(h))) {
          wait.notBefore = Date.now() + RECHECK_MS;
          return undefined;
        }
        current = view.set;
      } else {
        if (known === undefined) {
          // Step 1.
          if (view.state === 'set' && view.set.schemes.length >= MAX_SCHEMES_PER_TABLE) return undefined;
          current = view.state === 'set' ? { version: view.set.version, schemes: [...view.set.schemes, { columns: [...columns], established: false }] } : { version: uuidv4(), schemes: [{ columns: [...columns], established: false }] };
          const value = this.#encode(key, current);
          const [added] = await store.execute([item ? { op: 'cas', key, value, ttl: 0, cas: item.cas } : { op: 'add', key, value, ttl: 0 }] as const);
          if (added.status !== 'stored') continue;
          this.observe(table, value);
          cas = added.cas;
        } else current = (view as { set: SchemeSet }).set;
        // Step 2: a read of the in-flight region that starts after the scheme was seen in the set.
        const holders = holdersOf(copies, await store.getMulti(copies), this.ctx);
        if (holders === undefined) return undefined;
        if (holders.size > 0) {
          this.#waiting.set(id, { version: current.version, holders, notBefore: Date.now() + RECHECK_MS });
          return undefined;
        }
      }
      const established: SchemeSet = { version: current.version, schemes: current.schemes.map((s) => (schemeName(s.columns) === name ? { columns: s.columns, established: true } : s)) };
      const value = this.#encode(key, established);
      const [marked] = await store.execute([{ op: 'cas', key, value, ttl: 0, cas: cas! }] as const);
      if (marked.status === 'stored') {
        this.#waiting.delete(id);
        this.observe(table, value);
        return established;
      }
    }
    return undefined;
  }

  #encode(key: string, set: SchemeSet): Buffer {
    const payload = Buffer.from(JSON.stringify({ v: set.version, s: set.schemes.map((s) => ({ c: s.columns, e: s.established })) }));
    return this.ctx.codec.encode(key, { kind: 'value', generations: new Map(), payload });
  }

  #decode(table: string, bytes: Buffer): SchemeSet | undefined {
    const entry = this.ctx.codec.decode(schemeKey(table), bytes);
    if (entry.kind !== 'value') {
      if (entry.kind === 'foreign') this.ctx.stats.foreignEntries++;
      return undefined;
    }
    try {
      const parsed = JSON.parse(entry.payload.toString('utf8')) as { v?: unknown; s?: unknown };
      if (typeof parsed.v !== 'string' || !Array.isArray(parsed.s) || parsed.s.length > MAX_SCHEMES_PER_TABLE) return undefined;
      const schemes: Scheme[] = [];
      for (const s of parsed.s as Array<{ c?: unknown; e?: unknown }>) {
        if (!Array.isArray(s.c) || !s.c.every((c) => typeof c === 'string') || typeof s.e !== 'boolean') return undefined;
        schemes.push({ columns: s.c as string[], established: s.e });
      }
      return { version: parsed.v, schemes };
    } catch {
      return undefined;
    }
  }
}


/**
 * The holders of a region's copies as read, or undefined when they cannot be known: a copy unreachable, or bytes
 * that are not ours (they may have replaced a writer's lock: unknown, never "no writer").
 */
function holdersOf(copies: readonly string[], fetched: MultiGetResult, ctx: Pick<ProtocolContext, 'codec'>): Set<string> | undefined {
  const holders = new Set<string>();
  for (const copy of copies) {
    if (fetched.failed.has(copy)) return undefined;
    const item = fetched.items.get(copy);
    if (!item) continue;
    const entry = ctx.codec.decode(copy, item.value);
    if (entry.kind === 'foreign') return undefined;
    if (entry.kind === 'lock') for (const holder of lockHolders(entry)) holders.add(holder);
  }
  return holders;
}
