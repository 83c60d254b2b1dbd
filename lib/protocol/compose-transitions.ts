import type { DecodedEntry, LockRecord } from './entry.js';
import { afterTransition, type Transition } from './key-transitions.js';

/**
 * Applies several transitions to one key as one: each step sees the entry the previous step would have left.
 * Appends only: one append of all records. Any replacement or deletion: the final state, written over what was
 * read (appended records included). Used by the sweeper when one key appears in several in-doubt transactions.
 */
export function composeTransitions(current: DecodedEntry | undefined, steps: ReadonlyArray<(entry: DecodedEntry | undefined) => Transition>): Transition {
  let entry = current;
  let replaced: Extract<Transition, { action: 'write' }> | undefined;
  let deleted = false;
  const appended: LockRecord[] = [];
  for (const step of steps) {
    const t = step(entry);
    if (t.action === 'keep' || t.action === 'touch') continue;
    entry = afterTransition(entry, t);
    if (t.action === 'append' && !replaced && !deleted) appended.push(...t.records);
    else if (t.action === 'write') ((replaced = t), (deleted = false));
    else if (t.action === 'delete') ((deleted = true), (replaced = undefined));
    else if (replaced && entry) replaced = { action: 'write', entry: entry as Extract<Transition, { action: 'write' }>['entry'], ttl: replaced.ttl };
  }
  if (deleted) return { action: 'delete' };
  if (replaced) return replaced;
  return appended.length > 0 ? { action: 'append', records: appended } : { action: 'keep' };
}
