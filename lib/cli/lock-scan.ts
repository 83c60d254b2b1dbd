import { connect } from 'node:net';
import type { CliSession } from './cli-session.js';

/** A key locked by transactions that have no log row: they never committed (or are committing right now). */
export interface OrphanLock {
  readonly key: string;
  readonly server: string;
  /** The transaction ids holding the lock, none of them in the log. */
  readonly holders: readonly string[];
  /** Seconds since the last join, from memcached's own clock and the lock lifetime (`lockTtlSeconds`). */
  readonly ageSeconds: number;
  /** Seconds until memcached drops the lock and the key is cacheable again. */
  readonly expiresInSeconds: number;
}

/** How far a scan is: servers whose listing is complete, and items listed so far on all of them. */
export interface LockScanProgress {
  readonly servers: number;
  readonly serversDone: number;
  readonly itemsListed: number;
}

/** What a scan found, and what it could not look at. */
export interface LockScan {
  readonly locks: OrphanLock[];
  /** Keys of the namespace stored under their hashed form (long keys): they cannot be mapped back, so not read. */
  readonly hashedSkipped: number;
  /** Servers that did not answer the listing. */
  readonly failed: string[];
}

/**
 * Finds the locks of transactions that never committed. Such a transaction leaves no log row (the row rolls back
 * with it), so the log cannot show it; the only place its locks are visible is memcached. memcached has no key
 * listing but `lru_crawler metadump all`, which walks every item of the server: a full scan, so this runs only
 * when asked (`inspect --scan-locks`).
 *
 * For each server: its clock (`stats` `time`) and the keys of this namespace with their expiry times; then the
 * keys are read through the store (decoded and authenticated like any read) and every lock whose holders are
 * all absent from the log is reported, with its age computed on memcached's clock (a lock's TTL restarts at each
 * join, so age = lifetime − time left). Locks younger than `minAgeSeconds` are normally transactions between
 * prepare and COMMIT right now and are left out. What it reports was true when read; a scan is not a snapshot.
 */
export async function scanOrphanLocks(session: CliSession, minAgeSeconds: number, timeoutMs: number, onProgress?: (progress: LockScanProgress) => void): Promise<LockScan> {
  // The session's keys are scoped to the database's identity (`namespace/<identity>:`), as the application's are:
  // keys of other databases sharing the namespace are not ours to report.
  const prefix = session.store.keyPrefix;
  const lockTtl = session.cache.options.lockTtlSeconds;
  const listed = new Map<string, { server: string; expiresInSeconds: number }>();
  const failed: string[] = [];
  let hashedSkipped = 0;
  let itemsListed = 0;
  let serversDone = 0;
  const servers = session.config.memcached.length;
  const report = (): void => onProgress?.({ servers, serversDone, itemsListed });
  report();
  await Promise.all(
    session.config.memcached.map(async (server) => {
      try {
        const stats = await textCommand(server, 'stats\r\n', 'END\r\n', timeoutMs);
        const now = Number(/STAT time (\d+)/.exec(stats)?.[1]);
        const dump = await textCommand(server, 'lru_crawler metadump all\r\n', 'END\r\n', timeoutMs * 20, (chunk) => {
          // One line per item: a line split across chunks is counted once, by its newline.
          for (let i = chunk.indexOf('\n'); i !== -1; i = chunk.indexOf('\n', i + 1)) itemsListed++;
          report();
        });
        for (const line of dump.split('\n')) {
          const match = /^key=(\S+) exp=(-?\d+)/.exec(line);
          if (!match) continue;
          const key = decodeURIComponent(match[1] as string);
          if (!key.startsWith(prefix)) continue;
          if (key.startsWith(`${prefix}h:`)) {
            hashedSkipped++;
            continue;
          }
          const exp = Number(match[2]);
          // Locks always carry a TTL; an item without one (a region generation) is not a lock.
          if (exp > 0 && exp - now <= lockTtl) listed.set(key.slice(prefix.length), { server, expiresInSeconds: exp - now });
        }
      } catch {
        failed.push(server);
      }
      serversDone++;
      report();
    }),
  );
  const holders = await session.cache.lockHolders([...listed.keys()]);
  const txIds = [...new Set([...holders.values()].flat())];
  const { rows } = txIds.length === 0 ? { rows: [] } : await session.pool.query(`SELECT tx_id::text AS tx_id FROM ${session.config.logTable} WHERE tx_id = ANY($1::uuid[])`, [txIds]);
  const logged = new Set((rows as Array<{ tx_id: string }>).map((r) => r.tx_id));
  const locks: OrphanLock[] = [];
  for (const [key, held] of holders) {
    const where = listed.get(key);
    if (!where || held.some((tx) => logged.has(tx))) continue; // a logged holder is shown with its transaction
    const ageSeconds = lockTtl - where.expiresInSeconds;
    if (ageSeconds < minAgeSeconds) continue;
    locks.push({ key, server: where.server, holders: held, ageSeconds, expiresInSeconds: where.expiresInSeconds });
  }
  locks.sort((a, b) => b.ageSeconds - a.ageSeconds || a.key.localeCompare(b.key));
  return { locks, hashedSkipped, failed: failed.sort() };
}

/** Sends one text-protocol command and returns the answer up to its terminating line; `onData` sees each chunk. */
function textCommand(server: string, command: string, terminator: string, timeoutMs: number, onData?: (chunk: string) => void): Promise<string> {
  const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(server);
  if (!match) return Promise.reject(new Error(`${server} is not host:port`));
  return new Promise((resolve, reject) => {
    const socket = connect({ host: match[1] as string, port: Number(match[2]) });
    let all = '';
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    });
    socket.on('error', reject);
    socket.on('connect', () => socket.write(command));
    socket.on('data', (chunk: Buffer) => {
      const text = chunk.toString('latin1');
      all += text;
      onData?.(text);
      if (all.endsWith(terminator) || /^(ERROR|CLIENT_ERROR|SERVER_ERROR)/.test(all)) {
        socket.destroy();
        if (!all.endsWith(terminator)) reject(new Error(all.trim()));
        else resolve(all.slice(0, all.length - terminator.length));
      }
    });
  });
}
