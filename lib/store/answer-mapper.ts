import type { StoreOp, StoreResult } from './cache-store.js';
import { HEADER_BYTES, STATUS_TEXT, Status } from './binary-protocol.js';
import { StoreProtocolError, ValueTooLargeError } from './store-errors.js';

// Results without data are shared: they are immutable and the most common answers.
const NOT_FOUND: StoreResult = Object.freeze({ status: 'not_found' });
const EXISTS: StoreResult = Object.freeze({ status: 'exists' });
const DELETED: StoreResult = Object.freeze({ status: 'deleted' });
const TOUCHED: StoreResult = Object.freeze({ status: 'touched' });

/** The `not_found` result, also used for misses of quiet gets, which get no answer at all. */
export const NOT_FOUND_RESULT = NOT_FOUND;
/** The `exists` result, also used for CAS tokens of an earlier connection, which are never sent. */
export const EXISTS_RESULT = EXISTS;

/**
 * Turns memcached's answer to `op` (the message at `off` in `buf`) into a result. The status meanings depend on
 * the command: "not stored" is an existing key for `add` but a missing one for `replace` and `cas`.
 */
export function mapAnswer(
  op: StoreOp,
  buf: Buffer,
  off: number,
  server: string,
  epoch: number,
  maxValueBytes: number,
): StoreResult {
  const status = buf.readUInt16BE(off + 6);
  if (status === Status.ok) {
    switch (op.op) {
      case 'get': {
        const extras = buf[off + 4] as number;
        const start = off + HEADER_BYTES + extras + buf.readUInt16BE(off + 2);
        const end = off + HEADER_BYTES + buf.readUInt32BE(off + 8);
        // A copy, so a value kept by the caller does not pin the whole socket chunk it arrived in.
        const value = Buffer.from(buf.subarray(start, end));
        const flags = extras >= 4 ? buf.readUInt32BE(off + HEADER_BYTES) : 0;
        return { status: 'hit', item: { value, flags, cas: { server, epoch, value: buf.readBigUInt64BE(off + 16) } } };
      }
      case 'delete':
        return DELETED;
      case 'touch':
        return TOUCHED;
      case 'incr': {
        const at = off + HEADER_BYTES + (buf[off + 4] as number) + buf.readUInt16BE(off + 2);
        const cas = { server, epoch, value: buf.readBigUInt64BE(off + 16) };
        return { status: 'counter', value: buf.readBigUInt64BE(at), cas };
      }
      default:
        return { status: 'stored', cas: { server, epoch, value: buf.readBigUInt64BE(off + 16) } };
    }
  }
  switch (status) {
    case Status.notFound:
      if (op.op !== 'set' && op.op !== 'add') return NOT_FOUND;
      break;
    case Status.exists:
      if (op.op === 'add' || op.op === 'cas' || op.op === 'delete') return EXISTS;
      break;
    case Status.notStored:
      if (op.op === 'add') return EXISTS;
      if (op.op === 'replace' || op.op === 'cas' || op.op === 'append') return NOT_FOUND;
      break;
    case Status.tooLarge:
      if ('value' in op) {
        return { status: 'error', error: new ValueTooLargeError(op.op, op.key, op.value.length, maxValueBytes, server) };
      }
      break;
  }
  const detail = STATUS_TEXT[status] ?? 'unknown status';
  return { status: 'error', error: new StoreProtocolError(op.op, op.key, server, status, detail) };
}
