/**
 * A worker process of the consistency checker: its own MikroORM with the XA cache over the shared memcached and
 * PostgreSQL, started as an application starts it (`startXaCache` with its defaults: the workers elect one of them
 * to follow the outside-changes feed). It runs one operation at a time as the coordinator sends them over IPC and
 * answers with what it saw; it never decides whether something is an anomaly.
 *
 * Environment: MEMCACHED_SERVERS, DATABASE_URL (with application_name), NAMESPACE, LOG_TABLE, POLICY, LOCK_TTL, LEASE_TTL,
 * HOLD_MS, SWITCHES (JSON `unsafeTestSwitches`), REDIRECT (JSON `{ "<memcached port>": <proxy port> }`: this
 * process's connections to that memcached go through the coordinator's partition proxy, while the ring still
 * hashes by the real address, exactly as in every other process).
 */
import net from 'node:net';
import pg from 'pg';
import { randomUUID } from 'node:crypto';
import { IsolationLevel, MikroORM, type EntityManager } from '@mikro-orm/postgresql';
import { withXaCache } from '../../lib/mikro-orm/with-xa-cache.js';
import { startXaCache } from '../../lib/operations/start-xa-cache.js';
import type { XaCacheRuntime } from '../../lib/operations/xa-cache-runtime.js';
import type { UnsafeTestSwitches } from '../../lib/protocol/protocol-options.js';
import type { XaCacheAdapter } from '../../lib/mikro-orm/xa-cache-adapter.js';
import type { Kysely } from 'kysely';
import { CGroup, CItem, CTag, CODES, CODE_SLOT, consistencyEntities, groupSlot, tagItems, tagOf, type KeyState } from './schema.js';
import type { Observation, Op, OpResult, PhaseMode, WriteVia } from './ops.js';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// Partitions: route this process's connections to the chosen memcached through its proxy.
const redirect = JSON.parse(process.env.REDIRECT ?? '{}') as Record<string, number>;
if (Object.keys(redirect).length > 0) {
  const original = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function patched(this: net.Socket, ...args: unknown[]) {
    const first = args[0];
    const options = (Array.isArray(first) ? first[0] : first) as { port?: number | string } | undefined;
    if (options && typeof options === 'object' && options.port !== undefined) {
      const to = redirect[String(options.port)];
      if (to !== undefined) options.port = to;
    }
    return (original as (...a: unknown[]) => net.Socket).apply(this, args);
  } as typeof original;
}

// A slow database answer now and then: reads of the hot tables are delayed, which widens the window between a
// reader's database read and its fill, where stale fills would happen. With SLOW_READS_OUTSIDE=1 only reads outside
// transactions (the reads that fill the cache) are, so writers' commits land inside that window instead of holding
// their locks longer.
const slowReads = Number(process.env.SLOW_READS ?? '0.15');
const slowReadMs = Number(process.env.SLOW_READ_MS ?? '8');
const slowOutsideOnly = process.env.SLOW_READS_OUTSIDE === '1';
if (slowReads > 0) {
  const query = pg.Client.prototype.query as (...a: unknown[]) => unknown;
  const inTransaction = new WeakSet<pg.Client>();
  pg.Client.prototype.query = function slow(this: pg.Client, ...args: unknown[]) {
    const sql = typeof args[0] === 'string' ? args[0] : ((args[0] as { text?: string } | undefined)?.text ?? '');
    if (/^\s*(begin|start transaction)/i.test(sql)) inTransaction.add(this);
    else if (/^\s*(commit|rollback)/i.test(sql)) inTransaction.delete(this);
    const result = query.apply(this, args);
    if (result instanceof Promise && !(slowOutsideOnly && inTransaction.has(this)) && /^select .*"c_(item|group)"/i.test(sql) && Math.random() < slowReads) {
      return result.then(async (r: unknown) => {
        await sleep(1 + Math.random() * (slowReadMs - 1));
        return r;
      });
    }
    return result;
  } as typeof pg.Client.prototype.query;
}

// A terminated backend can surface as an error event on an idle pooled client; that is a fault we inject.
process.on('uncaughtException', (error) => {
  if (/terminat|ECONNRESET|Connection ended|connection/i.test(String(error))) return;
  process.stderr.write(`worker crashed: ${String(error)}\n${(error as Error).stack ?? ''}\n`);
  process.exit(70);
});

