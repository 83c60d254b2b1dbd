import { createHash } from 'node:crypto';
import type { CacheAdapter } from '@mikro-orm/core';
import { Client } from 'memjs';
import { openResultCacheContender, type Contender } from './contender.js';

interface NaiveOptions {
  servers: readonly string[];
  prefix: string;
  expiration?: number;
}

const silent = { log: (): void => undefined };

/**
 * The adapter people write by hand: memjs `get`/`set` of JSON, no locks, no leases, no invalidation. A write
 * leaves every cached copy of the row in place until it expires.
 */
export class NaiveMemjsAdapter implements CacheAdapter {
  readonly #client: Client;
  readonly #prefix: string;
  readonly #expiration: number;

  constructor(options: NaiveOptions) {
    this.#client = Client.create(options.servers.join(','), { logger: silent });
    this.#prefix = options.prefix;
    this.#expiration = options.expiration ?? 3_600_000;
  }

  #key(name: string): string {
    const key = `${this.#prefix}:${name}`;
    return key.length <= 200 && !/\s/.test(key) ? key : `${this.#prefix}:${createHash('sha1').update(name).digest('base64url')}`;
  }

  async get<T = unknown>(name: string): Promise<T | undefined> {
    const { value } = await this.#client.get(this.#key(name));
    return value ? (JSON.parse(value.toString()) as T) : undefined;
  }

  async set(name: string, data: unknown, _origin: string, expiration?: number): Promise<void> {
    await this.#client.set(this.#key(name), JSON.stringify(data), { expires: Math.max(1, Math.ceil((expiration ?? this.#expiration) / 1000)) });
  }

  async remove(name: string): Promise<void> {
    await this.#client.delete(this.#key(name));
  }

  async clear(): Promise<void> {
    // memcached cannot drop one prefix; a hand-written adapter flushes everything or nothing.
  }

  close(): void {
    this.#client.close();
  }
}

export const naiveMemjs: Contender = {
  key: 'memjs',
  label: 'naive memjs',
  description: 'a hand-written result-cache adapter: memjs get/set of JSON on the same memcached; no locks, no invalidation',
  memcachedServers: 1,
  unavailable: () => undefined,
  open: (ctx) => openResultCacheContender(ctx, { adapter: NaiveMemjsAdapter, options: { servers: ctx.memcached, prefix: ctx.namespace } }, 'cache', true),
};
