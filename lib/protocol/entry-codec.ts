import { hash } from 'node:crypto';
import type { DecodedEntry, Entry, GenerationEntry, LockEntry, LockRecord, ValueEntry } from './entry.js';

/**
 * Binary envelope of every entry:
 *
 * ```
 * 0..1  magic "XA"          3  kind (1 unbound value, 2 lock, 3 lease, 4 generation, 5 bound value)
 * 2     format version (1)  4… body, by kind:
 *   value:      u16 n, n × (u16 len, region utf-8, 16-byte generation), u32 payload length, payload
 *   bound value: 8-byte key tag (SHA-256 of the key it was written for, truncated), then a value's body
 *   lock:       u8 flags (bit 1 prior present), [16-byte prior], then records to the end, 17 bytes each:
 *               '+' or '-' and a 16-byte transaction id (appended by joiners and leavers, see LockEntry)
 *   lease:      16-byte token
 *   generation: 16-byte id
 * ```
 *
 * Ids are UUIDs stored as 16 raw bytes. Every length is checked against the buffer before it is used, so
 * truncated or hostile bytes decode as `foreign`, never as data, and never make the decoder allocate more than
 * the buffer it was given. Every kind but a lock has an exact length: lock records appended (memcached APPEND)
 * to a key that meanwhile stopped holding a lock leave bytes no other kind accepts, so it reads as foreign —
 * except after a generation: a region lock's last holder writes the new generation while joiners' appends are on
 * the wire, and `generation + records` reads as the lock those records would have made had they found the
 * generation (a lock whose prior is that generation, see {@link decodeJoinedGeneration}). Without that, a busy
 * table's region key read as foreign after every such race, and joiners re-locked it by compare-and-swap against
 * a token every further append changed: they could lose every round with no fault anywhere.
 *
 * Values are *bound* to their key: the key tag names the key the value was written for, so bytes copied under
 * another key (by hand, by a bug, across namespaces) decode as foreign there instead of serving another row. The
 * protocol writes only bound values; kind 1 is still decoded when no key is given (tools, tests) and is foreign
 * when one is. Without secrets the tag stops copies and accidents, not an attacker (who can compute it); with
 * secrets the HMAC covers the key as well.
 */
const MAGIC0 = 0x58; // 'X'
const MAGIC1 = 0x41; // 'A'
const VERSION = 1;
const KIND_VALUE = 1;
const KIND_LOCK = 2;
const KIND_LEASE = 3;
const KIND_GENERATION = 4;
const KIND_BOUND_VALUE = 5;
const KEY_TAG_BYTES = 8;
const HEADER = 4;
const ID_BYTES = 16;
const FLAG_PRIOR = 2;
const RECORD_BYTES = 1 + ID_BYTES;
const JOIN = 0x2b; // '+'
const LEAVE = 0x2d; // '-'

/**
 * The most records of one lock that are parsed (17 KiB). A longer lock reads as held by {@link UNKNOWN_HOLDER}
 * without its records being parsed: readers miss and take no lease, writers join it, and nobody finishes it, so it
 * lasts until memcached expires it (a lock lifetime after the last join). Reading it as foreign instead would let a
 * reader start a fresh generation under transactions still in flight. Locks reach it only when writers of one key
 * overlap without a pause long enough for a compaction to land (an overloaded machine: see `prepareTransition`),
 * or when someone plants one, which can cause misses and nothing else.
 */
export const MAX_LOCK_RECORDS = 1024;

/** The holder an overlong lock is read as held by (see {@link MAX_LOCK_RECORDS}). */
export const UNKNOWN_HOLDER = '00000000-0000-0000-0000-000000000000';

/**
 * Encodes an entry into its envelope. With `key`, a value is bound to it (see the format above): only
 * {@link decodeEntry} with the same key accepts it.
 */
export function encodeEntry(entry: Entry, key?: string): Buffer {
  switch (entry.kind) {
    case 'value':
      return encodeValue(entry, key === undefined ? undefined : keyTag(key));
    case 'lock':
      return encodeLock(entry);
    case 'lease':
      return withHeader(KIND_LEASE, uuidToBytes(entry.token));
    case 'generation':
      return withHeader(KIND_GENERATION, uuidToBytes(entry.id));
  }
}

function withHeader(kind: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER + body.length);
  out[0] = MAGIC0;
  out[1] = MAGIC1;
  out[2] = VERSION;
  out[3] = kind;
  body.copy(out, HEADER);
  return out;
}

/** The first bytes of the key's SHA-256: what a bound value names its key by. */
/** Tags of keys seen lately (forgotten all at once when full): a hit decodes one, and a SHA-256 per hit shows in profiles. */
const keyTags = new Map<string, Buffer>();
const KEY_TAG_MEMO = 20_000;