let mode: PhaseMode;
/** Keys the current op's transactions committed without locking (failure policy `degrade`), from the library's warning. */
let degradedKeys: string[] = [];
const holdMs = Number(process.env.HOLD_MS ?? '0');

const orm = await MikroORM.init(
  withXaCache(
    { entities: consistencyEntities, clientUrl: env('DATABASE_URL'), pool: { min: 0, max: 6 } },
    {
      servers: env('MEMCACHED_SERVERS').split(','),
      namespace: env('NAMESPACE'),
      logTable: env('LOG_TABLE'),
      failurePolicy: env('POLICY') as 'strict' | 'degrade',
      lockTtlSeconds: Number(env('LOCK_TTL')),
      leaseTtlSeconds: Number(env('LEASE_TTL')),
      leaseWaitMs: 20,
      writeThrough: process.env.WRITE_THROUGH !== 'off',
      store: { timeoutMs: 150, connectTimeoutMs: 300, retryAfterMs: 100 },
      unsafeTestSwitches: JSON.parse(process.env.SWITCHES ?? '{}') as UnsafeTestSwitches,
      logger: (_level: string, message: string, data?: Record<string, unknown>) => {
        if (/could not be locked/.test(message)) degradedKeys.push(...((data?.keys as string[] | undefined) ?? ['?']));
      },
      midPromoteHook: async (txId: string) => {
        const now = mode;
        mode = undefined;
        if (now === 'crash-mid-promote') {
          process.send!({ type: 'phase', phase: 'mid-promote', txId });
          await new Promise<never>(() => setInterval(() => undefined, 1000));
        }
        if (now === 'hold-mid-promote') {
          process.send!({ type: 'phase', phase: 'hold', txId });
          await sleep(holdMs);
        }
      },
    },
  ),
);

/** Started as an application does; a fault in progress (a terminated backend) can fail it, so it is retried. */
async function start(): Promise<XaCacheRuntime> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startXaCache(orm);
    } catch (error) {
      if (attempt >= 5) throw error;
      await sleep(200);
    }
  }
}
const runtime = await start();

class Rollback extends Error {}

const itemObs = (id: number, item: { version: number; token: string } | null): Observation => ({ key: `i:${id}`, token: item?.token ?? null, version: item?.version ?? null });

/** Locks the slots of items and groups (in id order) and says which items exist and where. */
async function lockSlots(em: EntityManager, ids: number[], groups: number[], codes = false): Promise<Map<number, { version: number; grp: number | null }>> {
  const slots = [...(codes ? [CODE_SLOT] : []), ...ids, ...groups.map(groupSlot)].sort((a, b) => a - b);
  const locked = await em.execute<Array<{ id: number; version: number }>>(
    `SELECT id, version FROM c_slot WHERE id IN (${slots.map(() => '?').join(', ')}) ORDER BY id FOR UPDATE`,
    slots,
  );
  // A second statement: after waiting for a lock, READ COMMITTED re-reads only the locked rows, so a join in
  // the locking statement would still show the items as they were before the lock holder committed.
  const items = ids.length === 0 ? [] : await em.execute<Array<{ id: number; grp_id: number }>>(`SELECT id, grp_id FROM c_item WHERE id IN (${ids.map(() => '?').join(', ')})`, ids);
  return new Map(locked.map((r) => [r.id, { version: r.version, grp: items.find((i) => i.id === r.id)?.grp_id ?? null }]));
}

async function bump(em: EntityManager, slot: number, version: number): Promise<void> {
  await em.execute('UPDATE c_slot SET version = ? WHERE id = ?', [version, slot]);
}

async function membersOf(em: EntityManager, g: number): Promise<number[]> {
  const rows = await em.execute<Array<{ id: number }>>('SELECT id FROM c_item WHERE grp_id = ? ORDER BY id', [g]);
  return rows.map((r) => r.id);
}

async function record(em: EntityManager, token: string, states: KeyState[]): Promise<void> {
  await em.execute('INSERT INTO c_history (token, xid, states) VALUES (?, pg_current_xact_id()::text, ?::jsonb)', [token, JSON.stringify(states)]);
}

/**
 * The writes of one transaction: items updated (by flush, nativeUpdate or raw SQL), moved, inserted or deleted;
 * every group whose membership changes gets a new version. Returns the states it produced.
 */
