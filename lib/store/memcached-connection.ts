import { connect, type Socket } from 'node:net';
import { inspect } from 'node:util';
import { Server } from 'memjs';
import type { StoreCounters } from './cache-store.js';
import type { ServerAddress } from './memcached-store-options.js';
import type { RequestBatch } from './request-batch.js';
import { BatchFifo } from './batch-fifo.js';
import { HEADER_BYTES, Opcode, RESPONSE_MAGIC } from './binary-protocol.js';
import { StoreTimeoutError, StoreUnavailableError } from './store-errors.js';

/** What a {@link MemcachedConnection} needs from the store. */
export interface ConnectionSettings {
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly retryAfterMs: number;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly counters: StoreCounters;
}

/** `down`: failed, refusing work until the back-off ends; `idle`: no socket, the next batch opens one. */
type State = 'idle' | 'connecting' | 'ready' | 'down';

const connectionLost = StoreTimeoutError.connectionLost;

/**
 * A deadline timer that fires this much later than it was due was held up by our own event loop (a busy loop, a
 * long synchronous task, a GC pause, or a starved CPU), not by the server: the time it was late is then credited
 * back, once, to every batch in flight instead of failing them. Timers on a loaded machine run a few milliseconds late; this is well
 * above that and well below any useful `timeoutMs`.
 */
export const STALL_TOLERANCE_MS = 25;

// Epochs are unique in the process, not only per connection, so a token that strays into another store instance
// (whose epochs would otherwise count from 1 as well) is refused rather than sent.
let lastEpoch = 0;

/**
 * One server's connection: memjs's `Server` (its SASL exchange and settings) with the socket lifecycle, request
 * pipelining and deadlines redone, because memjs 1.3.2 can leave a request pending forever:
 *
 * 1. the `close` handler of an old socket clears the *current* socket and its request timer, so a request on the
 *    new socket never times out. Here every socket event is ignored unless it comes from the current socket.
 * 2. when the server closes the connection (FIN) with a request in flight, nothing fails the request. Here `end`,
 *    `close` and `error` of the current socket fail everything in flight.
 *
 * Answers are matched to requests by opaque, relying on memcached answering in order. A request that misses its
 * deadline therefore poisons the connection (a late answer would sit in front of later ones): the socket is
 * destroyed, every request on it fails (`StoreTimeoutError`, outcome unknown for writes) and the server is marked
 * down for `retryAfterMs`. Each socket starts a new epoch; CAS tokens of an earlier epoch are never sent.
 * Used directly by {@link MemcachedStore}, not through a memjs `Client`, whose `write` path this class bypasses.
 */
export class MemcachedConnection extends Server {
  readonly address: string;
  readonly #settings: ConnectionSettings;
  #state: State = 'idle';
  #socket: Socket | undefined;
  #epoch = 0;
  #downUntil = 0;
  #lastFailure: unknown;
  #closing = false;
  #drained: (() => void) | undefined;
  #nextOpaque = 1;
  /** Every live batch: the sent ones, then the `#outbox.length` not yet written. */
  readonly #batches = new BatchFifo();
  #outbox: Buffer[] = [];
  #flushQueued = false;
  #deadlineTimer: NodeJS.Timeout | undefined;
  /** When the deadline timer is due (`performance.now()` time), to tell a late timer (our stall) from a slow server. */
  #deadlineDue = 0;
  /** A deadline verdict deferred to the check phase, so that answers already received are read first. */
  #verdict: NodeJS.Immediate | undefined;
  /** How long our event loop was stalled while the timer waited, measured when it fired. */
  #stalledMs = 0;
  #connectTimer: NodeJS.Timeout | undefined;
  /** Bytes of a partly received answer, and how many are needed before it is worth parsing again. */
  #partial: Buffer[] = [];
  #partialBytes = 0;
  #partialNeeded = 0;
  /** Waiting for the connection attempt under way to end (ready or failed). */
  #openWaiters: Array<() => void> = [];

