import type { CacheStore, CasToken, StoreOp, StoreResult } from '../store/cache-store.js';
import type { StoreError } from '../store/store-errors.js';
import { lockHolders, type DecodedEntry, type LockRecord } from './entry.js';
import { encodeLockRecords } from './entry-codec.js';
import type { EntryCodec } from './entry-sealer.js';
import { afterTransition, type Transition } from './key-transitions.js';

/** What a key is known to hold, with the token to change it. */
export interface KnownState {
  readonly entry: DecodedEntry | undefined;
  readonly cas: CasToken | undefined;
}

/** How a transition on one key ended. */
export type TransitionOutcome =
  | { readonly status: 'done'; readonly state: KnownState }
  | { readonly status: 'failed'; readonly error: StoreError }
  | { readonly status: 'contended' };

/** TTLs, in seconds, for each TTL class of {@link Transition}. */
export interface TransitionTtls {
  readonly lock: number;
  readonly forever: number;
  value(key: string): number;
}

/**
 * Moves many keys through a transition with compare-and-swap, all keys of one round in one pipelined
 * {@link CacheStore.execute} call: round one reads the keys (unless their state is already known from an earlier
 * write), round two writes (replacements and deletions by compare-and-swap, lock joins and leaves by atomic
 * append); only keys that lost a race are read and written again, up to `maxRounds` times.
 * A key's transition is recomputed from what it holds now each time, so the result is as if the transition had
 * been applied atomically; `decide` learns how many times the key lost a race already (`attempt`), so it can
 * prefer a transition that cannot lose (an append) to one that can.
 */
