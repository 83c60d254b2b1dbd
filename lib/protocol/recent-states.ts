import type { CasToken } from '../store/cache-store.js';
import type { KnownState } from './cas-batch.js';
import type { DecodedEntry } from './entry.js';

/** Keys remembered at most; the one first written longest ago goes first. */
export const RECENT_STATES_CAPACITY = 8192;

/** A value's state as prepare needs it: only its kind decides the transition, so the payload is not kept. */
const VALUE_STUB: DecodedEntry = { kind: 'value', generations: new Map(), payload: Buffer.alloc(0) };
const ABSENT: KnownState = { entry: undefined, cas: undefined };

/**
 * What keys held when this process last read or wrote them, with the CAS token memcached gave then: a hit, a fill,
 * a promote. Prepare starts from these states and writes its locks by compare-and-swap at once, instead of reading
 * every key first (one memcached round trip less per commit, in the common case of a transaction that read through
 * the cache what it writes).
 *
 * A remembered state is a guess, never trusted: a write built on it is conditional on its token (or, for an absent
 * key, an `add`), so if the key changed since, memcached refuses it and the key is read and written again, as
 * without this. Only states whose prepare transition is such a conditional write are kept: values, generations and
 * absent keys. Locks are not, since joining one is a blind append.
 */
export class RecentStates {
  readonly #states = new Map<string, KnownState>();

  constructor(private readonly capacity: number = RECENT_STATES_CAPACITY) {}

  /** Records what `key` holds now (`entry` undefined: absent), or forgets it when that state cannot be used. */
  remember(key: string, entry: DecodedEntry | undefined, cas: CasToken | undefined): void {
    let state: KnownState | undefined;
    if (entry === undefined) state = ABSENT;
    else if (cas !== undefined && entry.kind === 'value') state = { entry: VALUE_STUB, cas };
    else if (cas !== undefined && entry.kind === 'generation') state = { entry, cas };
    // Overwritten in place (a hit on every read: no delete and re-insert, which would make the map rehash as it
    // fills with holes); so the oldest first written goes first, not the least recently used.
    if (state === undefined) this.#states.delete(key);
    else if (this.#states.set(key, state).size > this.capacity) this.#states.delete(this.#states.keys().next().value as string);
  }

  /** Forgets what `key` held (it changed in a way not worth remembering, or its write failed). */
  forget(key: string): void {
    this.#states.delete(key);
  }

  /** The remembered states of those of `keys` this process knows. */
  statesOf(keys: Iterable<string>): Map<string, KnownState> {
    const found = new Map<string, KnownState>();
    for (const key of keys) {
      const state = this.#states.get(key);
      if (state) found.set(key, state);
    }
    return found;
  }

  /** Forgets everything (e.g. the servers changed). */
  clear(): void {
    this.#states.clear();
  }

  get size(): number {
    return this.#states.size;
  }
}
