import type { DecodedEntry, Entry, GenerationEntry, LockEntry, ValueEntry } from './entry.js';

/**
 * Binary envelope of every entry:
 *
 * ```
 * 0..1  magic "XA"          3  kind (1 value, 2 lock, 3 lease, 4 generation)
 * 2     format version (1)  4… body, by kind:
 *   value:      u16 n, n × (u16 len, region utf-8, 16-byte generation), then the payload to the end
 *   lock:       u8 flags (bit 0 concurrent, bit 1 prior present), [16-byte prior], u16 n, n × 16-byte holder
 *   lease:      16-byte token
 *   generation: 16-byte id
 * ```
 *
 * Ids are UUIDs stored as 16 raw bytes. Every length is checked against the buffer before it is used, so
 * truncated or hostile bytes decode as `foreign`, never as data, and never make the decoder allocate more than
 * the buffer it was given.
 */
const MAGIC0 = 0x58; // 'X'
const MAGIC1 = 0x41; // 'A'
const VERSION = 1;
const KIND_VALUE = 1;
const KIND_LOCK = 2;
const KIND_LEASE = 3;
const KIND_GENERATION = 4;
const HEADER = 4;
const ID_BYTES = 16;
const FLAG_CONCURRENT = 1;
const FLAG_PRIOR = 2;

/** The most holders one lock may list; more means something is badly wrong (or hostile). */
export const MAX_LOCK_HOLDERS = 4096;

/** Encodes an entry into its envelope. */
export function encodeEntry(entry: Entry): Buffer {
  switch (entry.kind) {
    case 'value':
      return encodeValue(entry);
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

function encodeValue(entry: ValueEntry): Buffer {
  const regions = [...entry.generations];
  const names = regions.map(([name]) => Buffer.from(name, 'utf8'));
  let size = HEADER + 2 + entry.payload.length;
  for (const name of names) size += 2 + name.length + ID_BYTES;
  const out = Buffer.allocUnsafe(size);
  out[0] = MAGIC0;
  out[1] = MAGIC1;
  out[2] = VERSION;
  out[3] = KIND_VALUE;
  out.writeUInt16BE(regions.length, HEADER);
  let at = HEADER + 2;
  regions.forEach(([, generation], i) => {
    const name = names[i] as Buffer;
    out.writeUInt16BE(name.length, at);
    at += 2;
    name.copy(out, at);
    at += name.length;
    uuidToBytes(generation).copy(out, at);
    at += ID_BYTES;
  });
  entry.payload.copy(out, at);
  return out;
}

function encodeLock(entry: LockEntry): Buffer {
  if (entry.holders.length > MAX_LOCK_HOLDERS) throw new RangeError(`a lock may list at most ${MAX_LOCK_HOLDERS} holders`);
  const hasPrior = entry.prior !== undefined;
  const out = Buffer.allocUnsafe(HEADER + 1 + (hasPrior ? ID_BYTES : 0) + 2 + entry.holders.length * ID_BYTES);
  out[0] = MAGIC0;
  out[1] = MAGIC1;
  out[2] = VERSION;
  out[3] = KIND_LOCK;
  out[HEADER] = (entry.concurrent ? FLAG_CONCURRENT : 0) | (hasPrior ? FLAG_PRIOR : 0);
  let at = HEADER + 1;
  if (entry.prior !== undefined) {
    uuidToBytes(entry.prior).copy(out, at);
    at += ID_BYTES;
  }
  out.writeUInt16BE(entry.holders.length, at);
  at += 2;
  for (const holder of entry.holders) {
    uuidToBytes(holder).copy(out, at);
    at += ID_BYTES;
  }
  return out;
}

/** Decodes an envelope; anything that is not a well-formed entry of this format is `foreign`. */
export function decodeEntry(bytes: Buffer): DecodedEntry {
  if (bytes.length < HEADER || bytes[0] !== MAGIC0 || bytes[1] !== MAGIC1) return foreign('no magic');
  if (bytes[2] !== VERSION) return foreign(`format version ${bytes[2]}`);
  switch (bytes[3]) {
    case KIND_VALUE:
      return decodeValue(bytes);
    case KIND_LOCK:
      return decodeLock(bytes);
    case KIND_LEASE:
      return bytes.length === HEADER + ID_BYTES ? { kind: 'lease', token: bytesToUuid(bytes, HEADER) } : foreign('lease length');
    case KIND_GENERATION:
      return bytes.length === HEADER + ID_BYTES ? ({ kind: 'generation', id: bytesToUuid(bytes, HEADER) } satisfies GenerationEntry) : foreign('generation length');
    default:
      return foreign(`kind ${bytes[3]}`);
  }
}

function decodeValue(bytes: Buffer): DecodedEntry {
  if (bytes.length < HEADER + 2) return foreign('truncated value');
  const count = bytes.readUInt16BE(HEADER);
  let at = HEADER + 2;
  const generations = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    if (at + 2 > bytes.length) return foreign('truncated region');
    const length = bytes.readUInt16BE(at);
    at += 2;
    if (at + length + ID_BYTES > bytes.length) return foreign('truncated region');
    const name = bytes.toString('utf8', at, at + length);
    at += length;
    generations.set(name, bytesToUuid(bytes, at));
    at += ID_BYTES;
  }
  return { kind: 'value', generations, payload: bytes.subarray(at) };
}

function decodeLock(bytes: Buffer): DecodedEntry {
  if (bytes.length < HEADER + 3) return foreign('truncated lock');
  const flags = bytes[HEADER] as number;
  if (flags & ~(FLAG_CONCURRENT | FLAG_PRIOR)) return foreign('lock flags');
  let at = HEADER + 1;
  let prior: string | undefined;
  if (flags & FLAG_PRIOR) {
    if (at + ID_BYTES > bytes.length) return foreign('truncated lock');
    prior = bytesToUuid(bytes, at);
    at += ID_BYTES;
  }
  if (at + 2 > bytes.length) return foreign('truncated lock');
  const count = bytes.readUInt16BE(at);
  at += 2;
  if (count === 0 || count > MAX_LOCK_HOLDERS || at + count * ID_BYTES !== bytes.length) return foreign('lock holders');
  const holders: string[] = [];
  for (let i = 0; i < count; i++, at += ID_BYTES) holders.push(bytesToUuid(bytes, at));
  return { kind: 'lock', holders, concurrent: (flags & FLAG_CONCURRENT) !== 0, prior };
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
