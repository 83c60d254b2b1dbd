import { randomUUID } from 'node:crypto';
import { lockHolders, lockIsConcurrent, lockWasLeftBy, type DecodedEntry, type Entry, type LockRecord } from './entry.js';
import { UNKNOWN_HOLDER } from './entry-codec.js';

/**
 * The pure state machine of one key: given what a key holds now, what prepare, promote and release must make of
 * it. docs/protocol.md draws the same machine; spec/protocol/key-transitions.spec.ts walks every edge.
 *
 * Two roles share it. An `item` key holds a value (a row, a collection, a query result). A `region` key holds the
 * generation of a table; query results are valid only while the generations they were read under are current.
 */
export type KeyRole = 'item' | 'region';

/**
 * What to do with a key: leave it; replace it whole (compare-and-swap against what was read, or add when absent),
 * with the TTL class to use; delete it (compare-and-swap); or append lock records. Appends need no token: joining
 * or leaving a lock others hold never loses a race, which keeps hot keys (a busy table's region) from starving
 * writers.
 */
export type Transition =
  | { readonly action: 'keep' }
  | { readonly action: 'write'; readonly entry: Entry; readonly ttl: 'lock' | 'value' | 'forever' }
  | { readonly action: 'delete' }
  | { readonly action: 'append'; readonly records: readonly LockRecord[] }
  /** Keeps a lock alive a full lifetime from now without joining it (a lock held by {@link UNKNOWN_HOLDER}). */
  | { readonly action: 'touch' };

const KEEP: Transition = { action: 'keep' };
const DELETE: Transition = { action: 'delete' };

/** Records past which a lock is rewritten with only its holders instead of growing further. */
export const LOCK_COMPACTION_RECORDS = 64;

/**
 * Prepare: put the key under this transaction's lock. A lock others hold is joined by appending `+tx`, which also
 * makes it concurrent; anything else is replaced by a fresh lock (a region lock remembers the generation it
 * replaced, so a rollback can restore it).
 *
 * A lock that grew long is rewritten with only its holders, but only on a first `attempt`: a rewrite is a
 * compare-and-swap, and on a hot key every other join and leave changes the token under it, so a joiner that keeps
 * insisting on compaction can lose every round with no fault anywhere. After one lost race it joins by appending,
 * which cannot lose; compaction waits for a calmer moment. A lock that still outgrows `MAX_LOCK_RECORDS` (writers
 * overlapping without a pause on an overloaded machine) reads as held by an unknown transaction until it expires:
 * readers miss, nobody can lose its holders (see `entry-codec.ts`).
 */
export function prepareTransition(current: DecodedEntry | undefined, txId: string, role: KeyRole, attempt = 0): Transition {
  if (current?.kind === 'lock') {
    const holders = lockHolders(current);
    if (holders.includes(txId)) return KEEP;
    // An overlong lock: held until it expires, finished by nobody. Joining would only make it longer; keeping it
    // alive a lifetime from now covers this transaction exactly as a join's touch does.
    if (holders.includes(UNKNOWN_HOLDER)) return { action: 'touch' };
    const compact = attempt === 0 && current.records.length >= LOCK_COMPACTION_RECORDS;
    if (holders.length > 0 && !compact) return { action: 'append', records: [{ op: '+', txId }] };
    if (holders.length > 0) return lock([...holders, txId].map((id) => ({ op: '+', txId: id })), current.prior);
    // A region lock every holder left (they left together, none saw itself last) is replaced by a fresh lock, but
    // after a lost race joined by appending: the lock becomes concurrent, which for a region only means that a
    // rollback will not restore its prior generation.
    if (role === 'region' && attempt > 0 && !compact) return { action: 'append', records: [{ op: '+', txId }] };
  }
  const prior = role === 'region' && current?.kind === 'generation' ? current.id : undefined;
  return lock([{ op: '+', txId }], prior);
}

/**
 * Promote, after the database committed. While others still hold the lock, this transaction leaves it (`-tx`).
 * The last holder finishes it: a lock never shared gets the new value when it is known exactly, otherwise the
 * key is evicted (regions get a new generation, which invalidates every result read under the old one). Where
 * the lock is gone (expired, evicted, taken over) whatever the key holds may predate the commit: it is evicted,
 * and a lock of other transactions is made concurrent so its holders will not write their values either.
 */
export function promoteTransition(current: DecodedEntry | undefined, txId: string, role: KeyRole, value: Entry | undefined): Transition {
  if (current === undefined) return KEEP;
  if (current.kind !== 'lock') return DELETE;
  const holders = lockHolders(current);
  if (!holders.includes(txId)) {
    if (holders.length === 0 || holders.includes(UNKNOWN_HOLDER) || lockWasLeftBy(current, txId) || lockIsConcurrent(current)) return KEEP;
    const marker = randomUUID();
    return { action: 'append', records: [{ op: '+', txId: marker }, { op: '-', txId: marker }] };
  }
  if (holders.length > 1) return { action: 'append', records: [{ op: '-', txId }] };
  if (role === 'region') return { action: 'write', entry: { kind: 'generation', id: randomUUID() }, ttl: 'forever' };
  if (!lockIsConcurrent(current) && value !== undefined) return { action: 'write', entry: value, ttl: 'value' };
  return DELETE;
}

/**
 * Release, after the database rolled back: this transaction leaves the lock. Nothing changed in the database, so
 * a region lock never shared gets its prior generation back; an item it held alone is evicted (the lock replaced
 * its old value). Keys this transaction no longer holds are left alone.
 */
export function releaseTransition(current: DecodedEntry | undefined, txId: string, role: KeyRole): Transition {
  if (current?.kind !== 'lock') return KEEP;
  const holders = lockHolders(current);
  if (!holders.includes(txId)) return KEEP;
  if (holders.length > 1) return { action: 'append', records: [{ op: '-', txId }] };
  if (role === 'region' && !lockIsConcurrent(current) && current.prior !== undefined) {
    return { action: 'write', entry: { kind: 'generation', id: current.prior }, ttl: 'forever' };
  }
  return DELETE;
}

/** The entry a transition leaves behind, given what the key held. */
export function afterTransition(current: DecodedEntry | undefined, transition: Transition): DecodedEntry | undefined {
  switch (transition.action) {
    case 'keep':
    case 'touch':
      return current;
    case 'delete':
      return undefined;
    case 'write':
      return transition.entry;
    case 'append':
      return current?.kind === 'lock' ? { ...current, records: [...current.records, ...transition.records] } : current;
  }
}

function lock(records: LockRecord[], prior: string | undefined): Transition {
  return { action: 'write', entry: { kind: 'lock', records, prior }, ttl: 'lock' };
}