export async function applyTransitions(
  store: CacheStore,
  keys: readonly string[],
  decide: (key: string, current: DecodedEntry | undefined, attempt: number) => Transition,
  ttls: TransitionTtls,
  options: { codec: EntryCodec; known?: ReadonlyMap<string, KnownState>; maxRounds: number; onForeign?: (key: string) => void; readAfter?: ReadAfterWrites },
): Promise<Map<string, TransitionOutcome>> {
  const outcomes = new Map<string, TransitionOutcome>();
  const known = new Map<string, KnownState>();
  const attempts = new Map<string, number>();
  const readAfter = options.readAfter;
  let readAfterSent = false;
  let toRead: string[] = [];
  for (const key of keys) {
    const state = options.known?.get(key);
    if (state) known.set(key, state);
    else toRead.push(key);
  }
  for (let round = 0; round < options.maxRounds && (toRead.length > 0 || known.size > 0); round++) {
    if (toRead.length > 0) {
      const read = await store.getMulti(toRead);
      for (const key of toRead) {
        const failure = read.failed.get(key);
        if (failure) {
          outcomes.set(key, { status: 'failed', error: failure });
          continue;
        }
        const item = read.items.get(key);
        const entry = item ? options.codec.decode(key, item.value) : undefined;
        if (entry?.kind === 'foreign') options.onForeign?.(key);
        known.set(key, { entry, cas: item?.cas });
      }
      toRead = [];
    }
    const ops: StoreOp[] = [];
    const pending: Array<{ key: string; next: DecodedEntry | undefined }> = [];
    const followUps: StoreOp[] = [];
    const joins = new Map<string, readonly LockRecord[]>();
    for (const [key, state] of known) {
      const transition = decide(key, state.entry, attempts.get(key) ?? 0);
      if (transition.action === 'keep' || (transition.action === 'delete' && state.cas === undefined)) {
        // Nothing to do (or nothing to delete: absent already).
        outcomes.set(key, { status: 'done', state });
        continue;
      }
      const next = afterTransition(state.entry, transition);
      if (transition.action === 'touch') {
        ops.push({ op: 'touch', key, ttl: ttls.lock });
      } else if (transition.action === 'delete') {
        ops.push({ op: 'delete', key, cas: state.cas as CasToken });
      } else if (transition.action === 'append') {
        ops.push({ op: 'append', key, value: encodeLockRecords(transition.records) });
        if (transition.records.some((r) => r.op === '+')) {
          // A join keeps the lock alive for a full lifetime from now, as a fresh lock would be; and is read back in
          // the same round trip, because an append is blind: the lock may have been replaced since it was read.
          followUps.push({ op: 'touch', key, ttl: ttls.lock }, { op: 'get', key });
          joins.set(key, transition.records);
        }
      } else {
        const value = options.codec.encode(key, transition.entry);
        const ttl = transition.ttl === 'lock' ? ttls.lock : transition.ttl === 'forever' ? ttls.forever : ttls.value(key);
        ops.push(state.cas === undefined ? { op: 'add', key, value, ttl } : { op: 'cas', key, value, ttl, cas: state.cas });
      }
      pending.push({ key, next });
    }
    known.clear();
    if (ops.length === 0) break;
    const after: StoreOp[] = readAfter && !readAfterSent ? readAfter.keys.map((key): StoreOp => ({ op: 'get', key })) : [];
    readAfterSent ||= after.length > 0;
    const results = (await store.execute([...ops, ...followUps, ...after])) as StoreResult[];
    const readBack = readBackOf(followUps, results.slice(ops.length, ops.length + followUps.length), options.codec);
    const landed = after.length > 0 ? new Set<string>() : undefined;
    pending.forEach(({ key, next }, i) => {
      const result = results[i] as StoreResult;
      switch (result.status) {
        case 'stored': {
          const joined = joins.get(key);
          if (joined && !joinLanded(readBack.get(key), joined)) {
            attempts.set(key, (attempts.get(key) ?? 0) + 1);
            toRead.push(key); // appended to something that was no longer a lock: it reads as foreign; lock it afresh
            break;
          }
          outcomes.set(key, { status: 'done', state: { entry: joined ? (readBack.get(key)?.entry ?? next) : next, cas: joined ? (readBack.get(key)?.cas ?? result.cas) : result.cas } });
          landed?.add(key);
          break;
        }
        case 'deleted':
          outcomes.set(key, { status: 'done', state: { entry: undefined, cas: undefined } });
          landed?.add(key);
          break;
        case 'touched':
          outcomes.set(key, { status: 'done', state: { entry: next, cas: undefined } });
          landed?.add(key);
          break;
        case 'error':
          outcomes.set(key, { status: 'failed', error: result.error });
          break;
        default:
          // exists / not_found: someone changed the key since we read it; read it again.
          attempts.set(key, (attempts.get(key) ?? 0) + 1);
          toRead.push(key);
      }
    });
    if (readAfter && landed) {
      const read = new Map<string, StoreResult>();
      readAfter.keys.forEach((key, i) => read.set(key, results[ops.length + followUps.length + i] as StoreResult));
      readAfter.onRead(read, landed);
    }
  }
  for (const key of toRead) if (!outcomes.has(key)) outcomes.set(key, { status: 'contended' });
  return outcomes;
}

/**
 * Keys to read in the same socket write as the first round of writes, after them: memcached answers one
 * connection's requests in order, so a read sent after a write to the same server sees the store as that write left
 * it. `onRead` gets the answers and the keys whose writes landed in that round (it is not called when no round
 * wrote anything). Reads of keys on another server than a write are not ordered after it.
 */
export interface ReadAfterWrites {
  readonly keys: readonly string[];
  onRead(read: ReadonlyMap<string, StoreResult>, landed: ReadonlySet<string>): void;
}

/** The states read back after joins, by key. */
function readBackOf(ops: readonly StoreOp[], results: readonly StoreResult[], codec: EntryCodec): Map<string, KnownState> {
  const states = new Map<string, KnownState>();
  ops.forEach((op, i) => {
    const result = results[i];
    if (op.op === 'get' && result?.status === 'hit') states.set(op.key, { entry: codec.decode(op.key, result.item.value), cas: result.item.cas });
  });
  return states;
}

/** Whether a join's records are in the lock the key holds now. */
function joinLanded(state: KnownState | undefined, joined: readonly LockRecord[]): boolean {
  if (state?.entry?.kind !== 'lock') return false;
  const holders = lockHolders(state.entry);
  return joined.every((r) => r.op !== '+' || holders.includes(r.txId));
}
