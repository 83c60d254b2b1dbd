/**
 * The parts of memcached's binary protocol the store speaks. Every message is a 24-byte header, then extras, key
 * and value; `opaque` is echoed in the answer, which is how answers are matched to requests.
 */
export const Opcode = {
  get: 0x00,
  set: 0x01,
  add: 0x02,
  replace: 0x03,
  delete: 0x04,
  increment: 0x05,
  noop: 0x0a,
  append: 0x0e,
  /** A GET that is not answered on a miss. */
  getQuiet: 0x09,
  touch: 0x1c,
  saslListMechs: 0x20,
  saslAuth: 0x21,
} as const;

/** Answer statuses (header bytes 6-7). */
export const Status = {
  ok: 0x00,
  notFound: 0x01,
  exists: 0x02,
  tooLarge: 0x03,
  invalidArguments: 0x04,
  notStored: 0x05,
  nonNumeric: 0x06,
  authError: 0x20,
} as const;

/** Human names of statuses, for error messages. */
export const STATUS_TEXT: Readonly<Record<number, string>> = {
  0x01: 'key not found',
  0x02: 'key exists',
  0x03: 'value too large',
  0x04: 'invalid arguments',
  0x05: 'item not stored',
  0x06: 'incr on a non-numeric value',
  0x20: 'authentication error',
  0x81: 'unknown command',
  0x82: 'out of memory',
  0x83: 'not supported',
  0x84: 'internal error',
  0x85: 'busy',
  0x86: 'temporary failure',
};

/** Size of every message header. */
export const HEADER_BYTES = 24;
/** First byte of a request. */
export const REQUEST_MAGIC = 0x80;
/** First byte of an answer; anything else means the stream is out of step. */
export const RESPONSE_MAGIC = 0x81;
/** The expiration that tells INCR not to create a missing counter. */
export const NO_CREATE = 0xffffffff;
/** memcached's longest relative TTL; larger numbers would be read as Unix times. */
export const MAX_TTL_SECONDS = 60 * 60 * 24 * 30;

/** Writes a request header at `off`. A `cas` of 0n means "unconditional". */
export function writeRequestHeader(
  buf: Buffer,
  off: number,
  opcode: number,
  keyBytes: number,
  extrasBytes: number,
  bodyBytes: number,
  opaque: number,
  cas: bigint,
): void {
  buf[off] = REQUEST_MAGIC;
  buf[off + 1] = opcode;
  buf.writeUInt16BE(keyBytes, off + 2);
  buf[off + 4] = extrasBytes;
  buf[off + 5] = 0;
  buf.writeUInt16BE(0, off + 6);
  buf.writeUInt32BE(bodyBytes, off + 8);
  buf.writeUInt32BE(opaque, off + 12);
  if (cas === 0n) {
    buf.writeUInt32BE(0, off + 16);
    buf.writeUInt32BE(0, off + 20);
  } else {
    buf.writeBigUInt64BE(cas, off + 16);
  }
}
