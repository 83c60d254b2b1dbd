import type { SqlRunner } from './sql-runner.js';
import type { SchemeView } from './conjunction-schemes.js';

/** One statement's changes to one table, as the database-side capture recorded them. */
export interface CapturedChange {
  /** The schema the table really lives in (`TG_TABLE_SCHEMA`), whatever `search_path` selected it. */
  readonly schema: string;
  /** The logical table: for a partition, its partitioned parent. */
  readonly table: string;
  /**
   * `MANY` is a statement that changed more rows than the capture keeps images of, and `TRUNCATE` one with no
   * images at all: both mean "any row of the table may have changed".
   */
  readonly op: 'INSERT' | 'UPDATE' | 'DELETE' | 'TRUNCATE' | 'MANY';
  /** Row images before the statement (UPDATE, DELETE), as column name → value. */
  readonly oldRows?: readonly Record<string, unknown>[];
  /** Row images after the statement (INSERT, UPDATE). */
  readonly newRows?: readonly Record<string, unknown>[];
}

/** What a set of captured changes means in cache terms: item keys to lock and evict, regions to renew. */
export interface CapturedKeys {
  readonly keys: Iterable<string>;
  readonly regions: Iterable<string>;
  /**
   * Tables whose changed rows were named but whose conjunction schemes the deriver was not given, each with its
   * in-flight region (the region every writer of the table locks). Prepare locks that region, then reads the
   * tables' scheme sets and derives again with them (see docs/protocol.md, "Conjunction regions").
   */
  readonly schemeTables?: ReadonlyMap<string, string>;
}

/** The scheme set of a table as read after its in-flight region was locked; undefined: not read yet. */
export type SchemeLookup = (table: string) => SchemeView | undefined;

/** Maps captured changes to cache keys; the layer that knows the entities provides it. */
export type CaptureDeriver = (changes: readonly CapturedChange[], schemes?: SchemeLookup) => CapturedKeys;

/** A table to capture: its schema, its name, and (for a partition) the logical table it belongs to. */
export interface CaptureTarget {
  readonly schema: string;
  readonly table: string;
  readonly logicalTable?: string;
}

/**
 * Version of the capture function and triggers: bumped when their text changes, so `verify` finds old ones.
 * v2: `SECURITY DEFINER` (writers need no grant on the change table) and `pg_notify` (followers wake at commit).
 */
export const CAPTURE_VERSION = 2;

/** The comment that names an installed capture function's version (`…capture v<N>`). */
const VERSION_COMMENT = 'mikro-orm-xa-cache write capture v';

/**
 * A session setting (`-c xa_cache.managed=on` in the connection's startup options) that marks sessions of the
 * application's own pool: the capture function does not `pg_notify` for their transactions, which run prepare.
 */
export const MANAGED_SESSION_SETTING = 'xa_cache.managed';

/** Above this many rows, one statement is recorded as `MANY` (table-wide) instead of row by row. */
export const MAX_CAPTURED_ROWS = 1000;

const TRIGGERS = [
  { suffix: 'ins', event: 'INSERT', referencing: 'REFERENCING NEW TABLE AS xa_new', level: 'STATEMENT' },
  { suffix: 'upd', event: 'UPDATE', referencing: 'REFERENCING OLD TABLE AS xa_old NEW TABLE AS xa_new', level: 'STATEMENT' },
  { suffix: 'del', event: 'DELETE', referencing: 'REFERENCING OLD TABLE AS xa_old', level: 'STATEMENT' },
  { suffix: 'trunc', event: 'TRUNCATE', referencing: '', level: 'STATEMENT' },
] as const;

/**
 * The database reports what changed: statement-level `AFTER` triggers with transition tables on every table the
 * cache depends on record each statement's old and new row images in a change table, tagged with the writing
 * transaction's id. Whatever made the change — the unit of work, `native*`, raw SQL, Kysely, a trigger, a
 * foreign-key cascade, a function, a procedure, a view, a rule, `COPY`, `TRUNCATE` — PostgreSQL fires them.
 *
 * A transaction that runs this library's prepare takes (deletes and returns) its own rows in the statement that
 * inserts its log row, so they are never visible to anyone else. Rows of transactions that did not run prepare
 * (another program, a statement outside the library's transactions) become visible when they commit: they are the
 * feed of outside writes.
 */
