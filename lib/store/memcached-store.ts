import type {
  CacheStore,
  CasToken,
  MultiGetResult,
  ServerProbe,
  StoreCounters,
  StoreOp,
  StoreResult,
  StoreResultOf,
  StoredItem,
} from './cache-store.js';
import { EXISTS_RESULT } from './answer-mapper.js';
import { ExecuteCall } from './execute-call.js';
import { KetamaRing } from './ketama-ring.js';
import { KeyBuilder } from './key-builder.js';
import { MemcachedConnection } from './memcached-connection.js';
import { resolveStoreOptions, type MemcachedStoreOptions, type ResolvedStoreOptions } from './memcached-store-options.js';
import { checkOp } from './op-checks.js';
import { RequestBatch } from './request-batch.js';
import { StoreInputError, StoreUnavailableError, type StoreError } from './store-errors.js';

const PROBE_KEY = 'xa-probe';
/** How many answers of `serverFor` are remembered. */
const SERVER_FOR_MEMO = 10_000;

type ExecuteResults<Ops extends readonly StoreOp[]> = { -readonly [I in keyof Ops]: StoreResultOf<Ops[I]> };

/**
 * A {@link CacheStore} on memcached's binary protocol, over memjs's `Server`.
 *
 * Each `execute` writes the operations bound for one server in one socket write (calls made in the same
 * microtask share it) and settles every operation within `timeoutMs`. A server that fails is refused for
 * `retryAfterMs`, its keys answered `unavailable`; keys never move to another server. See docs/store.md.
 */
export class MemcachedStore implements CacheStore {
  /** @inheritDoc */
  readonly counters: StoreCounters = { roundTrips: 0, requests: 0, errors: {}, hashedKeys: 0, stalls: 0 };
  /** @inheritDoc */
  readonly maxValueBytes: number;
  /** @inheritDoc */
  readonly servers: readonly string[];
  readonly #options: ResolvedStoreOptions;
  readonly #ring: KetamaRing;
  #keys: KeyBuilder;
  #serverFor = new Map<string, string>();
  #olderServerFor = new Map<string, string>();
  readonly #connections: readonly MemcachedConnection[];
  #closed = false;