function keyTag(key: string): Buffer {
  let tag = keyTags.get(key);
  if (tag === undefined) {
    if (keyTags.size >= KEY_TAG_MEMO) keyTags.clear();
    tag = hash('sha256', key, 'buffer').subarray(0, KEY_TAG_BYTES);
    keyTags.set(key, tag);
  }
  return tag;
}

function encodeValue(entry: ValueEntry, tag: Buffer | undefined): Buffer {
  const regions = [...entry.generations];
  const names = regions.map(([name]) => Buffer.from(name, 'utf8'));
  const head = HEADER + (tag ? KEY_TAG_BYTES : 0);
  let size = head + 2 + 4 + entry.payload.length;
  for (const name of names) size += 2 + name.length + ID_BYTES;
  const out = Buffer.allocUnsafe(size);
  out[0] = MAGIC0;
  out[1] = MAGIC1;
  out[2] = VERSION;
  out[3] = tag ? KIND_BOUND_VALUE : KIND_VALUE;
  tag?.copy(out, HEADER);
  out.writeUInt16BE(regions.length, head);
  let at = head + 2;
  regions.forEach(([, generation], i) => {
    const name = names[i] as Buffer;
    out.writeUInt16BE(name.length, at);
    at += 2;
    name.copy(out, at);
    at += name.length;
    uuidToBytes(generation).copy(out, at);
    at += ID_BYTES;
  });
  out.writeUInt32BE(entry.payload.length, at);
  entry.payload.copy(out, at + 4);
  return out;
}

function encodeLock(entry: LockEntry): Buffer {
  if (entry.records.length > MAX_LOCK_RECORDS) throw new RangeError(`a lock may carry at most ${MAX_LOCK_RECORDS} records`);
  const hasPrior = entry.prior !== undefined;
  const head = HEADER + 1 + (hasPrior ? ID_BYTES : 0);
  const out = Buffer.allocUnsafe(head + entry.records.length * RECORD_BYTES);
  out[0] = MAGIC0;
  out[1] = MAGIC1;
  out[2] = VERSION;
  out[3] = KIND_LOCK;
  out[HEADER] = hasPrior ? FLAG_PRIOR : 0;
  if (entry.prior !== undefined) uuidToBytes(entry.prior).copy(out, HEADER + 1);
  encodeLockRecords(entry.records).copy(out, head);
  return out;
}

/** The bytes of lock records, as appended to an existing lock. */
export function encodeLockRecords(records: readonly LockRecord[]): Buffer {
  const out = Buffer.allocUnsafe(records.length * RECORD_BYTES);
  records.forEach((r, i) => {
    out[i * RECORD_BYTES] = r.op === '+' ? JOIN : LEAVE;
    uuidToBytes(r.txId).copy(out, i * RECORD_BYTES + 1);
  });
  return out;
}

/**
 * Decodes an envelope; anything that is not a well-formed entry of this format is `foreign`. With `key`, a value
 * must be bound to that key: an unbound value, or one bound to another key, is foreign with reason
 * {@link KEY_MISMATCH}. Without `key` (tools, tests), values are decoded whatever they are bound to.
 */
export function decodeEntry(bytes: Buffer, key?: string): DecodedEntry {
  if (bytes.length < HEADER || bytes[0] !== MAGIC0 || bytes[1] !== MAGIC1) return foreign('no magic');
  if (bytes[2] !== VERSION) return foreign(`format version ${bytes[2]}`);
  switch (bytes[3]) {
    case KIND_VALUE:
      return key === undefined ? decodeValue(bytes, HEADER) : foreign(KEY_MISMATCH);
    case KIND_BOUND_VALUE:
      if (bytes.length < HEADER + KEY_TAG_BYTES) return foreign('truncated value');
      if (key !== undefined && !keyTag(key).equals(bytes.subarray(HEADER, HEADER + KEY_TAG_BYTES))) return foreign(KEY_MISMATCH);
      return decodeValue(bytes, HEADER + KEY_TAG_BYTES);
    case KIND_LOCK:
      return decodeLock(bytes);
    case KIND_LEASE:
      return bytes.length === HEADER + ID_BYTES ? { kind: 'lease', token: bytesToUuid(bytes, HEADER) } : foreign('lease length');
    case KIND_GENERATION:
      if (bytes.length === HEADER + ID_BYTES) return { kind: 'generation', id: bytesToUuid(bytes, HEADER) } satisfies GenerationEntry;
      return bytes.length > HEADER + ID_BYTES ? decodeJoinedGeneration(bytes, HEADER + ID_BYTES) : foreign('generation length');
    default:
      return foreign(`kind ${bytes[3]}`);
  }
}

/** The reason of a value that was not written for the key it was read under. */
export const KEY_MISMATCH = 'written for another key';

