import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { DecodedEntry, Entry } from './entry.js';
import { decodeEntry, decodeJoinedGeneration, encodeEntry, GENERATION_BYTES, isGenerationEnvelope, KEY_MISMATCH } from './entry-codec.js';

/**
 * How entries become bytes under a key and back. {@link EntrySealer} is the one implementation: with no secret it
 * is the plain envelope; with secrets it authenticates (and optionally encrypts) what a reader could be lied to with.
 */
export interface EntryCodec {
  encode(key: string, entry: Entry): Buffer;
  /** Decodes; bytes that are not ours, or whose authentication fails, are `foreign` (`forged` says which). */
  decode(key: string, bytes: Buffer, quiet?: boolean): DecodedEntry;
}

const TAG_BYTES = 32;
const NONCE_BYTES = 12;
const GCM_TAG_BYTES = 16;
const MIN_SECRET_BYTES = 16;

/**
 * Why bytes were refused: `forged` (authentication failed: planted, or copied from another key), `undecryptable`,
 * or `misbound` (a value written for another key, caught by its key tag when no secret is set).
 */
export type SealFailure = 'forged' | 'undecryptable' | 'misbound';

/**
 * Values and region generations — the entries a reader would trust — carry an HMAC-SHA-256 over the key and the
 * envelope, so memcached bytes written by anyone without the secret, or copied from another key, are refused.
 * Secrets rotate: the first signs, all verify. With `encrypt`, value payloads are sealed with AES-256-GCM (a fresh
 * nonce per entry, the key as associated data), so plain `get`s on memcached see no data.
 *
 * Locks and leases are not sealed: lock records are appended blindly (an APPEND carries no MAC), and a forged lock
 * or lease can only cause misses, never serve data. A sealed entry can still be replayed under the same key by
 * someone who captured it; see docs/security.md.
 */
export class EntrySealer implements EntryCodec {
  readonly #macKeys: Buffer[];
  readonly #encKeys: Buffer[];
  readonly #encrypt: boolean;
  readonly #onRefused: ((reason: SealFailure, key: string) => void) | undefined;
  #scope = '';

  constructor(secrets: readonly string[] = [], options: { encrypt?: boolean; onRefused?: (reason: SealFailure, key: string) => void } = {}) {
    this.#macKeys = secrets.map((s) => derive(s, 'mikro-orm-xa-cache mac'));
    this.#encKeys = secrets.map((s) => derive(s, 'mikro-orm-xa-cache aes-256-gcm'));
    this.#encrypt = options.encrypt ?? false;
    this.#onRefused = options.onRefused;
  }

  /** Whether entries are authenticated. */
  get sealed(): boolean {
    return this.#macKeys.length > 0;
  }

  /**
   * The data every key of this codec names (a database's identity): from now on values are bound to, and
   * authenticated for, the scope and the key together, so an entry copied from another database's namespace under
   * the same key is refused like one copied from another key. Set once, before the first read.
   */
  setScope(scope: string): void {
    this.#scope = scope;
  }

