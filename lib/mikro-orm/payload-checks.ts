import type { PayloadVerdict } from '../protocol/cache-reader.js';
import { pkString } from './cache-keys.js';
import { isRow, type Row } from './driver-rows.js';
import { decodeValue } from './value-codec.js';

/**
 * What the MikroORM layer accepts as a cached payload, checked by the reader before a read counts as a hit (see
 * `ReadOptions.accept`): a payload that does not decode, or decodes to data its key does not name, is a miss the
 * next fill replaces. The envelope already binds each value to its key; these checks hold the payload itself to
 * the key as well, so even bytes written by a buggy or older writer cannot serve another row.
 */

/** A row whose primary key is the one its key names (`pkOfKey`), never another row of the table. */
export function acceptRow(pkProp: string, pkOfKey: ReadonlyMap<string, string>): (payload: Buffer, key: string) => PayloadVerdict {
  return (payload, key) => rowWithPk(payload, pkProp, pkOfKey.get(key));
}

/** {@link acceptRow} for the one key of a read: the row must have primary key `pk` (as `pkString` prints it). */
export function acceptRowWithPk(pkProp: string, pk: string): (payload: Buffer) => PayloadVerdict {
  return (payload) => rowWithPk(payload, pkProp, pk);
}

function rowWithPk(payload: Buffer, pkProp: string, pk: string | undefined): PayloadVerdict {
  const decoded = decodeValue(payload);
  if (!decoded.ok || !isRow(decoded.value)) return UNDECODABLE;
  const row = decoded.value as Row;
  return pk === pkString(row[pkProp]) ? { ok: true, value: row } : MISBOUND;
}

/** A collection: the list of its member primary keys (its owner is bound by the envelope's key). */
export function acceptMemberIds(payload: Buffer): PayloadVerdict {
  const decoded = decodeValue(payload);
  return decoded.ok && Array.isArray(decoded.value) ? decoded : UNDECODABLE;
}

/** A unique-key index entry: the primary key of the row holding its values (its values are bound by the envelope's key). */
export function acceptKeyValue(payload: Buffer): PayloadVerdict {
  const decoded = decodeValue(payload);
  const v = decoded.ok ? decoded.value : undefined;
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint' ? { ok: true, value: v } : UNDECODABLE;
}

/** A query result: anything that decodes (its key, MikroORM's result-cache key, is bound by the envelope). */
export function acceptDecodable(payload: Buffer): PayloadVerdict {
  const decoded = decodeValue(payload);
  return decoded.ok ? decoded : UNDECODABLE;
}

const UNDECODABLE: PayloadVerdict = { ok: false, reason: 'undecodable' };
const MISBOUND: PayloadVerdict = { ok: false, reason: 'misbound' };
