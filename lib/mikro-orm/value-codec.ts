import { deserialize, serialize } from 'node:v8';

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;

/**
 * Cached rows, collections and query results, as bytes. Two formats, told apart by their first byte:
 *
 * - **JSON** for a plain object or an array whose values are all strings, booleans, `null` or finite numbers other
 *   than `-0` (most rows, every list of ids): JSON round-trips exactly those, and `JSON.parse` is about three times
 *   faster than V8's deserializer on such a row (docs/benchmarks.md, "Value codec"). Its text starts with `{` or `[`.
 * - **V8's structured serialisation** for everything else (Date, bigint, Buffer, nested objects, `undefined`,
 *   `-0`, `NaN`), which keeps JavaScript types exactly where JSON would turn dates and bigints into strings the ORM
 *   would then hydrate differently from a database read. Its bytes start with V8's version tag (`0xFF`).
 *
 * A process of an earlier version reads a JSON payload as undecodable: a miss, and its fill replaces it.
 */
export function encodeValue(value: unknown): Buffer {
  return jsonExact(value) ? Buffer.from(JSON.stringify(value), 'utf8') : serialize(value);
}

/** Decodes a cached value; bytes that do not decode are reported as not ok (a miss), never thrown. */
export function decodeValue(bytes: Buffer): { ok: true; value: unknown } | { ok: false } {
  try {
    const first = bytes[0];
    return { ok: true, value: first === OPEN_BRACE || first === OPEN_BRACKET ? JSON.parse(bytes.toString('utf8')) : deserialize(bytes) };
  } catch {
    return { ok: false };
  }
}

/** Whether JSON gives `value` back exactly: a plain object or a dense array of JSON-exact scalars. */
function jsonExact(value: unknown): boolean {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!(i in value) || !exactScalar(value[i])) return false;
    return true;
  }
  if (value === null || typeof value !== 'object' || Object.getPrototypeOf(value) !== Object.prototype) return false;
  for (const key of Object.keys(value)) {
    // JSON.parse makes "__proto__" an own property; structured cloning would too, but keep the rare case on V8.
    if (key === '__proto__' || !exactScalar((value as Record<string, unknown>)[key])) return false;
  }
  return true;
}

function exactScalar(value: unknown): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value) && !Object.is(value, -0);
    case 'object':
      return value === null;
    default:
      return false;
  }
}
