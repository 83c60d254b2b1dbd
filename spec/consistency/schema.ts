/**
 * The schema of the consistency checker: a small hot set of versioned rows in groups, and the history table
 * every committing transaction writes in the same transaction (so the history is exactly the committed writes).
 *
 * - `c_item` (cached): `version` (strictly increasing per id, in commit order) and `token` (unique per
 *   transaction) let every read be matched to the commit it saw; `grp` puts it in a group; `code` (unique,
 *   nullable, one of {@link CODES}) is a declared cached unique key (`findOne(CItem, { code })`): writers move an
 *   item to a free code, swap two items' codes, insert with a code and delete (freeing it).
 * - `c_group` (cached, with its `items` collection): `version` is bumped by every transaction that changes the
 *   group's membership, so membership states are ordered by the group's version.
 * - `c_slot` (raw, not cached): one row per item id and per group, locked `FOR UPDATE` by every writer of that
 *   id, holding the last version given out. Inserts and deletes of the same id are serialized through it too, so
 *   versions never go back when a row is deleted and inserted again. Slot {@link CODE_SLOT} serializes every
 *   transaction that may change which item holds a code (inserts, deletes, cascades, recodes): its version orders
 *   the owner states of codes (`k:<code>`).
 * - `c_history` (raw, not cached): one row per committed transaction: its token, its `pg_current_xact_id()` and
 *   the states it produced. A transaction that rolled back (or whose outcome the client never learned and which
 *   did not commit) has no row.
 *
 * Writes only the database reports (the library hears of them through its write capture alone):
 * - `c_tag` (an entity, not cached): the parent of items `2t-1` and `2t` through `c_item.tag_id`, a generated
 *   column with `ON DELETE CASCADE`: `em.nativeDelete(CTag, ...)` deletes the cached items.
 * - `c_touch` (raw, not cached): its `AFTER INSERT` trigger sets a cached item's version and token.
 * - `c_set_item(id, version, token)`: a function with a side effect (it updates the item).
 * - `c_kwrite` (raw, not cached): its `AFTER INSERT` trigger is a whole writer — it locks the item's slot, bumps
 *   the version, updates the item and records the history row — so one autocommitted insert (through Kysely,
 *   outside any transaction) is a recorded write.
 */
import { defineEntity, p } from '@mikro-orm/postgresql';
import type pg from 'pg';

export const CGroup = defineEntity({
  name: 'CGroup',
  tableName: 'c_group',
  xaCache: true,
  properties: {
    id: p.integer().primary().autoincrement(false),
    version: p.integer(),
    token: p.string(),
    items: () => p.oneToMany(CItem).mappedBy('grp').orderBy({ id: 'asc' }),
  },
});

export const CItem = defineEntity({
  name: 'CItem',
  tableName: 'c_item',
  xaCache: { uniqueKeys: [['code']] },
  properties: {
    id: p.integer().primary().autoincrement(false),
    version: p.integer(),
    token: p.string(),
    code: p.string().nullable().unique(),
    grp: () => p.manyToOne(CGroup),
  },
});

/** The parent of items `2t-1` and `2t` (ON DELETE CASCADE): not cached, deleted with `nativeDelete`. */
export const CTag = defineEntity({
  name: 'CTag',
  tableName: 'c_tag',
  properties: {
    id: p.integer().primary().autoincrement(false),
  },
});

export const consistencyEntities = [CGroup, CItem, CTag];

/** The tag (cascade parent) of an item, and the items of a tag. */
export const tagOf = (id: number): number => Math.floor((id + 1) / 2);
export const tagItems = (t: number): number[] => [2 * t - 1, 2 * t].filter((id) => id <= ITEMS);

