import { hash } from 'node:crypto';

/** memcached's longest key, in bytes. */
export const MAX_KEY_BYTES = 250;

// The binary protocol would take any byte, but operators read keys with the text protocol, which forbids these.
const FORBIDDEN = /[\x00-\x20\x7f]/;

/**
 * Turns logical keys into memcached keys: `namespace:key`, or `namespace:h:<sha256, base64url>` when that would be
 * over 250 bytes or hold bytes the text protocol forbids. Logical keys that start with `h:` are hashed too, so a
 * logical key can never collide with the hashed form of another.
 */
export class KeyBuilder {
  readonly #prefix: string;
  readonly #hashedPrefix: string;

  /** What every key built here starts with: `namespace:` (hashed keys go on with `h:`). */
  get prefix(): string {
    return this.#prefix;
  }

  constructor(
    namespace: string,
    /** Where hashed keys are counted. */
    readonly counters: { hashedKeys: number },
  ) {
    this.#prefix = `${namespace}:`;
    this.#hashedPrefix = `${namespace}:h:`;
  }

  /** The memcached key for a logical key; `count` says whether a hashed key counts in `counters.hashedKeys`. */
  build(key: string, count = true): string {
    const full = this.#prefix + key;
    // A UTF-8 encoding is never shorter than the UTF-16 one, so the cheap length check settles most keys.
    if (
      full.length > MAX_KEY_BYTES ||
      (key.charCodeAt(0) === 0x68 && key.charCodeAt(1) === 0x3a) ||
      FORBIDDEN.test(key) ||
      Buffer.byteLength(full) > MAX_KEY_BYTES
    ) {
      if (count) this.counters.hashedKeys++;
      return this.#hashedPrefix + hash('sha256', full, 'base64url');
    }
    return full;
  }
}
