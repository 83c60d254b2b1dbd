/**
 * Whether an error from `pg` means the connection to PostgreSQL is gone (rather than the server refusing a
 * statement on a live session): the server terminated the backend or shut down (SQLSTATE class 08, 57P01–57P03),
 * the socket failed (`ECONNRESET`, `EPIPE`…), or `pg` already knows the client is dead.
 *
 * Why it matters: after a server's error answer the session is alive and the outcome of the statement is known
 * (a failed COMMIT rolled back); after a connection loss it is not.
 */
export function isConnectionLoss(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (/^E[A-Z]+$/.test(code)) return true; // a Node socket error
    return code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03';
  }
  return /Connection terminated|not queryable|Client was closed|socket|ECONNRESET|EPIPE/i.test(error.message);
}

/**
 * Whether a failed COMMIT was answered by the server (an SQLSTATE error on a live session, such as a deferred
 * constraint or a serialization failure): the transaction then certainly rolled back. Anything else (a lost
 * connection, a client-side timeout) leaves the outcome to be asked.
 */
export function rejectedByServer(error: unknown): boolean {
  const code = error instanceof Error ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !isConnectionLoss(error);
}
