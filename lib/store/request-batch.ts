import type { StoreOp } from './cache-store.js';
import type { ExecuteCall } from './execute-call.js';
import type { StoreError } from './store-errors.js';
import { HEADER_BYTES, NO_CREATE, Opcode, writeRequestHeader } from './binary-protocol.js';
import { NOT_FOUND_RESULT, mapAnswer } from './answer-mapper.js';

/** What {@link RequestBatch.accept} made of an answer. */
export type AcceptOutcome = 'more' | 'done' | 'mismatch';

/**
 * The operations of one `execute` call bound for one server, encoded into one buffer and written in one
 * `socket.write`. Requests carry consecutive opaques; gets are quiet (GETQ: no answer on a miss) except the last
 * request, which is never quiet, so its answer proves every earlier quiet get without an answer missed.
 */
export class RequestBatch {
  readonly ops: StoreOp[] = [];
  /** Position of each operation in the call's results. */
  readonly indexes: number[] = [];
  readonly keys: string[] = [];
  #bytes = 0;
  #firstOpaque = 0;
  /** Position of the next request awaiting an answer. */
  #next = 0;
  /** When the batch must have settled (`performance.now()` time). */
  deadline = 0;
  sent = false;
  /** Whether the deadline was already extended once for a stall of our own event loop. */
  credited = false;

  constructor(
    readonly call: ExecuteCall,
    readonly server: string,
    /** The connection epoch this batch belongs to; it is never sent on another connection. */
    readonly epoch: number,
    readonly maxValueBytes: number,
  ) {}

  /** Adds an operation, with its memcached key, answering into `results[index]`. */
  add(op: StoreOp, index: number, key: string): void {
    this.ops.push(op);
    this.indexes.push(index);
    this.keys.push(key);
    this.#bytes += HEADER_BYTES + Buffer.byteLength(key) + extrasBytes(op) + ('value' in op ? op.value.length : 0);
  }

  get size(): number {
    return this.ops.length;
  }

  /** Encodes every request, with opaques from `firstOpaque` on. */
  encode(firstOpaque: number): Buffer {
    this.#firstOpaque = firstOpaque;
    const buf = Buffer.allocUnsafe(this.#bytes);
    const last = this.ops.length - 1;
    let off = 0;
    for (let i = 0; i <= last; i++) {
      const op = this.ops[i] as StoreOp;
      const extras = extrasBytes(op);
      const keyBytes = buf.write(this.keys[i] as string, off + HEADER_BYTES + extras, 'utf8');
      const opaque = (firstOpaque + i) >>> 0;
      const x = off + HEADER_BYTES;
      switch (op.op) {
        case 'get':
          writeRequestHeader(buf, off, i === last ? Opcode.get : Opcode.getQuiet, keyBytes, 0, keyBytes, opaque, 0n);
          break;
        case 'delete':
          writeRequestHeader(buf, off, Opcode.delete, keyBytes, 0, keyBytes, opaque, op.cas?.value ?? 0n);
          break;
        case 'touch':
          writeRequestHeader(buf, off, Opcode.touch, keyBytes, 4, 4 + keyBytes, opaque, 0n);
          buf.writeUInt32BE(op.ttl, x);
          break;
        case 'append':
          writeRequestHeader(buf, off, Opcode.append, keyBytes, 0, keyBytes + op.value.length, opaque, 0n);
          buf.set(op.value, x + keyBytes);
          break;
        case 'incr':
          writeRequestHeader(buf, off, Opcode.increment, keyBytes, 20, 20 + keyBytes, opaque, 0n);
          buf.writeBigUInt64BE(op.delta, x);
          buf.writeBigUInt64BE(op.initial ?? 0n, x + 8);
          buf.writeUInt32BE(op.initial === undefined ? NO_CREATE : op.ttl, x + 16);
          break;
        default: {
          const opcode = op.op === 'add' ? Opcode.add : op.op === 'replace' ? Opcode.replace : Opcode.set;
          const cas = op.op === 'cas' ? op.cas.value : 0n;
          writeRequestHeader(buf, off, opcode, keyBytes, 8, 8 + keyBytes + op.value.length, opaque, cas);
          buf.writeUInt32BE(op.flags ?? 0, x);
          buf.writeUInt32BE(op.ttl, x + 4);
          buf.set(op.value, x + 8 + keyBytes);
        }
      }
      off += HEADER_BYTES + extras + keyBytes + ('value' in op ? op.value.length : 0);
    }
    return buf;
  }

  /**
   * Takes the answer at `off` in `buf` carrying `opaque`. Quiet gets before it that got no answer were misses.
   * `mismatch` means the answer belongs to no request of this batch: the connection is out of step.
   */
  accept(opaque: number, buf: Buffer, off: number): AcceptOutcome {
    const last = this.ops.length - 1;
    for (;;) {
      const i = this.#next;
      if (i > last) return 'mismatch';
      if (((this.#firstOpaque + i) >>> 0) === opaque) {
        this.call.settle(this.indexes[i] as number, mapAnswer(this.ops[i] as StoreOp, buf, off, this.server, this.epoch, this.maxValueBytes));
        this.#next = i + 1;
        if (i < last) return 'more';
        this.call.batchSettled();
        return 'done';
      }
      if (i === last || this.ops[i]?.op !== 'get') return 'mismatch';
      this.call.settle(this.indexes[i] as number, NOT_FOUND_RESULT);
      this.#next = i + 1;
    }
  }

  /** Fails every request still unanswered with the error `makeError` builds for it. */
  fail(makeError: (op: string, key: string, server: string) => StoreError): void {
    const last = this.ops.length - 1;
    if (this.#next > last) return;
    for (let i = this.#next; i <= last; i++) {
      const op = this.ops[i] as StoreOp;
      this.call.settle(this.indexes[i] as number, { status: 'error', error: makeError(op.op, op.key, this.server) });
    }
    this.#next = last + 1;
    this.call.batchSettled();
  }
}

function extrasBytes(op: StoreOp): number {
  switch (op.op) {
    case 'get':
    case 'delete':
    case 'append':
      return 0;
    case 'touch':
      return 4;
    case 'incr':
      return 20;
    default:
      return 8;
  }
}