function decodeValue(bytes: Buffer, start: number): DecodedEntry {
  if (bytes.length < start + 2) return foreign('truncated value');
  const count = bytes.readUInt16BE(start);
  let at = start + 2;
  const generations = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    if (at + 2 > bytes.length) return foreign('truncated region');
    const length = bytes.readUInt16BE(at);
    at += 2;
    if (at + length + ID_BYTES > bytes.length) return foreign('truncated region');
    const name = lastRegionName.of(bytes, at, length);
    at += length;
    generations.set(name, lastGeneration.of(bytes, at, ID_BYTES));
    at += ID_BYTES;
  }
  if (at + 4 > bytes.length || at + 4 + bytes.readUInt32BE(at) !== bytes.length) return foreign('value length');
  return { kind: 'value', generations, payload: bytes.subarray(at + 4) };
}

/**
 * The text of the bytes decoded last at one place, reused while the same bytes come again: the values of one table
 * name the same region and generation, so a multi-get of a collection's rows decodes them once, not once per row.
 */
class LastText {
  #bytes = Buffer.alloc(0);
  #text = '';

  constructor(private readonly decode: (bytes: Buffer, at: number, length: number) => string) {}

  of(bytes: Buffer, at: number, length: number): string {
    if (length !== this.#bytes.length || bytes.compare(this.#bytes, 0, length, at, at + length) !== 0) {
      this.#bytes = Buffer.from(bytes.subarray(at, at + length));
      this.#text = this.decode(bytes, at, length);
    }
    return this.#text;
  }
}

const lastRegionName = new LastText((bytes, at, length) => bytes.toString('utf8', at, at + length));
const lastGeneration = new LastText((bytes, at) => bytesToUuid(bytes, at));

function decodeLock(bytes: Buffer): DecodedEntry {
  if (bytes.length < HEADER + 1) return foreign('truncated lock');
  const flags = bytes[HEADER] as number;
  if (flags & ~FLAG_PRIOR) return foreign('lock flags');
  let at = HEADER + 1;
  let prior: string | undefined;
  if (flags & FLAG_PRIOR) {
    if (at + ID_BYTES > bytes.length) return foreign('truncated lock');
    prior = bytesToUuid(bytes, at);
    at += ID_BYTES;
  }
  return decodeRecords(bytes, at, prior);
}

/** The length of a generation envelope: a generation `+ records` starts its records there (unsealed). */
export const GENERATION_BYTES = HEADER + ID_BYTES;

/**
 * Lock records appended after a generation, from `recordsAt` (after the generation, and its seal when there is
 * one): the lock prepare would have written over that generation, holding the transactions the records name, with
 * the generation as its prior. The caller vouches for the generation (the sealer checks its tag first).
 */
export function decodeJoinedGeneration(bytes: Buffer, recordsAt: number): DecodedEntry {
  if (bytes.length < GENERATION_BYTES || bytes[3] !== KIND_GENERATION) return foreign('generation length');
  return decodeRecords(bytes, recordsAt, bytesToUuid(bytes, HEADER));
}

/** Whether the envelope is a generation (with or without appended records): what a seal must cover. */
export function isGenerationEnvelope(bytes: Buffer): boolean {
  return bytes.length >= HEADER && bytes[0] === MAGIC0 && bytes[1] === MAGIC1 && bytes[2] === VERSION && bytes[3] === KIND_GENERATION;
}

function decodeRecords(bytes: Buffer, start: number, prior: string | undefined): DecodedEntry {
  let at = start;
  const body = bytes.length - at;
  if (body === 0 || body % RECORD_BYTES !== 0) return foreign('lock records');
  if (body / RECORD_BYTES > MAX_LOCK_RECORDS) return { kind: 'lock', records: [{ op: '+', txId: UNKNOWN_HOLDER }], prior: undefined };
  const records: LockRecord[] = [];
  for (; at < bytes.length; at += RECORD_BYTES) {
    const op = bytes[at];
    if (op !== JOIN && op !== LEAVE) return foreign('lock record');
    records.push({ op: op === JOIN ? '+' : '-', txId: bytesToUuid(bytes, at + 1) });
  }
  return { kind: 'lock', records, prior };
}

function foreign(reason: string): DecodedEntry {
  return { kind: 'foreign', reason };
}

const HEX = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Converts a UUID string to its 16 bytes. */
export function uuidToBytes(uuid: string): Buffer {
  if (!HEX.test(uuid)) throw new TypeError(`not a UUID: ${JSON.stringify(uuid)}`);
  return Buffer.from(uuid.replaceAll('-', ''), 'hex');
}

function bytesToUuid(bytes: Buffer, at: number): string {
  const hex = bytes.toString('hex', at, at + ID_BYTES);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
