/**
 * The external writer of the consistency checker: a program that does not use the library. One plain `pg`
 * client (no MikroORM, no `withXaCache`, and not marked `xa_cache.managed`, so the capture notifies the elected
 * follower at each COMMIT) writes rows of the cached tables as the coordinator asks, keeping the checker's history
 * model: it locks the `c_slot` rows it writes (items, then groups, in id order, as every writer does), writes the
 * next version, and records its states in `c_history` in the same transaction.
 *
 * It answers each op with when its COMMIT was acknowledged (`ackAt`, epoch ms at sub-millisecond resolution:
 * `performance.timeOrigin + performance.now()`), which the coordinator puts on its own clock.
 *
 * Environment: DATABASE_URL.
 */
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { groupSlot, type KeyState } from './schema.js';
import type { Op, OpResult } from './ops.js';

const url = process.env.DATABASE_URL;
if (url === undefined) throw new Error('DATABASE_URL is not set');

let client: pg.Client | undefined;

/** The writer's one connection, opened again after it was lost. */
async function connection(): Promise<pg.Client> {
  if (client) return client;
  const fresh = new pg.Client({ connectionString: url, application_name: 'xa-consistency-external' });
  // A lost connection surfaces as the failed query's error; the next op connects again.
  fresh.on('error', () => {
    if (client === fresh) client = undefined;
  });
  await fresh.connect();
  client = fresh;
  return fresh;
}

/** Locks the slots of `ids` (in id order) and returns their last versions. */
async function lockSlots(db: pg.Client, ids: readonly number[]): Promise<Map<number, number>> {
  const { rows } = await db.query<{ id: number; version: number }>('SELECT id, version FROM c_slot WHERE id = ANY($1::int[]) ORDER BY id FOR UPDATE', [ids]);
  return new Map(rows.map((r) => [r.id, r.version]));
}

async function bump(db: pg.Client, slot: number, version: number): Promise<void> {
  await db.query('UPDATE c_slot SET version = $1 WHERE id = $2', [version, slot]);
}

/** Sets an item's version and token; its state (token null when the item does not exist). */
async function updateItem(db: pg.Client, id: number, version: number, token: string): Promise<KeyState> {
  const { rowCount } = await db.query('UPDATE c_item SET version = $1, token = $2 WHERE id = $3', [version, token, id]);
  return { key: `i:${id}`, version, token: (rowCount ?? 0) > 0 ? token : null };
}

/** The writes of one external op, inside its transaction: the states it produced. */
async function write(db: pg.Client, op: Op, token: string): Promise<KeyState[]> {
  if (op.kind === 'extUpdate') {
    const versions = await lockSlots(db, op.ids);
    const states: KeyState[] = [];
    for (const id of op.ids) {
      const version = versions.get(id)! + 1;
      await bump(db, id, version);
      states.push(await updateItem(db, id, version, token));
    }
    return states;
  }
  if (op.kind !== 'extMove') throw new Error(`the external writer does not run ${op.kind}`);
  // The item's slot first (every writer that moves it holds it), then its group is stable to read.
  const version = (await lockSlots(db, [op.id])).get(op.id)! + 1;
  const from = (await db.query<{ grp_id: number }>('SELECT grp_id FROM c_item WHERE id = $1', [op.id])).rows[0]?.grp_id;
  if (from === undefined || from === op.to) {
    await bump(db, op.id, version);
    return [await updateItem(db, op.id, version, token)];
  }
  const groups = [from, op.to].sort((a, b) => a - b);
  const groupVersions = await lockSlots(db, groups.map(groupSlot));
  await bump(db, op.id, version);
  await db.query('UPDATE c_item SET grp_id = $1, version = $2, token = $3 WHERE id = $4', [op.to, version, token, op.id]);
  const states: KeyState[] = [{ key: `i:${op.id}`, version, token }];
  for (const g of groups) {
    const gv = groupVersions.get(groupSlot(g))! + 1;
    await bump(db, groupSlot(g), gv);
    await db.query('UPDATE c_group SET version = $1, token = $2 WHERE id = $3', [gv, token, g]);
    const members = (await db.query<{ id: number }>('SELECT id FROM c_item WHERE grp_id = $1 ORDER BY id', [g])).rows.map((r) => r.id);
    states.push({ key: `g:${g}`, version: gv, token, members });
  }
  return states;
}

async function run(op: Op, token: string): Promise<OpResult> {
  const db = await connection();
  await db.query('BEGIN');
  try {
    const states = await write(db, op, token);
    await db.query("INSERT INTO c_history (token, xid, states) VALUES ($1, pg_current_xact_id()::text, $2::jsonb)", [token, JSON.stringify(states)]);
  } catch (error) {
    await db.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
  // A COMMIT that fails (connection lost) has an unknown outcome: the op fails, its token never counts as returned.
  await db.query('COMMIT');
  return { ok: true, obs: [], token, ackAt: performance.timeOrigin + performance.now() };
}

process.on('message', (message: { type: string; seq: number; op: Op; tokens: string[] }) => {
  if (message.type === 'quit') {
    void (client?.end() ?? Promise.resolve()).finally(() => process.exit(0));
    return;
  }
  if (message.type !== 'op') return;
  run(message.op, message.tokens[0]!).then(
    (result) => process.send!({ type: 'done', seq: message.seq, result }),
    (error: unknown) => {
      // Not an error the server sent: the connection is suspect, the next op opens a new one.
      if (!(error instanceof pg.DatabaseError)) {
        void client?.end().catch(() => undefined);
        client = undefined;
      }
      process.send!({ type: 'done', seq: message.seq, result: { ok: false, error: String(error).slice(0, 300), obs: [] } });
    },
  );
});
process.send!({ type: 'ready' });