/** Hot set: item ids 1..ITEMS (about two thirds exist at the start), groups 1..GROUPS. */
export const ITEMS = 12;
export const GROUPS = 3;
/** Slot ids of groups, so one slot table serializes both. */
export const groupSlot = (g: number): number => 1000 + g;
/** The slot every transaction that may change a code's owner locks (first: it has the lowest id). */
export const CODE_SLOT = 0;
/** The codes items can hold (more than items, so there are free codes to move to); item `id` starts with `k<id>`. */
export const CODES = Array.from({ length: ITEMS + 4 }, (_, i) => `k${i + 1}`);

/** A state a transaction produced for one key (`i:<id>` item row, `g:<id>` group row and its membership, `k:<code>` the code's owner). */
export interface KeyState {
  readonly key: string;
  readonly version: number;
  /** The writer's token; null for a deleted (absent) item. */
  readonly token: string | null;
  /** For groups: the member item ids after the transaction, sorted. */
  readonly members?: number[];
  /** For codes: the id of the item holding the code after the transaction, null if none. */
  readonly owner?: number | null;
}

/** One committed transaction, as read back from `c_history`. */
export interface CommittedTx {
  readonly token: string;
  readonly xid: string;
  readonly states: KeyState[];
}

/** Creates (or recreates) the tables and seeds them. Seeding is itself recorded in the history (token `seed`). */
export async function createConsistencySchema(pool: pg.Pool | pg.Client): Promise<void> {
  await pool.query(`
    DROP TABLE IF EXISTS c_item, c_group, c_slot, c_history, c_tag, c_touch, c_kwrite CASCADE;
    CREATE TABLE c_group (id int PRIMARY KEY, version int NOT NULL, token text NOT NULL);
    CREATE TABLE c_tag (id int PRIMARY KEY);
    CREATE TABLE c_item (id int PRIMARY KEY, version int NOT NULL, token text NOT NULL, code text UNIQUE, grp_id int NOT NULL REFERENCES c_group (id),
      tag_id int GENERATED ALWAYS AS ((id + 1) / 2) STORED REFERENCES c_tag (id) ON DELETE CASCADE);
    CREATE INDEX c_item_grp ON c_item (grp_id);
    CREATE TABLE c_slot (id int PRIMARY KEY, version int NOT NULL);
    CREATE TABLE c_history (token text PRIMARY KEY, xid text NOT NULL, states jsonb NOT NULL);
    CREATE TABLE c_touch (id bigserial PRIMARY KEY, item_id int NOT NULL, version int NOT NULL, token text NOT NULL);
    CREATE OR REPLACE FUNCTION c_touch_apply() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE c_item SET version = NEW.version, token = NEW.token WHERE id = NEW.item_id;
      RETURN NULL;
    END $$;
    CREATE TRIGGER c_touch_apply AFTER INSERT ON c_touch FOR EACH ROW EXECUTE FUNCTION c_touch_apply();
    CREATE OR REPLACE FUNCTION c_set_item(p_id int, p_version int, p_token text) RETURNS int LANGUAGE plpgsql AS $$
    DECLARE n int;
    BEGIN
      UPDATE c_item SET version = p_version, token = p_token WHERE id = p_id;
      GET DIAGNOSTICS n = ROW_COUNT;
      RETURN n;
    END $$;
    CREATE TABLE c_kwrite (id bigserial PRIMARY KEY, item_id int NOT NULL, token text NOT NULL);
    CREATE OR REPLACE FUNCTION c_kwrite_apply() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE v int; n int;
    BEGIN
      -- Each statement takes a new snapshot (READ COMMITTED): the item is read after its slot is locked.
      UPDATE c_slot SET version = version + 1 WHERE id = NEW.item_id RETURNING version INTO v;
      UPDATE c_item SET version = v, token = NEW.token WHERE id = NEW.item_id;
      GET DIAGNOSTICS n = ROW_COUNT;
      INSERT INTO c_history (token, xid, states) VALUES (NEW.token, pg_current_xact_id()::text,
        jsonb_build_array(jsonb_build_object('key', 'i:' || NEW.item_id, 'version', v, 'token', CASE WHEN n > 0 THEN NEW.token END)));
      RETURN NULL;
    END $$;
    CREATE TRIGGER c_kwrite_apply AFTER INSERT ON c_kwrite FOR EACH ROW EXECUTE FUNCTION c_kwrite_apply();
  `);
  for (let t = 1; t <= tagOf(ITEMS); t++) await pool.query('INSERT INTO c_tag (id) VALUES ($1)', [t]);
  const states: KeyState[] = [];
  const members = new Map<number, number[]>();
  await pool.query('BEGIN');
  await pool.query('INSERT INTO c_slot (id, version) VALUES ($1, 1)', [CODE_SLOT]);
  for (let g = 1; g <= GROUPS; g++) members.set(g, []);
  for (let id = 1; id <= ITEMS; id++) {
    await pool.query('INSERT INTO c_slot (id, version) VALUES ($1, 1)', [id]);
    if (id % 3 === 0) {
      states.push({ key: `i:${id}`, version: 1, token: null });
      continue;
    }
    const g = 1 + (id % GROUPS);
    members.get(g)!.push(id);
    states.push({ key: `i:${id}`, version: 1, token: 'seed' });
  }
  for (let g = 1; g <= GROUPS; g++) {
    await pool.query('INSERT INTO c_group (id, version, token) VALUES ($1, 1, $2)', [g, 'seed']);
    await pool.query('INSERT INTO c_slot (id, version) VALUES ($1, 1)', [groupSlot(g)]);
    states.push({ key: `g:${g}`, version: 1, token: 'seed', members: members.get(g)! });
  }
  for (const [g, ids] of members) for (const id of ids) await pool.query('INSERT INTO c_item (id, version, token, code, grp_id) VALUES ($1, 1, $2, $3, $4)', [id, 'seed', `k${id}`, g]);
  const seeded = new Set([...members.values()].flat());
  for (const code of CODES) states.push({ key: `k:${code}`, version: 1, token: 'seed', owner: seeded.has(Number(code.slice(1))) ? Number(code.slice(1)) : null });
  await pool.query(`INSERT INTO c_history (token, xid, states) VALUES ('seed', pg_current_xact_id()::text, $1)`, [JSON.stringify(states)]);
  await pool.query('COMMIT');
}

