import type { InDoubtTransaction } from '../protocol/in-doubt.js';

type KeyInfo = InDoubtTransaction['keys'][number];

/**
 * What a key's state in memcached means, for people. `authenticated` says whether the tool has the application's
 * secrets: without them, the application's own authenticated entries cannot be told from planted bytes.
 */
export function describeKeyState(key: KeyInfo, txId: string, authenticated: boolean): string {
  const others = (key.holders ?? []).filter((h) => h !== txId);
  const short = others.map((h) => h.slice(0, 8)).join(', ');
  switch (key.state) {
    case 'locked-by-this':
      return others.length === 0 ? 'locked by this transaction' : `locked by this and ${others.length} other${others.length > 1 ? 's' : ''} (${short})`;
    case 'locked-by-others':
      return `locked by other transaction${others.length > 1 ? 's' : ''} (${short})`;
    case 'value':
      return 'value (promoted or refilled since)';
    case 'lease':
      return 'lease (a reader is filling it)';
    case 'generation':
      return 'generation (no lock left)';
    case 'absent':
      return 'gone (lock expired, evicted or promoted)';
    case 'foreign':
      return authenticated
        ? 'foreign bytes (not written by this library, or failed authentication with the given secrets)'
        : "foreign or unauthenticated (give the application's secrets: XA_CACHE_SECRETS or --secrets-env)";
    case 'unavailable':
      return 'unknown: server unreachable';
  }
}
