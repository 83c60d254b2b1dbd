import type pg from 'pg';
import { quoteIdent } from '../protocol/write-capture.js';
import type { SqlRunner } from '../protocol/sql-runner.js';

/** First key of the follower's advisory lock (the second is the change table's): apart from other users' locks. */
const LOCK_SPACE = 'mikro-orm-xa-cache follower';

/**
 * Who follows the outside-changes feed when several processes share a database: the one that holds a session
 * advisory lock (`pg_try_advisory_lock`) on a connection of its own, kept for the follower's life. The lock lives
 * exactly as long as that session: if the process dies, hangs up or loses the connection (PostgreSQL restarted,
 * the backend was terminated), PostgreSQL releases it and another process takes it at its next try. The leader
 * LISTENs on the capture's channel on the same connection, so a commit wakes it at once.
 *
 * An idle process keeps its connection (one per process) and tries again every interval; it does not LISTEN.
 */
export class FollowerLease {
  #client: pg.Client | undefined;
  #leading = false;

  constructor(
    private readonly connect: () => Promise<pg.Client>,
    /** The change table: one leader per change table and database (advisory locks are per database). */
    private readonly changeTable: string,
    private readonly channel: string,
    private readonly onNotify: () => void,
    private readonly onLost: (error: unknown) => void,
  ) {}

  /** Whether this process holds the lock now (as far as it knows: a lost connection is noticed at its next use). */
  get leading(): boolean {
    return this.#leading;
  }

  /**
   * The leader's own session, for its runs: they do not queue behind the application's pool (a busy pool would
   * add its wait to every invalidation). Undefined unless leading.
   */
  get session(): SqlRunner | undefined {
    return this.#leading ? this.#client : undefined;
  }

  /** Takes the lock if it is free, and LISTENs once it holds it. Resolves to whether this process leads. */
  async tryLead(): Promise<boolean> {
    if (this.#leading) return true;
    const client = this.#client ?? (await this.#open());
    const { rows } = await client.query('SELECT pg_try_advisory_lock(hashtext($1), hashtext($2)) AS got', [LOCK_SPACE, this.changeTable]);
    if (!(rows[0] as { got: boolean }).got) return false;
    try {
      await client.query(`LISTEN ${quoteIdent(this.channel)}`);
    } catch (error) {
      this.#drop(client, error); // ends the session, and with it the lock: half a leader would be worse than none
      throw error;
    }
    this.#leading = true;
    return true;
  }

  /** Ends the session (releasing the lock if held). */
  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    this.#leading = false;
    await client?.end().catch(() => undefined);
  }

  async #open(): Promise<pg.Client> {
    const client = await this.connect();
    client.on('error', (error) => this.#drop(client, error));
    client.on('end', () => this.#drop(client, new Error('the follower connection ended')));
    client.on('notification', (message) => {
      if (message.channel === this.channel) this.onNotify();
    });
    this.#client = client;
    return client;
  }

  #drop(client: pg.Client, error: unknown): void {
    if (client !== this.#client) return;
    const wasLeading = this.#leading;
    this.#client = undefined;
    this.#leading = false;
    client.end().catch(() => undefined);
    if (wasLeading) this.onLost(error);
  }
}

/** SQL that tells whether some session holds the follower lock of `changeTable` ($1), for `stats`. */
export const FOLLOWER_HELD_SQL = `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND classid::bigint = (hashtext('${LOCK_SPACE}')::bigint + 4294967296) % 4294967296
  AND objid::bigint = (hashtext($1)::bigint + 4294967296) % 4294967296) AS held`;
