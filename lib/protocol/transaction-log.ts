import { JOINED_ROWS, type SqlRunner } from './sql-runner.js';
import { parseTaken, type CapturedChange, type WriteCapture } from './write-capture.js';

/** One row of the transaction log, as read back. */
export interface LogRow {
  readonly txId: string;
  /** PostgreSQL's transaction id (`xid8`) of the transaction that wrote the row. */
  readonly xid: string;
  readonly keys: readonly string[];
  readonly regions: readonly string[];
  /** Age in milliseconds by the database's clock. */
  readonly ageMs: number;
}

/** What PostgreSQL says became of a transaction (`pg_xact_status`); `unknown` when it no longer knows. */
export type DatabaseOutcome = 'committed' | 'aborted' | 'in progress' | 'unknown';

/**
 * The durable commit decision, Logging-Last-Resource style: a row naming the transaction and its cache keys is
 * inserted inside the application's own database transaction, so the row exists exactly when the transaction
 * committed. Rows are deleted lazily and in batches once the keys were promoted; rows that remain are in doubt
 * and the recovery sweeper resolves them.
 *
 * All timing (ages, claims) uses the database's clock, never the application's.
 */
export class TransactionLog {
  readonly #table: string;
  readonly #namespace: string;

  /**
   * @param table a validated, optionally schema-qualified table name
   * @param namespace whose rows these are: rows of other namespaces sharing the table are never touched
   */
  constructor(table: string, namespace = '') {
    this.#table = table;
    this.#namespace = namespace;
  }

  /** The table name. */
  get table(): string {
    return this.#table;
  }

