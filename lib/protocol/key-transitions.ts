import { randomUUID } from 'node:crypto';
import type { DecodedEntry, Entry } from './entry.js';

/**
 * The pure state machine of one key: given what a key holds now, what prepare, promote and release must make of
 * it. docs/protocol.md draws the same machine; spec/protocol/key-transitions.spec.ts walks every edge.
 *
 * Two roles share it. An `item` key holds a value (a row, a collection, a query result). A `region` key holds the
 * generation of a table; query results are valid only while the generations they were read under are current.
 */
export type KeyRole = 'item' | 'region';

/** What to do with a key: leave it, write an entry (with the TTL class to use), or delete it. */
export type Transition =
  | { readonly action: 'keep' }
  | { readonly action: 'write'; readonly entry: Entry; readonly ttl: 'lock' | 'value' | 'forever' }
  | { readonly action: 'delete' };

const KEEP: Transition = { action: 'keep' };
const DELETE: Transition = { action: 'delete' };

/**
 * Prepare: put the key under this transaction's lock. A key already locked by others gains this transaction as a
 * holder and becomes `concurrent`, so that no single holder later writes a value that may not be the newest.
 * A region lock remembers the generation it replaced so a rollback can restore it.
 */
export function prepareTransition(current: DecodedEntry | undefined, txId: string, role: KeyRole): Transition {
  if (current?.kind === 'lock') {
    if (current.holders.includes(txId)) return KEEP;
    return lock([...current.holders, txId], true, current.prior);
  }
  const prior = role === 'region' && current?.kind === 'generation' ? current.id : undefined;
  return lock([txId], false, prior);
}

/**
 * Promote, after the database committed: remove this transaction from the lock. The last holder of a lock that
 * was never shared writes the new value when it is known exactly; otherwise the key is evicted (regions get a new
 * generation, which invalidates every result read under the old one). Where the lock is gone (expired, evicted,
 * taken over) whatever the key holds may predate the commit: it is evicted, and a lock of other transactions is
 * marked concurrent so its holders will not write values either.
 */
export function promoteTransition(current: DecodedEntry | undefined, txId: string, role: KeyRole, value: Entry | undefined): Transition {
  if (current === undefined) return KEEP;
  if (current.kind === 'lock') {
    const others = current.holders.filter((h) => h !== txId);
    if (others.length === current.holders.length) {
      // Not ours: others hold it. Their values could be older than our commit.
      return current.concurrent && current.prior === undefined ? KEEP : lock(others, true, undefined);
    }
    if (others.length > 0) return lock(others, true, undefined);
    if (role === 'region') return { action: 'write', entry: { kind: 'generation', id: randomUUID() }, ttl: 'forever' };
    if (!current.concurrent && value !== undefined) return { action: 'write', entry: value, ttl: 'value' };
    return DELETE;
  }
  return DELETE;
}

/**
 * Release, after the database rolled back: remove this transaction from the lock. Nothing changed in the
 * database, so a region whose lock was never shared gets its prior generation back; an item is evicted (its old
 * value was overwritten by the lock). Keys this transaction no longer holds are left alone.
 */
export function releaseTransition(current: DecodedEntry | undefined, txId: string, role: KeyRole): Transition {
  if (current?.kind !== 'lock' || !current.holders.includes(txId)) return KEEP;
  const others = current.holders.filter((h) => h !== txId);
  if (others.length > 0) return lock(others, current.concurrent, current.prior);
  if (role === 'region' && !current.concurrent && current.prior !== undefined) {
    return { action: 'write', entry: { kind: 'generation', id: current.prior }, ttl: 'forever' };
  }
  return DELETE;
}

function lock(holders: string[], concurrent: boolean, prior: string | undefined): Transition {
  return { action: 'write', entry: { kind: 'lock', holders, concurrent, prior }, ttl: 'lock' };
}