/** The committed history. */
export async function readHistory(pool: pg.Pool | pg.Client): Promise<CommittedTx[]> {
  const { rows } = await pool.query<{ token: string; xid: string; states: KeyState[] }>('SELECT token, xid, states FROM c_history');
  return rows.map((r) => ({ token: r.token, xid: r.xid, states: r.states }));
}

/** The database's current state of every key, in the form of {@link KeyState}s (versions are those of c_slot). */
export async function readDatabaseState(pool: pg.Pool | pg.Client): Promise<Map<string, { token: string | null; version: number; members?: number[]; owner?: number | null }>> {
  const out = new Map<string, { token: string | null; version: number; members?: number[]; owner?: number | null }>();
  const items = (await pool.query<{ id: number; version: number; token: string; grp_id: number; code: string | null }>('SELECT id, version, token, grp_id, code FROM c_item')).rows;
  for (const code of CODES) out.set(`k:${code}`, { token: null, version: 0, owner: items.find((r) => r.code === code)?.id ?? null });
  for (let id = 1; id <= ITEMS; id++) {
    const row = items.find((r) => r.id === id);
    out.set(`i:${id}`, row ? { token: row.token, version: row.version } : { token: null, version: 0 });
  }
  for (const g of (await pool.query<{ id: number; version: number; token: string }>('SELECT id, version, token FROM c_group')).rows) {
    out.set(`g:${g.id}`, { token: g.token, version: g.version, members: items.filter((r) => r.grp_id === g.id).map((r) => r.id).sort((a, b) => a - b) });
  }
  return out;
}