  /** The DDL that creates the table and its index; idempotent. Ship it in a migration, or let `ensureTable` run it. */
  ddl(): string[] {
    const index = `${this.#table.replace('.', '_')}_created_at_idx`;
    return [
      `CREATE TABLE IF NOT EXISTS ${this.#table} (
  tx_id uuid PRIMARY KEY,
  namespace text NOT NULL DEFAULT '',
  xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  keys text[] NOT NULL,
  regions text[] NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  claimed_until timestamptz,
  backend_pid int DEFAULT pg_backend_pid()
)`,
      // Tables created before the namespace column existed gain it.
      `ALTER TABLE ${this.#table} ADD COLUMN IF NOT EXISTS namespace text NOT NULL DEFAULT ''`,
      ...ownerColumns(this.#table),
      `CREATE INDEX IF NOT EXISTS ${index} ON ${this.#table} (namespace, created_at)`,
    ];
  }

  /** Creates the table if absent. Concurrent callers are serialised with an advisory lock. */
  async ensureTable(db: SqlRunner): Promise<void> {
    const statements = this.ddl().map((s) => s.replaceAll("'", "''"));
    const executes = statements.map((statement) => `EXECUTE '${statement}';`).join(' ');
    await db.query(`DO $$ BEGIN PERFORM pg_advisory_xact_lock(hashtext('${this.#table}')); ${executes} END $$`);
  }

  /**
   * The one statement a committing transaction runs inside its database transaction: it inserts this
   * transaction's row, deletes rows of earlier transactions that were fully promoted, and, with a
   * {@link WriteCapture}, takes the changes the database captured in this transaction. Returns the PostgreSQL
   * transaction id and those changes.
   */
  async record(db: SqlRunner, txId: string, keys: readonly string[], regions: readonly string[], doneTxIds: readonly string[], capture?: WriteCapture): Promise<{ xid: string; captured: CapturedChange[] }> {
    const rider = db.takeRider?.();
    // With a rider the statement shares a simple-protocol message, which takes no parameters: its values are inlined.
    const params: Array<string | readonly string[]> = [txId, keys, regions, this.#namespace, doneTxIds];
    const value = (n: number): string => (rider ? sqlLiteral(params[n - 1] as string | readonly string[]) : `$${n}`);
    const ctes: string[] = [];
    if (capture) ctes.push(capture.takeCte());
    if (doneTxIds.length > 0) ctes.push(`done AS (DELETE FROM ${this.#table} WHERE tx_id = ANY(${value(5)}::uuid[]))`);
    ctes.push(`ins AS (INSERT INTO ${this.#table} (tx_id, namespace, keys, regions) VALUES (${value(1)}, ${value(4)}, ${value(2)}, ${value(3)}) RETURNING xid)`);
    const own = `SELECT (SELECT xid::text FROM ins) AS xid, ${capture ? capture.takenJson() : 'NULL::text'} AS taken`;
    const text = `WITH ${ctes.join(', ')} ${own}`;
    if (!rider) {
      const { rows } = await db.query(text, doneTxIds.length > 0 ? params : params.slice(0, 4));
      const row = rows[0] as { xid: string; taken: string | null };
      return { xid: String(row.xid), captured: parseTaken(row.taken) };
    }
    // The rider goes out as a second statement of the same message: its rows come back as it returns them, after
    // this statement's one row. (A join of the two in one statement cost more to plan and to run than the read.)
    const sql = `${JOINED_ROWS}${text};\n${rider.sql.replace(/;\s*$/, '')}`;
    let rows: object[];
    try {
      ({ rows } = await db.query(sql));
    } catch (error) {
      rider.fail(error);
      throw error;
    }
    const row = rows[0] as { xid?: string; taken?: string | null } | undefined;
    if (row?.xid === undefined) {
      const error = new Error('the transaction log statement returned no row: the SQL runner does not join the rows of a several-statement text (JOINED_ROWS)');
      rider.fail(error);
      throw error;
    }
    rider.deliver(rows.slice(1));
    return { xid: String(row.xid), captured: parseTaken(row.taken ?? null) };
  }

  /** Adds keys to this transaction's row (keys the database's capture named that prepare did not know yet). */
  async addKeys(db: SqlRunner, txId: string, keys: readonly string[], regions: readonly string[]): Promise<void> {
    await db.query(`UPDATE ${this.#table} SET keys = keys || $2::text[], regions = regions || $3::text[] WHERE tx_id = $1`, [txId, keys, regions]);
  }

  /** Deletes rows of fully promoted transactions. */
  async deleteRows(db: SqlRunner, txIds: readonly string[]): Promise<void> {
    if (txIds.length === 0) return;
    await db.query(`DELETE FROM ${this.#table} WHERE tx_id = ANY($1::uuid[])`, [txIds]);
  }

  /**
   * Claims up to `limit` rows for `claimMs`, skipping rows another sweeper holds, in one autocommit statement. A
   * sweeper that dies loses its claim when it expires. A row is claimed when it is older than `minAgeMs`, or at
   * any age when the database session that wrote it has ended ({@link ownerGone}).
   */
  async claim(db: SqlRunner, limit: number, minAgeMs: number, claimMs: number): Promise<LogRow[]> {
    const { rows } = await db.query(
      `UPDATE ${this.#table} AS l SET claimed_until = now() + make_interval(secs => $3::float8 / 1000)
        WHERE l.tx_id IN (
          SELECT tx_id FROM ${this.#table}
           WHERE namespace = $4
             AND (created_at <= now() - make_interval(secs => $2::float8 / 1000) OR ${ownerGone('backend_pid')})
             AND (claimed_until IS NULL OR claimed_until < now())
           ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED)
        RETURNING l.tx_id::text AS tx_id, l.xid::text AS xid, l.keys, l.regions,
                  (extract(epoch FROM now() - l.created_at) * 1000)::float8 AS age_ms`,
      [limit, minAgeMs, claimMs, this.#namespace],
    );
    return rows.map(toLogRow);
  }

  /** Releases claims, so the next sweep takes these rows at once. */
  async unclaim(db: SqlRunner, txIds: readonly string[]): Promise<void> {
    await db.query(`UPDATE ${this.#table} SET claimed_until = NULL WHERE tx_id = ANY($1::uuid[])`, [txIds]);
  }

  /** Lists rows, oldest first, with what PostgreSQL says of each transaction. */
  async list(db: SqlRunner, limit: number): Promise<Array<LogRow & { outcome: DatabaseOutcome }>> {
    const { rows } = await db.query(
      `SELECT tx_id::text AS tx_id, xid::text AS xid, keys, regions,
              (extract(epoch FROM now() - created_at) * 1000)::float8 AS age_ms,
              pg_xact_status(xid) AS outcome
         FROM ${this.#table} WHERE namespace = $2 ORDER BY created_at LIMIT $1`,
      [limit, this.#namespace],
    );
    return rows.map((r) => ({ ...toLogRow(r), outcome: toOutcome((r as { outcome: string | null }).outcome) }));
  }

  /** Counts the rows. */
  async count(db: SqlRunner): Promise<number> {
    const { rows } = await db.query(`SELECT count(*)::int AS n FROM ${this.#table} WHERE namespace = $1`, [this.#namespace]);
    return (rows[0] as { n: number }).n;
  }

  /** What PostgreSQL says became of a transaction id. */
  async outcome(db: SqlRunner, xid: string): Promise<DatabaseOutcome> {
    try {
      const { rows } = await db.query('SELECT pg_xact_status($1::xid8) AS outcome', [xid]);
      return toOutcome((rows[0] as { outcome: string | null }).outcome);
    } catch {
      return 'unknown';
    }
  }
}

function toLogRow(raw: object): LogRow {
  const r = raw as { tx_id: string; xid: string; keys: string[]; regions: string[]; age_ms: number };
  return { txId: r.tx_id, xid: r.xid, keys: r.keys, regions: r.regions, ageMs: Number(r.age_ms) };
}

function toOutcome(status: string | null): DatabaseOutcome {
  return status === 'committed' || status === 'aborted' || status === 'in progress' ? status : 'unknown';
}

/**
 * Columns added after the first release, for tables created before: who wrote the row (the backend's pid), and
 * ages measured from the row's insert (just before COMMIT) rather than from the transaction's start. Added
 * without a default first, then given one, so adding them never rewrites the table.
 */
function ownerColumns(table: string): string[] {
  return [
    `ALTER TABLE ${table} ALTER COLUMN created_at SET DEFAULT clock_timestamp()`,
    `ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS backend_pid int`,
    `ALTER TABLE ${table} ALTER COLUMN backend_pid SET DEFAULT pg_backend_pid()`,
  ];
}

/**
 * SQL: the session that inserted a log row is gone. A row is visible only once its transaction committed, so
 * its owner then either promotes (still connected) or died, and a process that dies loses its sessions. The age
 * rule of the sweeper exists only so as not to race a live owner's promote; a row whose session is gone need not
 * wait. (Racing a live owner anyway, e.g. one whose connection was lost after COMMIT, is safe: promote without a
 * value is idempotent; it only costs the owner's value writes.) Unknown owners (rows from before the column, a
 * pooler in front of PostgreSQL keeping sessions, a reused pid) fall back to the age rule.
 */
function ownerGone(column: string): string {
  return `(${column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = ${column}))`;
}

/**
 * A value as a SQL literal: text as an escape string (`E'…'`, whatever `standard_conforming_strings` says), a list
 * as a `text[]` array of them.
 */
export function sqlLiteral(value: string | readonly string[]): string {
  if (typeof value !== 'string') return `ARRAY[${value.map(sqlLiteral).join(', ')}]::text[]`;
  return `E'${value.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}
