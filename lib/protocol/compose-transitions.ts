import type { DecodedEntry } from './entry.js';
import type { Transition } from './key-transitions.js';

/**
 * Applies several transitions to one key as one: each step sees the entry the previous step would have left.
 * Used by the sweeper when one key appears in several in-doubt transactions of a batch.
 */
export function composeTransitions(current: DecodedEntry | undefined, steps: ReadonlyArray<(entry: DecodedEntry | undefined) => Transition>): Transition {
  let entry = current;
  let last: Transition = { action: 'keep' };
  let changed = false;
  for (const step of steps) {
    const t = step(entry);
    if (t.action === 'keep') continue;
    changed = true;
    last = t;
    entry = t.action === 'write' ? t.entry : undefined;
  }
  if (!changed) return { action: 'keep' };
  return entry === undefined ? { action: 'delete' } : last;
}