export class WriteCapture {
  readonly #changes: string;
  readonly #function: string;
  readonly #take: string;
  readonly #prefix: string;

  /** @param logTable the transaction log's table (optionally schema-qualified): capture objects are named after it */
  constructor(logTable: string) {
    this.#changes = `${logTable}_changes`;
    this.#function = `${logTable}_capture`;
    this.#take = `${logTable}_take`;
    this.#prefix = (logTable.split('.').pop() ?? logTable).slice(0, 40);
  }

  /** The change table. */
  get table(): string {
    return this.#changes;
  }

  /** The `NOTIFY` channel the capture function signals on (at most 63 bytes: PostgreSQL truncates longer names). */
  get channel(): string {
    return Buffer.from(this.#changes).subarray(0, 63).toString('utf8').replace(/\uFFFD$/, '');
  }

  /** The capture function. */
  get functionName(): string {
    return this.#function;
  }

  /** The function prepare calls to take a transaction's captured changes. */
  get takeFunctionName(): string {
    return this.#take;
  }

  /** Name of the trigger of one event on a table. */
  triggerName(suffix: (typeof TRIGGERS)[number]['suffix']): string {
    return `${this.#prefix}_${suffix}`;
  }

  /** DDL of the change table and the capture function; idempotent. */
  baseDdl(): string[] {
    const c = this.#changes;
    const index = `${c.replace('.', '_')}_xid_idx`;
    const images = (alias: 'xa_old' | 'xa_new'): string => `(SELECT jsonb_agg(to_jsonb(r)) FROM ${alias} r)`;
    // Delivered at COMMIT only, and once per transaction however many statements sent it (same channel and
    // payload): a follower LISTENing wakes as soon as the change becomes visible, not at its next poll. Sessions
    // of the application's own pool say so (MANAGED_SESSION_SETTING): their transactions take their rows at
    // prepare, so waking the follower for them would only cost a run that finds nothing.
    const notify = `IF coalesce(current_setting('${MANAGED_SESSION_SETTING}', true), '') <> 'on' THEN PERFORM pg_notify(${quoteLiteral(this.channel)}, ''); END IF;`;
    const record = (op: string, oldRows: string, newRows: string): string =>
      `INSERT INTO ${c} (schema_name, table_name, op, old_rows, new_rows) VALUES (TG_TABLE_SCHEMA, TG_ARGV[0], ${op}, ${oldRows}, ${newRows});`;
    return [
      `CREATE TABLE IF NOT EXISTS ${c} (
  id bigserial PRIMARY KEY,
  xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  schema_name text NOT NULL,
  table_name text NOT NULL,
  op text NOT NULL,
  old_rows jsonb,
  new_rows jsonb,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  claimed_until timestamptz
)`,
      `CREATE INDEX IF NOT EXISTS ${index} ON ${c} (xid)`,
      // One function for every table: TG_ARGV[0] is the logical table (a partition names its parent). It runs as
      // its owner (SECURITY DEFINER), so a writer role needs no privilege on the change table; its search_path is
      // pinned (pg_temp last) so no writer can shadow the change table with a temporary one. The schema the change
      // table was created in is only known when the DDL runs, hence the format().
      `DO $fn$ BEGIN EXECUTE format(${dollarQuote(`CREATE OR REPLACE FUNCTION ${this.#function}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, %I, pg_temp AS $xa$
DECLARE n bigint;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    ${record("'TRUNCATE'", 'NULL', 'NULL')}
    ${notify}
    RETURN NULL;
  END IF;
  IF TG_OP = 'DELETE' THEN SELECT count(*) INTO n FROM xa_old; ELSE SELECT count(*) INTO n FROM xa_new; END IF;
  IF n = 0 THEN RETURN NULL; END IF;
  IF n > ${MAX_CAPTURED_ROWS} THEN
    ${record("'MANY'", 'NULL', 'NULL')}
  ELSIF TG_OP = 'INSERT' THEN
    ${record("'INSERT'", 'NULL', images('xa_new'))}
  ELSIF TG_OP = 'UPDATE' THEN
    ${record("'UPDATE'", images('xa_old'), images('xa_new'))}
  ELSE
    ${record("'DELETE'", images('xa_old'), 'NULL')}
  END IF;
  ${notify}
  RETURN NULL;
END
$xa$`)}, current_schema()); END $fn$`,
      // Only triggers call it: nobody else may attach it to a table of theirs and write rows as its owner.
      `REVOKE ALL ON FUNCTION ${this.#function}() FROM PUBLIC`,
      `COMMENT ON FUNCTION ${this.#function}() IS '${VERSION_COMMENT}${CAPTURE_VERSION}'`,
      this.takeDdl(),
    ];
  }

  /**
   * DDL of the take function. A function, so that a transaction without a transaction id (read-only, or on a
   * standby) never runs the DELETE, which a read-only transaction refuses even when it would delete nothing.
   */
  private takeDdl(): string {
    return `CREATE OR REPLACE FUNCTION ${this.#take}() RETURNS text LANGUAGE sql VOLATILE AS $xa$
WITH ${this.takeCte()} SELECT ${this.takenJson()}
$xa$`;
  }

  /**
   * Creates the change table and the capture function if absent (the triggers are per table: see `tableDdl`).
   * Concurrent callers are serialised with an advisory lock.
   */
  async ensureBase(db: SqlRunner): Promise<void> {
    // A newer capture version installed by a newer process is kept: replacing it would flip-flop during a rolling
    // upgrade. The take function (prepare's) must exist too; when only it is missing, only it is created.
    const { rows } = await db.query(
      `SELECT to_regclass($1) IS NOT NULL AND to_regprocedure($2) IS NOT NULL AND ${installedVersion('to_regprocedure($2)')} >= $3 AS capture_ok,
              to_regprocedure($4) IS NOT NULL AS take_ok`,
      [this.#changes, `${this.#function}()`, CAPTURE_VERSION, `${this.#take}()`],
    );
    const row = rows[0] as { capture_ok: boolean | null; take_ok: boolean | null };
    if (row.capture_ok && row.take_ok) return;
    const ddl = row.capture_ok ? [this.takeDdl()] : this.baseDdl();
    const body = ddl.map((s) => `EXECUTE ${dollarQuote(s)};`).join(' ');
    await db.query(`DO $ensure$ BEGIN PERFORM pg_advisory_xact_lock(hashtext(${dollarQuote(this.#changes)})); ${body} END $ensure$`);
  }

  /** DDL that puts the capture triggers on one table (replacing older ones); idempotent. */
  tableDdl(target: CaptureTarget): string[] {
    const table = `${quoteIdent(target.schema)}.${quoteIdent(target.table)}`;
    const logical = quoteLiteral(target.logicalTable ?? target.table);
    return TRIGGERS.flatMap(({ suffix, event, referencing, level }) => {
      const name = quoteIdent(this.triggerName(suffix));
      return [
        `DROP TRIGGER IF EXISTS ${name} ON ${table}`,
        `CREATE TRIGGER ${name} AFTER ${event} ON ${table} ${referencing} FOR EACH ${level} EXECUTE FUNCTION ${this.#function}(${logical})`,
      ];
    });
  }

  /** DDL that removes the capture triggers from one table. */
  dropTableDdl(target: CaptureTarget): string[] {
    const table = `${quoteIdent(target.schema)}.${quoteIdent(target.table)}`;
    return TRIGGERS.map(({ suffix }) => `DROP TRIGGER IF EXISTS ${quoteIdent(this.triggerName(suffix))} ON ${table}`);
  }

  /**
   * The tables among `targets` whose capture is missing, disabled or out of date (one catalog query). An empty
   * answer means every write to them reaches prepare.
   */
  async missing(db: SqlRunner, targets: readonly CaptureTarget[]): Promise<CaptureTarget[]> {
    if (targets.length === 0) return [];
    const names = TRIGGERS.map(({ suffix }) => this.triggerName(suffix));
    const { rows } = await db.query(
      `SELECT t.schema_name, t.table_name,
              (SELECT count(*) FROM pg_trigger g
                 JOIN pg_class c ON c.oid = g.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = t.schema_name AND c.relname = t.table_name
                  AND g.tgname = ANY($3::text[]) AND g.tgenabled IN ('O', 'A')
                  AND g.tgfoid = to_regprocedure($4)
                  AND ${installedVersion('g.tgfoid')} >= $5)::int AS found
         FROM unnest($1::text[], $2::text[]) AS t(schema_name, table_name)`,
      [targets.map((t) => t.schema), targets.map((t) => t.table), names, `${this.#function}()`, CAPTURE_VERSION],
    );
    const complete = new Set(rows.filter((r) => (r as { found: number }).found === names.length).map((r) => key(r as { schema_name: string; table_name: string })));
    return targets.filter((t) => !complete.has(`${t.schema}.${t.table}`));
  }

  /**
   * A CTE (to prefix a statement that runs inside the writing transaction) that deletes this transaction's
   * captured rows and returns them as `taken`. A transaction that wrote nothing has no transaction id yet, and
   * takes nothing without being given one.
   */
  takeCte(): string {
    return `taken AS (DELETE FROM ${this.#changes} WHERE xid = pg_current_xact_id_if_assigned() RETURNING id, schema_name, table_name, op, old_rows, new_rows)`;
  }

  /** The select list that returns the taken rows as one JSON text (parsed by {@link parseTaken}). */
  takenJson(): string {
    return `(SELECT json_agg(json_build_object('s', schema_name, 't', table_name, 'op', op, 'o', old_rows, 'n', new_rows) ORDER BY id)::text FROM taken)`;
  }

  /**
   * Claims up to `limit` committed changes nobody took — writes of transactions that did not run this library's
   * prepare — for `claimMs`, skipping rows another process holds (one autocommit statement).
   */
  async claimOutside(db: SqlRunner, limit: number, claimMs: number): Promise<{ ids: string[]; changes: CapturedChange[] }> {
    const { rows } = await db.query(
      `WITH claimed AS (
         UPDATE ${this.#changes} SET claimed_until = clock_timestamp() + make_interval(secs => $2::float8 / 1000)
          WHERE id IN (SELECT id FROM ${this.#changes} WHERE claimed_until IS NULL OR claimed_until < clock_timestamp()
                        ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
          RETURNING id, schema_name, table_name, op, old_rows, new_rows)
       SELECT (SELECT array_agg(id::text) FROM claimed) AS ids,
              (SELECT json_agg(json_build_object('s', schema_name, 't', table_name, 'op', op, 'o', old_rows, 'n', new_rows) ORDER BY id)::text FROM claimed) AS taken`,
      [limit, claimMs],
    );
    const row = rows[0] as { ids: string[] | null; taken: string | null };
    return { ids: row.ids ?? [], changes: parseTaken(row.taken) };
  }

  /** Deletes applied changes (or, with `release`, gives claimed ones back for the next run). */
  async finishOutside(db: SqlRunner, ids: readonly string[], release = false): Promise<void> {
    if (ids.length === 0) return;
    const sql = release ? `UPDATE ${this.#changes} SET claimed_until = NULL WHERE id = ANY($1::bigint[])` : `DELETE FROM ${this.#changes} WHERE id = ANY($1::bigint[])`;
    await db.query(sql, [ids]);
  }

  /**
   * The feed's state now, in one catalog-and-index statement:
   *
   * - `identity`: a digest of what decides whether the change table holds every outside change since it was last
   *   followed: the change table's storage (a `TRUNCATE`, a drop and re-create, a `VACUUM FULL` give it new
   *   storage, and rows may have gone with the old) and the capture triggers (installed, dropped, disabled or
   *   replaced on any table: writes may have gone uncaptured). Rejects when the change table is absent.
   * - `oldestAgeMs`: how long ago (database clock) the oldest committed change nobody applied yet was captured;
   *   0 when there is none. Changes of transactions that ran prepare are never seen here (they took them).
   */
  async feedState(db: SqlRunner): Promise<{ identity: string; oldestAgeMs: number }> {
    const names = TRIGGERS.map(({ suffix }) => this.triggerName(suffix));
    const { rows } = await db.query(
      `SELECT (SELECT md5(string_agg(x, ',' ORDER BY x)) FROM (
                SELECT 'c' || c.oid || ':' || c.relfilenode AS x FROM pg_class c WHERE c.oid = $1::regclass
                UNION ALL
                SELECT 't' || g.oid || ':' || g.tgenabled::text FROM pg_trigger g WHERE g.tgname = ANY($2::text[]) AND g.tgfoid = to_regprocedure($3)) s) AS identity,
              coalesce((SELECT extract(epoch FROM clock_timestamp() - created_at) * 1000 FROM ${this.#changes} ORDER BY id LIMIT 1), 0)::float8 AS oldest_ms`,
      [this.#changes, names, `${this.#function}()`],
    );
    const row = rows[0] as { identity: string; oldest_ms: number };
    return { identity: row.identity, oldestAgeMs: Math.max(0, Number(row.oldest_ms)) };
  }

  /**
   * Gives back every claim (a new follower taking over: its predecessor's claims would otherwise hold their rows
   * until they expire). Always safe: claims only save duplicate work, and applying a change twice evicts twice.
   */
  async releaseClaims(db: SqlRunner): Promise<void> {
    await db.query(`UPDATE ${this.#changes} SET claimed_until = NULL WHERE claimed_until IS NOT NULL`);
  }

  /** Takes this transaction's captured changes, for a transaction that has nothing else to send (one statement). */
  async take(db: SqlRunner): Promise<CapturedChange[]> {
    const { rows } = await db.query(`SELECT CASE WHEN pg_current_xact_id_if_assigned() IS NULL THEN NULL ELSE ${this.#take}() END AS taken`);
    return parseTaken((rows[0] as { taken: string | null } | undefined)?.taken ?? null);
  }
}

/**
 * Parses the JSON of taken changes. Numbers that a JavaScript number cannot hold exactly (bigint keys) keep
 * their source text, so keys built from them match the ones readers build.
 */
export function parseTaken(json: string | null): CapturedChange[] {
  if (!json) return [];
  // The reviver costs ~10x the parse itself: only text with a 16-digit run can hold an integer a number cannot.
  const raw = JSON.parse(json, /\d{16}/.test(json) ? exactNumbers : undefined) as Array<{ s: string; t: string; op: CapturedChange['op']; o: Record<string, unknown>[] | null; n: Record<string, unknown>[] | null }> | null;
  return (raw ?? []).map((r) => ({ schema: r.s, table: r.t, op: r.op, ...(r.o ? { oldRows: r.o } : {}), ...(r.n ? { newRows: r.n } : {}) }));
}

function exactNumbers(this: unknown, _key: string, value: unknown, context?: { source?: string }): unknown {
  if (typeof value === 'number' && context?.source !== undefined && !Number.isSafeInteger(value) && /^-?\d+$/.test(context.source)) return context.source;
  return value;
}

/** SQL: the version number in the comment of the capture function `oid` (0 when absent or foreign). */
function installedVersion(oid: string): string {
  return `coalesce(substring(obj_description(${oid}, 'pg_proc') FROM '^${VERSION_COMMENT}(\\d+)$')::int, 0)`;
}

function key(r: { schema_name: string; table_name: string }): string {
  return `${r.schema_name}.${r.table_name}`;
}

/** A PostgreSQL identifier, quoted. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** A dollar-quoted literal whose tag the text does not contain. */
export function dollarQuote(text: string): string {
  let tag = 'q';
  while (text.includes(`$${tag}$`)) tag += 'q';
  return `$${tag}$${text}$${tag}$`;
}

function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}
