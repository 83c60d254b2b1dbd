import type { StoreOp } from './cache-store.js';
import { MAX_TTL_SECONDS } from './binary-protocol.js';
import { StoreInputError, ValueTooLargeError, type StoreError } from './store-errors.js';

const MAX_U64 = 2n ** 64n - 1n;

/**
 * Checks what can be checked before an operation is sent: its shape, TTL, flags, counter numbers and value size.
 * Returns the error to answer with, or `undefined` when the operation may be sent. Callers can reach the store
 * from untyped code, so nothing here trusts the static types.
 */
export function checkOp(op: StoreOp, maxValueBytes: number): StoreError | undefined {
  const name = typeof op?.op === 'string' ? op.op : 'unknown';
  if (typeof op?.key !== 'string') return new StoreInputError(`${name} needs a string key`, name, undefined, undefined);
  switch (op.op) {
    case 'get':
      return undefined;
    case 'delete':
      return undefined;
    case 'touch':
      return checkTtl(op.op, op.key, op.ttl);
    case 'append':
      if (!(op.value instanceof Uint8Array)) return new StoreInputError('value of append must be a Buffer', op.op, op.key, undefined);
      return op.value.length > maxValueBytes ? new ValueTooLargeError(op.op, op.key, op.value.length, maxValueBytes) : undefined;
    case 'incr':
      return (
        checkTtl(op.op, op.key, op.ttl) ??
        checkU64(op.op, op.key, 'delta', op.delta) ??
        (op.initial === undefined ? undefined : checkU64(op.op, op.key, 'initial', op.initial))
      );
    case 'set':
    case 'add':
    case 'replace':
    case 'cas': {
      const bad = checkTtl(op.op, op.key, op.ttl);
      if (bad) return bad;
      if (op.flags !== undefined && !(Number.isInteger(op.flags) && op.flags >= 0 && op.flags <= 0xffffffff)) {
        return new StoreInputError(`flags of ${op.op} must be an unsigned 32-bit integer`, op.op, op.key, undefined);
      }
      if (!(op.value instanceof Uint8Array)) {
        return new StoreInputError(`value of ${op.op} must be a Buffer`, op.op, op.key, undefined);
      }
      if (op.value.length > maxValueBytes) return new ValueTooLargeError(op.op, op.key, op.value.length, maxValueBytes);
      return undefined;
    }
    default:
      return new StoreInputError(`unknown store operation ${JSON.stringify(name)}`, name, (op as { key: string }).key, undefined);
  }
}

function checkTtl(op: string, key: string, ttl: unknown): StoreError | undefined {
  if (typeof ttl === 'number' && Number.isInteger(ttl) && ttl >= 0 && ttl <= MAX_TTL_SECONDS) return undefined;
  return new StoreInputError(`ttl of ${op} must be whole seconds from 0 to ${MAX_TTL_SECONDS}, got ${String(ttl)}`, op, key, undefined);
}

function checkU64(op: string, key: string, field: string, value: unknown): StoreError | undefined {
  if (typeof value === 'bigint' && value >= 0n && value <= MAX_U64) return undefined;
  return new StoreInputError(`${field} of ${op} must be a bigint from 0 to 2^64 - 1`, op, key, undefined);
}
