import { StoreConfigError } from './store-errors.js';

/** Settings of a {@link MemcachedStore}. Durations are in milliseconds. */
export interface MemcachedStoreOptions {
  /** Servers as `host:port` (`[v6addr]:port` for IPv6). Keys are spread over them by consistent hashing. */
  readonly servers: readonly string[];
  /** Prefix of every key, so several applications can share the servers. Default `'xa'`. */
  readonly namespace?: string;
  /** Deadline of each operation, from the call until the answer. Default 250. */
  readonly timeoutMs?: number;
  /** Longest wait for a TCP connection (and SASL) to be established. Default 1000. */
  readonly connectTimeoutMs?: number;
  /** After a server fails, operations on its keys fail at once for this long before one attempt reconnects. Default 1000. */
  readonly retryAfterMs?: number;
  /** Largest value sent; larger ones are answered `ValueTooLargeError` without being sent. Default 1 MiB less 512 bytes. */
  readonly maxValueBytes?: number;
  /** SASL PLAIN user name; both `username` and `password` are needed to authenticate. Never logged. */
  readonly username?: string;
  /** SASL PLAIN password. Never logged. */
  readonly password?: string;
}

/** {@link MemcachedStoreOptions} checked and completed with defaults. */
export interface ResolvedStoreOptions {
  readonly servers: readonly ServerAddress[];
  readonly namespace: string;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly retryAfterMs: number;
  readonly maxValueBytes: number;
  readonly username: string | undefined;
  readonly password: string | undefined;
}

/** A parsed `host:port`. */
export interface ServerAddress {
  /** As given, and as reported in errors and CAS tokens. */
  readonly address: string;
  readonly host: string;
  readonly port: number;
}

/**
 * memcached's default item size limit is 1 MiB for the whole item: its header (about 56 bytes), the key (at most
 * 250 bytes) and the value. 512 bytes of margin keeps every value under this limit that passes the store's.
 */
export const DEFAULT_MAX_VALUE_BYTES = 1024 * 1024 - 512;

const ADDRESS = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/;
// The namespace is part of every key, hashed ones included, so it must itself be a text-protocol-safe key part.
const NAMESPACE = /^[\x21-\x39\x3b-\x7e]{1,64}$/;

/** Checks options and fills in defaults; throws {@link StoreConfigError} saying what to fix. */
export function resolveStoreOptions(options: MemcachedStoreOptions): ResolvedStoreOptions {
  if (!Array.isArray(options.servers) || options.servers.length === 0) {
    throw new StoreConfigError('servers must list at least one memcached server as "host:port"', 'servers');
  }
  const seen = new Set<string>();
  const servers = options.servers.map((address) => {
    const parsed = parseAddress(address);
    if (seen.has(parsed.address)) throw new StoreConfigError(`servers lists ${address} twice; list each server once`, 'servers');
    seen.add(parsed.address);
    return parsed;
  });
  const namespace = options.namespace ?? 'xa';
  if (typeof namespace !== 'string' || !NAMESPACE.test(namespace)) {
    throw new StoreConfigError(
      `namespace ${JSON.stringify(namespace)} must be 1 to 64 printable ASCII characters without spaces or ":"`,
      'namespace',
    );
  }
  if ((options.username === undefined) !== (options.password === undefined)) {
    throw new StoreConfigError('username and password must be given together for SASL authentication', 'username');
  }
  return {
    servers,
    namespace,
    timeoutMs: boundedInteger(options.timeoutMs, 250, 'timeoutMs', 1),
    connectTimeoutMs: boundedInteger(options.connectTimeoutMs, 1000, 'connectTimeoutMs', 1),
    retryAfterMs: boundedInteger(options.retryAfterMs, 1000, 'retryAfterMs', 0),
    maxValueBytes: boundedInteger(options.maxValueBytes, DEFAULT_MAX_VALUE_BYTES, 'maxValueBytes', 1),
    username: options.username,
    password: options.password,
  };
}

function parseAddress(address: unknown): ServerAddress {
  const match = typeof address === 'string' ? ADDRESS.exec(address) : null;
  const port = Number(match?.[3]);
  const host = match?.[1] ?? match?.[2];
  if (!match || host === undefined || port < 1 || port > 65535) {
    throw new StoreConfigError(
      `server address ${JSON.stringify(address)} is malformed; write it as "host:port" (for example "127.0.0.1:11211")`,
      'servers',
    );
  }
  return { address: address as string, host, port };
}

// Timers beyond 2^31 - 1 ms fire at once in Node, so larger values are refused rather than silently shortened.
function boundedInteger(value: number | undefined, fallback: number, option: string, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > 2 ** 31 - 1) {
    throw new StoreConfigError(`${option} must be an integer from ${min} to ${2 ** 31 - 1}, got ${String(value)}`, option);
  }
  return value;
}