  constructor(server: ServerAddress, settings: ConnectionSettings) {
    super(server.host, server.port, settings.username, settings.password, {
      timeout: settings.timeoutMs / 1000,
      conntimeout: settings.connectTimeoutMs / 1000,
    });
    // memjs falls back to MEMCACHIER_* credentials from the environment; authenticate only when configured to.
    const credentials = this as unknown as { username: string | undefined; password: string | undefined };
    credentials.username = settings.username;
    credentials.password = settings.password;
    this.address = server.address;
    this.#settings = settings;
  }

  /** Which socket the connection is on; a new one for every socket. */
  get epoch(): number {
    return this.#epoch;
  }

  /** Whether the socket is open (and logged in): batches are written at once. */
  get isReady(): boolean {
    return this.#state === 'ready';
  }

  /**
   * Resolves when no connection attempt is under way: at once unless connecting, else once the socket is ready or
   * the attempt failed (refused, or no connection within `connectTimeoutMs`).
   */
  attempted(): Promise<void> {
    if (this.#state !== 'connecting') return Promise.resolve();
    return new Promise((resolve) => this.#openWaiters.push(resolve));
  }

  /** Why the server was last marked down. */
  get lastFailure(): unknown {
    return this.#lastFailure;
  }

  /**
   * Whether a batch may be queued now. False while closing or backing off after a failure; once the back-off is
   * over, opens a socket (a new epoch) so the batch goes out on that one attempt.
   */
  usable(now: number): boolean {
    if (this.#closing) return false;
    if (this.#state === 'ready' || this.#state === 'connecting') return true;
    if (this.#state === 'down' && now < this.#downUntil) return false;
    this.#connect();
    return true;
  }

  /** Queues a batch built for the current epoch; it is written with the others queued in this microtask. */
  enqueue(batch: RequestBatch, now: number): void {
    const count = batch.size;
    if (this.#nextOpaque + count > 0xffffffff) this.#nextOpaque = 1;
    this.#outbox.push(batch.encode(this.#nextOpaque));
    this.#nextOpaque += count;
    batch.deadline = now + this.#settings.timeoutMs;
    this.#batches.push(batch);
    if (this.#deadlineTimer === undefined && this.#verdict === undefined) this.#armDeadline(this.#settings.timeoutMs);
    if (this.#state === 'ready' && !this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#flush);
    }
  }

  /** Stops taking batches, lets the queued ones settle (each within its deadline), then closes the socket. */
  async drain(): Promise<void> {
    this.#closing = true;
    if (this.#state === 'ready') this.#flush();
    if (this.#batches.length > 0) await new Promise<void>((resolve) => (this.#drained = resolve));
    this.#lost(undefined, false);
  }

  override close(): void {
    void this.drain();
  }

  override sock(_sasl: boolean, go: (socket: Socket) => void): void {
    // Only memjs's SASL helpers get here; they write on the socket being authenticated.
    if (this.#socket) go(this.#socket);
  }

  override error(error: Error): void {
    this.#lost(error, true);
  }

  override toString(): string {
    return `<MemcachedConnection ${this.address}>`;
  }

  /** Keeps the SASL password out of `console.log` and `util.inspect`. */
  [inspect.custom](): string {
    return this.toString();
  }

  #connect(): void {
    this.#epoch = ++lastEpoch;
    this.#state = 'connecting';
    const socket = connect({ host: this.host, port: this.port, noDelay: true });
    this.#socket = socket;
    socket.on('connect', () => {
      if (socket !== this.#socket) return;
      if (this.username !== undefined && this.password !== undefined) this.listSasl();
      else this.#ready();
    });
    socket.on('data', (chunk: Buffer) => {
      if (socket === this.#socket) this.responseHandler(chunk);
    });
    socket.on('error', (error: Error) => {
      if (socket === this.#socket) this.#lost(error, this.#batches.length > 0 || this.#state === 'connecting');
    });
    const closed = (): void => {
      if (socket !== this.#socket) return;
      this.#lost(new Error('the server closed the connection'), this.#batches.length > 0 || this.#state === 'connecting');
    };
    socket.on('end', closed);
    socket.on('close', closed);
    this.#connectTimer = setTimeout(() => {
      // A stalled loop may not have read the connection's completion yet: let the I/O phase run first.
      setImmediate(() => {
        if (socket === this.#socket && this.#state === 'connecting') {
          this.#lost(new Error(`no connection within ${this.#settings.connectTimeoutMs} ms`), true);
        }
      });
    }, this.#settings.connectTimeoutMs).unref();
  }

  #ready(): void {
    clearTimeout(this.#connectTimer);
    this.#state = 'ready';
    if (this.#outbox.length > 0) this.#flush();
    this.#notifyAttempted();
  }

  #notifyAttempted(): void {
    if (this.#openWaiters.length === 0) return;
    const waiters = this.#openWaiters;
    this.#openWaiters = [];
    for (const resolve of waiters) resolve();
  }

  readonly #flush = (): void => {
    this.#flushQueued = false;
    const outbox = this.#outbox;
    if (this.#state !== 'ready' || outbox.length === 0 || !this.#socket) return;
    let requests = 0;
    for (let i = this.#batches.length - outbox.length; i < this.#batches.length; i++) {
      const batch = this.#batches.at(i) as RequestBatch;
      batch.sent = true;
      requests += batch.size;
    }
    this.#outbox = [];
    this.#socket.write(outbox.length === 1 ? (outbox[0] as Buffer) : Buffer.concat(outbox));
    this.#settings.counters.roundTrips++;
    this.#settings.counters.requests += requests;
  };

  #armDeadline(ms: number): void {
    const delay = Math.max(1, Math.ceil(ms));
    this.#deadlineDue = performance.now() + delay;
    this.#deadlineTimer = setTimeout(this.#onDeadline, delay).unref();
  }

  /**
   * The deadline timer fired. The verdict waits for the check phase of this loop iteration (`setImmediate`): the
   * poll phase in between reads whatever the server already sent, so answers that arrived while our own event loop
   * was busy settle their batches instead of being declared missing. How late the timer fired is how long the loop
   * was stalled; the verdict credits that time back (see {@link STALL_TOLERANCE_MS}).
   */
  readonly #onDeadline = (): void => {
    this.#deadlineTimer = undefined;
    const late = performance.now() - this.#deadlineDue;
    this.#stalledMs = late > STALL_TOLERANCE_MS ? late : 0;
    // Not unref'd: an unref'd immediate lets the poll phase block on other I/O before the verdict runs.
    this.#verdict = setImmediate(this.#decide);
  };

  readonly #decide = (): void => {
    this.#verdict = undefined;
    const now = performance.now();
    const stalled = this.#stalledMs;
    this.#stalledMs = 0;
    let head = this.#batches.peek();
    if (head && head.deadline <= now && stalled > 0 && !head.credited) {
      // Our loop, not the server, used up the time: every batch that lived through the stall gets that time back
      // from now (at most `timeoutMs`), once. The server is not marked down for a stall of ours; if it is truly
      // stuck, the re-armed deadline fails it after the credited time: at most the stall plus `timeoutMs` in all.
      const fresh = now + Math.min(stalled, this.#settings.timeoutMs);
      for (let i = 0; i < this.#batches.length; i++) {
        const batch = this.#batches.at(i) as RequestBatch;
        if (batch.credited) continue;
        batch.credited = true;
        if (batch.deadline < fresh) batch.deadline = fresh;
      }
      this.#settings.counters.stalls = (this.#settings.counters.stalls ?? 0) + 1;
      this.#armDeadline(head.deadline - now);
      return;
    }
    if (head && head.deadline <= now && head.sent) {
      this.#lost(new Error(`no answer within ${this.#settings.timeoutMs} ms`), true, now);
      return;
    }
    // Still connecting: what is overdue was never sent, so it fails alone and the connection attempt goes on.
    while (head && head.deadline <= now && !head.sent) {
      this.#batches.shift();
      this.#outbox.shift();
      head.fail((op, key, server) => StoreTimeoutError.notSent(op, key, server, this.#settings.timeoutMs));
      head = this.#batches.peek();
    }
    if (head) this.#armDeadline(head.deadline - now);
    else this.#notifyDrained();
  };

  /** Parses answers, keeping an incomplete one until enough bytes arrived. */
  override responseHandler(chunk: Buffer): void {
    let buf = chunk;
    if (this.#partialBytes > 0) {
      this.#partial.push(chunk);
      this.#partialBytes += chunk.length;
      if (this.#partialBytes < this.#partialNeeded) return;
      buf = Buffer.concat(this.#partial, this.#partialBytes);
      this.#partial = [];
      this.#partialBytes = 0;
    }
    const socket = this.#socket;
    let off = 0;
    while (buf.length - off >= HEADER_BYTES) {
      const end = off + HEADER_BYTES + buf.readUInt32BE(off + 8);
      if (buf[off] !== RESPONSE_MAGIC) return this.#lost(new Error(`bad answer magic 0x${buf[off]?.toString(16)}`), true);
      if (end > buf.length) break;
      this.#answer(buf, off);
      if (socket !== this.#socket) return;
      off = end;
    }
    if (off < buf.length) {
      const rest = buf.subarray(off);
      this.#partial = [rest];
      this.#partialBytes = rest.length;
      this.#partialNeeded = rest.length >= HEADER_BYTES ? HEADER_BYTES + rest.readUInt32BE(8) : HEADER_BYTES;
    }
  }

  #answer(buf: Buffer, off: number): void {
    const opaque = buf.readUInt32BE(off + 12);
    const opcode = buf[off + 1];
    if (opaque === 0 && (opcode === Opcode.saslListMechs || opcode === Opcode.saslAuth)) {
      if (buf.readUInt16BE(off + 6) !== 0) this.#lost(new Error('SASL authentication failed'), true);
      else if (opcode === Opcode.saslListMechs) this.saslAuth();
      else this.#ready();
      return;
    }
    const batch = this.#batches.peek();
    const outcome = batch?.sent ? batch.accept(opaque, buf, off) : 'mismatch';
    if (outcome === 'done') {
      this.#batches.shift();
      if (this.#batches.length === 0) this.#notifyDrained();
    } else if (outcome === 'mismatch') {
      this.#lost(new Error(`answer with unexpected opaque ${opaque}`), true);
    }
  }

  /**
   * Drops the socket and fails every live batch: sent ones with a deadline or connection-lost error (outcome
   * unknown for writes), unsent ones as unavailable. With `markDown`, the server is then refused for
   * `retryAfterMs`; otherwise (an idle connection closed) the next batch simply reconnects.
   */
  #lost(cause: unknown, markDown: boolean, now?: number): void {
    const socket = this.#socket;
    this.#socket = undefined;
    socket?.destroy();
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = undefined;
    clearImmediate(this.#verdict);
    this.#verdict = undefined;
    this.#partial = [];
    this.#partialBytes = 0;
    if (markDown) {
      this.#state = 'down';
      this.#downUntil = performance.now() + this.#settings.retryAfterMs;
      this.#lastFailure = cause;
    } else {
      this.#state = 'idle';
    }
    this.#outbox = [];
    const ms = this.#settings.timeoutMs;
    for (const batch of this.#batches.drain()) {
      if (!batch.sent) batch.fail((op, key, server) => StoreUnavailableError.serverDown(op, key, server, cause));
      else if (now !== undefined && batch.deadline <= now) batch.fail((op, key, server) => StoreTimeoutError.deadline(op, key, server, ms));
      else batch.fail(connectionLost);
    }
    this.#notifyDrained();
    this.#notifyAttempted();
  }

  #notifyDrained(): void {
    if (this.#drained && this.#batches.length === 0) {
      const resolve = this.#drained;
      this.#drained = undefined;
      resolve();
    }
  }
}