  /** Checks the options (throwing `StoreConfigError`); connections open on first use. */
  constructor(options: MemcachedStoreOptions) {
    this.#options = resolveStoreOptions(options);
    this.maxValueBytes = this.#options.maxValueBytes;
    this.servers = Object.freeze(this.#options.servers.map((s) => s.address));
    this.#ring = new KetamaRing(this.servers);
    this.#keys = new KeyBuilder(this.#options.namespace, this.counters);
    const settings = { ...this.#options, counters: this.counters };
    this.#connections = this.#options.servers.map((server) => new MemcachedConnection(server, settings));
  }

  /** Same as the constructor, for symmetry with other stores. */
  static create(options: MemcachedStoreOptions): MemcachedStore {
    return new MemcachedStore(options);
  }

  /** @inheritDoc */
  execute<const Ops extends readonly StoreOp[]>(ops: Ops): Promise<ExecuteResults<Ops>> {
    const call = new ExecuteCall(ops.length, false, this.counters);
    this.#submit(ops, call);
    return call.promise as Promise<ExecuteResults<Ops>>;
  }

  /** @inheritDoc */
  get(key: string): Promise<StoreResultOf<{ op: 'get'; key: string }>> {
    const call = new ExecuteCall(1, true, this.counters);
    this.#submit([{ op: 'get', key }], call);
    return call.promise as Promise<StoreResultOf<{ op: 'get'; key: string }>>;
  }

  /** @inheritDoc */
  async getMulti(keys: readonly string[]): Promise<MultiGetResult> {
    const unique = [...new Set(keys)];
    const results = await this.execute(unique.map((key) => ({ op: 'get', key }) as const));
    const items = new Map<string, StoredItem>();
    const failed = new Map<string, StoreError>();
    results.forEach((result, i) => {
      const key = unique[i] as string;
      if (result.status === 'hit') items.set(key, result.item);
      else if (result.status === 'error') failed.set(key, result.error);
    });
    return { items, failed };
  }

  /**
   * @inheritDoc
   * With several servers, remembered for the last {@link SERVER_FOR_MEMO} to twice as many keys (two generations:
   * when the newer is full it becomes the older and the older is forgotten, so a working set near the limit keeps
   * its keys instead of losing them all at once), and forgotten on `scopeTo`: the protocol asks it for every key of
   * every read, and an MD5 per key would otherwise cost a noticeable share of a hit.
   */
  serverFor(key: string): string {
    if (this.servers.length === 1) return this.servers[0] as string;
    let server = this.#serverFor.get(key);
    if (server !== undefined) return server;
    server = this.#olderServerFor.get(key) ?? this.#ring.serverFor(this.#keys.build(key, false));
    if (this.#serverFor.size >= SERVER_FOR_MEMO) {
      this.#olderServerFor = this.#serverFor;
      this.#serverFor = new Map();
    }
    this.#serverFor.set(key, server);
    return server;
  }

  /**
   * Narrows every key to one scope within the namespace: keys become `namespace/scope:key`. The MikroORM layer
   * scopes to the database's identity once it knows it (at connect), before its first cache operation; scoping
   * again (a reconnect to other data) simply leaves the old scope's keys to expire.
   */
  scopeTo(scope: string): void {
    const namespace = `${this.#options.namespace}/${scope}`;
    if (!/^[\x21-\x39\x3b-\x7e]{1,160}$/.test(namespace)) throw new RangeError(`scope ${JSON.stringify(scope)} must be printable ASCII without spaces or ":"`);
    this.#keys = new KeyBuilder(namespace, this.counters);
    this.#serverFor = new Map();
    this.#olderServerFor = new Map();
  }

  /**
   * What every memcached key of this store starts with: `namespace:`, or `namespace/scope:` once scoped (see
   * {@link scopeTo}); hashed keys go on with `h:`. For operators' tools that list keys (`inspect --scan-locks`).
   */
  get keyPrefix(): string {
    return this.#keys.prefix;
  }

  /** The memcached key a logical key is stored under (namespaced, hashed if needed), for operators and tests. */
  keyFor(key: string): string {
    return this.#keys.build(key, false);
  }

  /**
   * @inheritDoc
   * Each server gets a `get` of `<namespace>:xa-probe` sent to it directly (not through the ring), after its
   * connection attempt ended (at most `connectTimeoutMs`); the answer has the usual `timeoutMs` deadline. A server
   * backing off after a failure is reported unreachable at once, with that failure.
   */
  async probe(): Promise<readonly ServerProbe[]> {
    return Promise.all(
      this.#connections.map(async (connection): Promise<ServerProbe> => {
        const started = performance.now();
        const unreachable = (error: StoreError): ServerProbe => ({ server: connection.address, reachable: false, ms: performance.now() - started, error });
        const down = (): ServerProbe =>
          unreachable(StoreUnavailableError.serverDown('get', PROBE_KEY, connection.address, this.#closed ? new Error('the store is closed') : connection.lastFailure));
        if (this.#closed || !connection.usable(started)) return down();
        await connection.attempted();
        if (!connection.isReady) return down();
        const call = new ExecuteCall(1, true, this.counters);
        const batch = new RequestBatch(call, connection.address, connection.epoch, this.maxValueBytes);
        batch.add({ op: 'get', key: PROBE_KEY }, 0, this.#keys.build(PROBE_KEY, false));
        call.addBatch();
        connection.enqueue(batch, performance.now());
        call.start();
        const result = (await call.promise) as StoreResult;
        return result.status === 'error' ? unreachable(result.error) : { server: connection.address, reachable: true, ms: performance.now() - started };
      }),
    );
  }

  /**
   * @inheritDoc
   * Operations issued before `close` settle normally (each within its deadline) before the sockets close;
   * operations issued afterwards fail with `unavailable`.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#connections.map((connection) => connection.drain()));
  }

  #submit(ops: readonly StoreOp[], call: ExecuteCall): void {
    const now = performance.now();
    const connections = this.#connections;
    const batches = new Array<RequestBatch | undefined>(connections.length);
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i] as StoreOp;
      const bad = checkOp(op, this.maxValueBytes);
      if (bad) {
        call.settle(i, { status: 'error', error: bad });
        continue;
      }
      const key = this.#keys.build(op.key);
      const s = this.#ring.indexFor(key);
      const connection = connections[s] as MemcachedConnection;
      if (this.#closed || !connection.usable(now)) {
        const cause = this.#closed ? new Error('the store is closed') : connection.lastFailure;
        call.settle(i, { status: 'error', error: StoreUnavailableError.serverDown(op.op, op.key, connection.address, cause) });
        continue;
      }
      const token = op.op === 'cas' || op.op === 'delete' ? op.cas : undefined;
      if (token !== undefined) {
        const refused = this.#checkToken(op, token, connection);
        if (refused) {
          call.settle(i, refused);
          continue;
        }
      }
      let batch = batches[s];
      if (batch === undefined) {
        batch = new RequestBatch(call, connection.address, connection.epoch, this.maxValueBytes);
        batches[s] = batch;
      }
      batch.add(op, i, key);
    }
    for (let s = 0; s < batches.length; s++) {
      const batch = batches[s];
      if (batch === undefined) continue;
      call.addBatch();
      (connections[s] as MemcachedConnection).enqueue(batch, now);
    }
    call.start();
  }

  /** A token of another server is a caller's mistake; one of an earlier connection may match a foreign item. */
  #checkToken(op: StoreOp, token: CasToken, connection: MemcachedConnection): StoreResult | undefined {
    if (typeof token !== 'object' || token === null || typeof token.value !== 'bigint' || token.value < 0n || token.value >= 2n ** 64n) {
      return { status: 'error', error: new StoreInputError(`${op.op} needs a CAS token from a get or a write`, op.op, op.key, connection.address) };
    }
    if (token.server !== connection.address) {
      const message = `${op.op} got a CAS token of ${token.server} for a key on ${connection.address}`;
      return { status: 'error', error: new StoreInputError(message, op.op, op.key, connection.address) };
    }
    return token.epoch === connection.epoch ? undefined : EXISTS_RESULT;
  }
}