interface ItemChange {
  id: number;
  /** `recode`: an update that also gives the item `code` (swapping with its holder, an `update` change of the same transaction). */
  action: 'update' | 'move' | 'insert' | 'delete' | 'recode';
  /** For deletes, `cascade`: the database deletes the item when its tag is deleted. */
  via?: WriteVia | 'cascade';
  to?: number;
  /** For inserts (if free) and recodes. */
  code?: string;
}

/** Which item holds each code (codes no item holds are absent). */
async function codeOwners(em: EntityManager): Promise<Map<string, number>> {
  const rows = await em.execute<Array<{ id: number; code: string }>>('SELECT id, code FROM c_item WHERE code IS NOT NULL');
  return new Map(rows.map((r) => [r.code, r.id]));
}

/** Sets one item's code by the way the op asks: the unit of work, raw SQL, or Kysely (the capture alone reports it). */
async function setCode(em: EntityManager, id: number, code: string | null, via: WriteVia | 'cascade' | undefined): Promise<void> {
  if (via === 'execute') await em.execute('UPDATE c_item SET code = ? WHERE id = ?', [code, id]);
  else if (via === 'kysely') await kysely(em).updateTable('c_item').set({ code }).where('id', '=', id).execute();
  else {
    const item = await em.findOneOrFail(CItem, id);
    item.code = code;
    await em.flush();
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const kysely = (em: EntityManager): Kysely<any> => em.getKysely() as unknown as Kysely<any>;

async function applyChanges(em: EntityManager, token: string, changes: ItemChange[], obs: Observation[]): Promise<KeyState[]> {
  const ids = changes.map((c) => c.id);
  const targetGroups = changes.filter((c) => c.to !== undefined).map((c) => c.to!);
  // Lock the groups the items are in now too: read the items' groups first (unlocked), then lock everything.
  const before = await em.execute<Array<{ id: number; grp_id: number }>>(`SELECT id, grp_id FROM c_item WHERE id IN (${ids.map(() => '?').join(', ')})`, ids);
  const groups = [...new Set([...targetGroups, ...before.map((r) => r.grp_id)])];
  // Changes that may move a code between items lock the code slot too (first), and so are serialized.
  const codeWork = changes.some((c) => c.action === 'insert' || c.action === 'delete' || c.action === 'recode');
  let slots = await lockSlots(em, ids, groups, codeWork);
  // An item moved between our two statements: lock its current group as well (bounded retry).
  for (let i = 0; i < 3; i++) {
    const missing = [...slots.entries()].filter(([id, s]) => id > CODE_SLOT && id < 1000 && s.grp !== null && !groups.includes(s.grp)).map(([, s]) => s.grp!);
    if (missing.length === 0) break;
    groups.push(...missing);
    slots = await lockSlots(em, ids, [...new Set(groups)], codeWork);
  }
  const ownersBefore = codeWork ? await codeOwners(em) : new Map<string, number>();
  for (const change of changes) {
    const holder = change.action === 'recode' ? ownersBefore.get(change.code!) : undefined;
    // The holder was read before the locks: a recode whose code changed hands since fails (an allowed error).
    if (holder !== undefined && !ids.includes(holder)) throw new Error(`code ${change.code} changed hands before the lock (now ${holder})`);
  }
  const states: KeyState[] = [];
  const touched = new Set<number>();
  for (const change of changes) {
    const slot = slots.get(change.id)!;
    const exists = slot.grp !== null;
    const version = slot.version + 1;
    await bump(em, change.id, version);
    if (change.action === 'delete' || (!exists && change.action !== 'insert' && change.action !== 'move')) {
      if (exists && change.via === 'cascade') {
        touched.add(slot.grp!);
      } else if (exists) {
        const item = await em.findOneOrFail(CItem, change.id);
        obs.push(itemObs(change.id, item));
        em.remove(item);
        touched.add(slot.grp!);
      }
      states.push({ key: `i:${change.id}`, version, token: null });
      continue;
    }
    if (!exists) {
      const g = change.to ?? 1;
      const code = change.code !== undefined && !ownersBefore.has(change.code) ? change.code : null;
      em.create(CItem, { id: change.id, version, token, code, grp: em.getReference(CGroup, g) });
      touched.add(g);
    } else if (change.via === 'nativeUpdate') {
      await em.nativeUpdate(CItem, { id: change.id }, { version, token });
    } else if (change.via === 'execute') {
      await em.execute('UPDATE c_item SET version = ?, token = ? WHERE id = ?', [version, token, change.id]);
    } else if (change.via === 'kysely') {
      await kysely(em).updateTable('c_item').set({ version, token }).where('id', '=', change.id).execute();
    } else if (change.via === 'trigger') {
      await em.execute('INSERT INTO c_touch (item_id, version, token) VALUES (?, ?, ?)', [change.id, version, token]);
    } else if (change.via === 'function') {
      await em.execute('SELECT c_set_item(?, ?, ?) AS n', [change.id, version, token]);
    } else {
      // Loaded before this transaction wrote the table: may come from the cache (a checked read).
      const item = await em.findOneOrFail(CItem, change.id);
      obs.push(itemObs(change.id, item));
      item.version = version;
      item.token = token;
      if (change.to !== undefined && change.to !== slot.grp) {
        item.grp = em.getReference(CGroup, change.to);
        touched.add(change.to);
        touched.add(slot.grp!);
      }
    }
    states.push({ key: `i:${change.id}`, version, token });
  }
  await em.flush();
  // Recodes: a move to a free code, or a swap with the holder (through a null: the unique index is not deferred).
  for (const change of changes) {
    if (change.action !== 'recode' || slots.get(change.id)!.grp === null) continue;
    const owners = await codeOwners(em);
    const holder = owners.get(change.code!);
    if (holder === change.id) continue;
    const mine = [...owners.entries()].find(([, id]) => id === change.id)?.[0] ?? null;
    if (holder !== undefined) {
      if (mine !== null) await setCode(em, change.id, null, change.via);
      await setCode(em, holder, mine, change.via);
    }
    await setCode(em, change.id, change.code!, change.via);
  }
  // Cascades: delete the tags (the database deletes their items), then re-create them so items can come back.
  const tags = [...new Set(changes.filter((c) => c.via === 'cascade').map((c) => tagOf(c.id)))].sort((a, b) => a - b);
  if (tags.length > 0) {
    await em.nativeDelete(CTag, { id: tags });
    await em.execute(`INSERT INTO c_tag (id) VALUES ${tags.map(() => '(?)').join(', ')}`, tags);
  }
  for (const g of [...touched].sort((a, b) => a - b)) {
    const version = slots.get(groupSlot(g))!.version + 1;
    await bump(em, groupSlot(g), version);
    await em.execute('UPDATE c_group SET version = ?, token = ? WHERE id = ?', [version, token, g]);
    states.push({ key: `g:${g}`, version, token, members: await membersOf(em, g) });
  }
  if (codeWork) {
    const ownersAfter = await codeOwners(em);
    const moved = CODES.filter((c) => ownersBefore.get(c) !== ownersAfter.get(c));
    if (moved.length > 0) {
      const version = slots.get(CODE_SLOT)!.version + 1;
      await bump(em, CODE_SLOT, version);
      for (const c of moved) states.push({ key: `k:${c}`, version, token, owner: ownersAfter.get(c) ?? null });
    }
  }
  return states;
}

/** G4: after flushing, the transaction reads its own writes (rows, a collection, a count). */
async function checkOwnWrites(em: EntityManager, states: KeyState[]): Promise<string[]> {
  const failures: string[] = [];
  em.clear();
  for (const s of states) {
    if (s.key.startsWith('k:')) {
      // Inside a transaction the database answers lookups by a unique key.
      const item = await em.findOne(CItem, { code: s.key.slice(2) });
      if ((item?.id ?? null) !== s.owner) failures.push(`${s.key}: saw owner ${item?.id ?? 'none'}, wrote ${s.owner ?? 'none'}`);
    } else if (s.key.startsWith('i:')) {
      const id = Number(s.key.slice(2));
      const item = await em.findOne(CItem, id);
      if ((item?.token ?? null) !== s.token) failures.push(`${s.key}: saw ${item?.token ?? 'absent'}, wrote ${s.token ?? 'absent'}`);
    } else if (s.members) {
      const g = Number(s.key.slice(2));
      const count = await em.count(CItem, { grp: g }, { cache: 60_000 });
      if (count !== s.members.length) failures.push(`count of ${s.key}: saw ${count}, wrote ${s.members.length}`);
      const group = await em.findOneOrFail(CGroup, g, { populate: ['items'] });
      const members = group.items.getItems().map((i) => i.id).sort((a, b) => a - b);
      if (members.join(',') !== s.members.join(',')) failures.push(`members of ${s.key}: saw [${members}], wrote [${s.members}]`);
    }
  }
  return failures;
}

async function readGroup(em: EntityManager, g: number, obs: Observation[]): Promise<void> {
  const group = await em.findOne(CGroup, g, { populate: ['items'] });
  obs.push({ key: `g:${g}`, token: group?.token ?? null, version: group?.version ?? null });
  if (!group) return;
  const items = group.items.getItems();
  obs.push({ key: `m:${g}`, members: items.map((i) => i.id).sort((a, b) => a - b), via: 'collection' });
  for (const item of items) obs.push(itemObs(item.id, item));
}

async function run(op: Op, tokens: string[]): Promise<OpResult> {
  const obs: Observation[] = [];
  const em = orm.em.fork();
  switch (op.kind) {
    case 'read':
      obs.push(itemObs(op.id, await em.findOne(CItem, op.id)));
      return { ok: true, obs };
    case 'readMany': {
      const found = await em.find(CItem, { id: op.ids });
      for (const id of op.ids) obs.push(itemObs(id, found.find((i) => i.id === id) ?? null));
      return { ok: true, obs };
    }
    case 'group':
      await readGroup(em, op.g, obs);
      return { ok: true, obs };
    case 'byCode': {
      const found = op.codes.length === 1 ? [await em.findOne(CItem, { code: op.codes[0] })].filter((i) => i !== null) : await em.find(CItem, { code: op.codes });
      for (const code of op.codes) {
        const item = found.find((i) => i.code === code) ?? null;
        obs.push({ key: `k:${code}`, owner: item?.id ?? null });
        if (item) obs.push(itemObs(item.id, item));
      }
      return { ok: true, obs };
    }
    case 'count':
      obs.push({ key: `n:${op.g}`, count: await em.count(CItem, { grp: op.g }, { cache: 60_000 }) });
      return { ok: true, obs };
    case 'query': {
      const found = await em.find(CItem, { grp: op.g }, { cache: 60_000 });
      obs.push({ key: `m:${op.g}`, members: found.map((i) => i.id).sort((a, b) => a - b), via: 'query' });
      for (const item of found) obs.push(itemObs(item.id, item));
      return { ok: true, obs };
    }
    case 'rr': {
      let snapshot = '';
      const rrObs: Observation[] = [];
      await em.transactional(
        async (tx) => {
          snapshot = (await tx.execute<Array<{ s: string }>>('SELECT pg_current_snapshot()::text AS s'))[0]!.s;
          for (const id of op.ids) rrObs.push(itemObs(id, await tx.findOne(CItem, id)));
          await sleep(op.pauseMs);
          tx.clear();
          for (const id of op.ids) rrObs.push(itemObs(id, await tx.findOne(CItem, id)));
          await readGroup(tx, op.g, rrObs);
        },
        { isolationLevel: IsolationLevel.REPEATABLE_READ },
      );
      return { ok: true, obs, rr: { snapshot, obs: rrObs } };
    }
    case 'kyselyOutside': {
      // One autocommitted statement: its trigger locks the slot, writes the item and records the history row.
      const token = tokens[0] ?? randomUUID();
      await kysely(em).insertInto('c_kwrite').values({ item_id: op.id, token }).execute();
      return { ok: true, obs, token };
    }
    case 'rrWrite': {
      const token = tokens[0] ?? randomUUID();
      let snapshot = '';
      const rrObs: Observation[] = [];
      try {
        await em.transactional(async (tx) => {
          await tx.execute('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
          snapshot = (await tx.execute<Array<{ s: string }>>('SELECT pg_current_snapshot()::text AS s'))[0]!.s;
          for (const id of op.ids) rrObs.push(itemObs(id, await tx.findOne(CItem, id)));
          tx.clear();
          // Writing a row changed since the snapshot fails (could not serialize): an allowed error.
          const states = await applyChanges(tx, token, op.ids.map((id) => ({ id, action: 'update', via: 'flush' })), []);
          await record(tx, token, states);
          if (op.rollback) throw new Rollback('rollback');
        });
      } catch (error) {
        if (!(error instanceof Rollback)) throw error;
        return { ok: true, obs, rr: { snapshot, obs: rrObs }, rolledBack: [token] };
      }
      return { ok: true, obs, rr: { snapshot, obs: rrObs }, token };
    }
    case 'savepoint': {
      const token = tokens[0] ?? randomUUID();
      const inner = tokens[1] ?? randomUUID();
      await em.transactional(async (tx) => {
        const states = await applyChanges(tx, token, [{ id: op.outer, action: 'update', via: 'flush' }], obs);
        try {
          await tx.transactional(async (sp) => {
            const [slot] = (await sp.execute<Array<{ version: number }>>('SELECT version FROM c_slot WHERE id = ? FOR UPDATE', [op.inner])) as [{ version: number }];
            await bump(sp, op.inner, slot.version + 1);
            const item = await sp.findOne(CItem, op.inner);
            if (item) {
              item.version = slot.version + 1;
              item.token = inner;
              await sp.flush();
            } else {
              await sp.execute('UPDATE c_item SET version = ?, token = ? WHERE id = ?', [slot.version + 1, inner, op.inner]);
            }
            throw new Rollback('savepoint');
          });
        } catch (error) {
          if (!(error instanceof Rollback)) throw error;
        }
        await record(tx, token, states);
      });
      return { ok: true, obs, token, rolledBack: [inner] };
    }
    case 'extUpdate':
    case 'extMove':
      throw new Error(`${op.kind} is the external writer's (external-writer.ts), not an application's`);
    default: {
      const token = tokens[0] ?? randomUUID();
      // A recode swaps with the code's holder: read it now (unlocked), so it is locked with the item.
      const holder = op.kind === 'recode' ? (await em.execute<Array<{ id: number }>>('SELECT id FROM c_item WHERE code = ?', [op.code]))[0]?.id : undefined;
      const changes: ItemChange[] =
        op.kind === 'update'
          ? op.ids.map((id) => ({ id, action: 'update', via: op.via }))
          : op.kind === 'cascade'
            ? tagItems(op.tag).map((id) => ({ id, action: 'delete', via: 'cascade' }))
          : op.kind === 'move'
            ? [{ id: op.id, action: 'move', via: 'flush', to: op.to }]
            : op.kind === 'insert'
              ? [{ id: op.id, action: 'insert', to: op.g, code: op.code }]
            : op.kind === 'recode'
              ? [{ id: op.id, action: 'recode', via: op.via, code: op.code }, ...(holder !== undefined && holder !== op.id ? [{ id: holder, action: 'update' as const, via: op.via }] : [])]
              : op.kind === 'delete'
                ? [{ id: op.id, action: 'delete' }]
                : op.ids.map((id) => (id === op.moveId ? { id, action: 'move', via: 'flush', to: op.to } : { id, action: 'update', via: 'flush' }));
      let ownWriteFailures: string[] = [];
      const rollback = (op.kind === 'multi' || op.kind === 'update' || op.kind === 'cascade') && op.rollback === true;
      try {
        await em.transactional(async (tx) => {
          const states = await applyChanges(tx, token, changes, obs);
          if (op.kind === 'multi' || op.kind === 'recode') ownWriteFailures = await checkOwnWrites(tx, states);
          await record(tx, token, states);
          if (rollback) throw new Rollback('rollback');
        });
      } catch (error) {
        if (!(error instanceof Rollback)) throw error;
        return { ok: true, obs, rolledBack: [token], ownWriteFailures };
      }
      return { ok: true, obs, token, ownWriteFailures };
    }
  }
}

process.on('message', (message: { type: string; seq: number; op: Op; tokens: string[]; mode?: PhaseMode }) => {
  if (message.type === 'quit') {
    void runtime
      .stop()
      .then(() => orm.close(true))
      .then(() => process.exit(0));
    return;
  }
  if (message.type !== 'op') return;
  mode = message.mode;
  degradedKeys = [];
  const degraded = (): { degraded?: string[] } => (degradedKeys.length > 0 ? { degraded: degradedKeys } : {});
  // Tokens come from the coordinator, so it knows them even if this process dies before answering.
  run(message.op, message.tokens).then(
    async (result) => {
      // Promote runs after COMMIT returned, off the op's path: an armed crash must happen in this op's promote, so
      // the answer waits for it (the worker dies there); otherwise the answer would disarm it first, most times.
      if (message.mode === 'crash-mid-promote') await (orm.config.getResultCacheAdapter() as XaCacheAdapter).promotes.settle();
      process.send!({ type: 'done', seq: message.seq, result: { ...result, ...degraded() } });
    },
    (error: unknown) => process.send!({ type: 'done', seq: message.seq, result: { ok: false, error: String(error).slice(0, 300), obs: [], ...degraded() } }),
  ).finally(() => (mode = undefined));
});
process.send!({ type: 'ready' });
