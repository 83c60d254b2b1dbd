import { Status } from '../store/binary-protocol.js';
import { StoreProtocolError, type StoreError } from '../store/store-errors.js';

/** Why memcached refused the tool: it was not asked to log in, or it refused the credentials. */
export type AuthFailure = 'required' | 'refused';

/**
 * Whether a failed store operation was memcached refusing authentication rather than a server that cannot be
 * reached; the fix differs (credentials, not the network), so the tool reports it apart.
 *
 * - A server started with SASL (`memcached -S`) answers every request of a connection that did not log in with the
 *   status "authentication error".
 * - A refused login makes the connection fail its requests as unavailable, with the connection's
 *   "SASL authentication failed" as the cause (lib/store/memcached-connection.ts).
 */
export function authFailure(error: StoreError): AuthFailure | undefined {
  if (error instanceof StoreProtocolError && error.status === Status.authError) return 'required';
  for (let cause: unknown = error.cause, depth = 0; cause instanceof Error && depth < 5; cause = cause.cause, depth++) {
    if (/SASL authentication failed/.test(cause.message)) return 'refused';
  }
  return undefined;
}
