import { deserialize, serialize } from 'node:v8';

/**
 * Cached rows and query results keep their JavaScript types (Date, bigint, Buffer, nested objects) through
 * memcached: V8's structured serialisation does that natively and fast, where JSON would turn dates and bigints
 * into strings the ORM would then hydrate differently from a database read.
 */
export function encodeValue(value: unknown): Buffer {
  return serialize(value);
}

/** Decodes a cached value; bytes that do not decode are reported as undefined (a miss), never thrown. */
export function decodeValue(bytes: Buffer): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: deserialize(bytes) };
  } catch {
    return { ok: false };
  }
}