  /** What entries are bound to: the key within the scope (a newline cannot occur in a scope). */
  #bound(key: string): string {
    return this.#scope === '' ? key : `${this.#scope}\n${key}`;
  }

  encode(logicalKey: string, entry: Entry): Buffer {
    const key = this.#bound(logicalKey);
    if (!this.sealed || (entry.kind !== 'value' && entry.kind !== 'generation')) return encodeEntry(entry, key);
    const body = entry.kind === 'value' && this.#encrypt ? encodeEntry({ ...entry, payload: this.#seal(key, entry.payload) }, key) : encodeEntry(entry, key);
    return Buffer.concat([body, mac(this.#macKeys[0] as Buffer, key, body)]);
  }

  /** `quiet`: a refused entry is not reported (a look-ahead read; the read that counts reports it). */
  decode(logicalKey: string, bytes: Buffer, quiet = false): DecodedEntry {
    const key = this.#bound(logicalKey);
    if (!this.sealed) {
      const entry = decodeEntry(bytes, key);
      return entry.kind === 'foreign' && entry.reason === KEY_MISMATCH ? this.#refuse('misbound', logicalKey, quiet) : entry;
    }
    // Locks and leases are plain; a value or generation without a valid tag decodes as foreign here, since the
    // tag makes it longer than its exact length. A generation with joins appended is a lock whose prior is that
    // generation: a rollback would restore it, so it counts only when the generation's own tag holds.
    if (isGenerationEnvelope(bytes)) return this.#joinedGeneration(key, logicalKey, bytes, quiet);
    const plain = decodeEntry(bytes);
    if (plain.kind === 'lock' || plain.kind === 'lease') return plain;
    if (bytes.length <= TAG_BYTES) return this.#refuse('forged', logicalKey, quiet);
    const body = bytes.subarray(0, bytes.length - TAG_BYTES);
    const tag = bytes.subarray(bytes.length - TAG_BYTES);
    if (!this.#macKeys.some((k) => timingSafeEqual(mac(k, key, body), tag))) return this.#refuse('forged', logicalKey, quiet);
    const entry = decodeEntry(body, key);
    if (entry.kind !== 'value' && entry.kind !== 'generation') return this.#refuse('forged', logicalKey, quiet);
    if (entry.kind !== 'value' || !this.#encrypt) return entry;
    const payload = this.#open(key, entry.payload);
    return payload ? { ...entry, payload } : this.#refuse('undecryptable', logicalKey, quiet);
  }

  /** A sealed generation, or one followed by appended lock records (see `decodeJoinedGeneration`). */
  #joinedGeneration(key: string, logicalKey: string, bytes: Buffer, quiet: boolean): DecodedEntry {
    const sealedLength = GENERATION_BYTES + TAG_BYTES;
    if (bytes.length < sealedLength) return this.#refuse('forged', logicalKey, quiet);
    const body = bytes.subarray(0, GENERATION_BYTES);
    const tag = bytes.subarray(GENERATION_BYTES, sealedLength);
    if (!this.#macKeys.some((k) => timingSafeEqual(mac(k, key, body), tag))) return this.#refuse('forged', logicalKey, quiet);
    return bytes.length === sealedLength ? decodeEntry(body) : decodeJoinedGeneration(bytes, sealedLength);
  }

  #seal(key: string, payload: Buffer): Buffer {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#encKeys[0] as Buffer, nonce);
    cipher.setAAD(Buffer.from(key, 'utf8'));
    return Buffer.concat([nonce, cipher.update(payload), cipher.final(), cipher.getAuthTag()]);
  }

  #open(key: string, sealed: Buffer): Buffer | undefined {
    if (sealed.length < NONCE_BYTES + GCM_TAG_BYTES) return undefined;
    for (const encKey of this.#encKeys) {
      try {
        const decipher = createDecipheriv('aes-256-gcm', encKey, sealed.subarray(0, NONCE_BYTES));
        decipher.setAAD(Buffer.from(key, 'utf8'));
        decipher.setAuthTag(sealed.subarray(sealed.length - GCM_TAG_BYTES));
        return Buffer.concat([decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - GCM_TAG_BYTES)), decipher.final()]);
      } catch {
        // try the next secret
      }
    }
    return undefined;
  }

  #refuse(reason: SealFailure, key: string, quiet: boolean): DecodedEntry {
    if (!quiet) this.#onRefused?.(reason, key);
    return { kind: 'foreign', reason };
  }
}

/** Checks secrets: at least one, each at least 16 bytes, no duplicates. Returns a message, or undefined when fine. */
export function secretsProblem(secrets: unknown): string | undefined {
  if (!Array.isArray(secrets) || secrets.length === 0) return 'a non-empty list of strings, the newest first';
  for (const s of secrets) if (typeof s !== 'string' || Buffer.byteLength(s) < MIN_SECRET_BYTES) return `strings of at least ${MIN_SECRET_BYTES} bytes (use 32 random bytes, e.g. base64 of crypto.randomBytes(32))`;
  if (new Set(secrets).size !== secrets.length) return 'distinct secrets';
  return undefined;
}

function derive(secret: string, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.alloc(0), purpose, 32));
}

function mac(macKey: Buffer, key: string, body: Buffer): Buffer {
  const keyBytes = Buffer.from(key, 'utf8');
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32BE(keyBytes.length);
  // The key's length goes first so that no (key, body) pair can be re-split into another valid pair.
  return createHmac('sha256', macKey).update(length).update(keyBytes).update(body).digest();
}
