/** What went wrong with a store operation; callers switch on `kind`. */
export type StoreErrorKind = 'unavailable' | 'timeout' | 'too_large' | 'protocol' | 'bad_input';

/** The base of every error the store reports. Carries the operation, the logical key and the server. */
export abstract class StoreError extends Error {
  abstract readonly kind: StoreErrorKind;
  /**
   * True when a write may have been applied although no answer arrived (a timeout or a connection lost after the
   * request was sent). Callers must then treat the key's state as unknown.
   */
  abstract readonly outcomeUnknown: boolean;

  constructor(
    message: string,
    readonly op: string,
    readonly key: string | undefined,
    readonly server: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The server is down, backing off after a failure, or the connection could not be made. Nothing was applied. */
export class StoreUnavailableError extends StoreError {
  readonly kind = 'unavailable' as const;
  readonly outcomeUnknown = false;

  static serverDown(op: string, key: string | undefined, server: string, cause?: unknown): StoreUnavailableError {
    return new StoreUnavailableError(`memcached server ${server} is unavailable`, op, key, server, { cause });
  }
}

/**
 * No answer within the deadline, or the connection broke with the request in flight: the request may or may not
 * have been applied.
 */
export class StoreTimeoutError extends StoreError {
  readonly kind = 'timeout' as const;
  readonly outcomeUnknown: boolean;

  constructor(message: string, op: string, key: string | undefined, server: string, outcomeUnknown: boolean) {
    super(message, op, key, server);
    this.outcomeUnknown = outcomeUnknown;
  }

  static deadline(op: string, key: string | undefined, server: string, ms: number): StoreTimeoutError {
    return new StoreTimeoutError(`memcached server ${server} did not answer ${op} within ${ms} ms`, op, key, server, op !== 'get');
  }

  static connectionLost(op: string, key: string | undefined, server: string): StoreTimeoutError {
    return new StoreTimeoutError(`connection to memcached server ${server} was lost during ${op}`, op, key, server, op !== 'get');
  }

  /** The connection was still being established when the deadline passed; the request was never sent. */
  static notSent(op: string, key: string | undefined, server: string, ms: number): StoreTimeoutError {
    return new StoreTimeoutError(`memcached server ${server} could not be reached for ${op} within ${ms} ms; nothing was sent`, op, key, server, false);
  }
}

/**
 * The value is larger than the store or the server accepts; it was not stored. When `server` is set, the server
 * refused it (its item size limit, memcached `-I`, is below the store's `limit`); otherwise it was never sent.
 */
export class ValueTooLargeError extends StoreError {
  readonly kind = 'too_large' as const;
  readonly outcomeUnknown = false;

  constructor(
    op: string,
    key: string,
    readonly size: number,
    readonly limit: number,
    server?: string,
  ) {
    super(
      server === undefined
        ? `value of ${size} bytes for ${op} exceeds the limit of ${limit} bytes`
        : `memcached server ${server} refused a value of ${size} bytes for ${op} as too large; lower maxValueBytes (now ${limit}) to the server's item size limit (-I)`,
      op,
      key,
      server,
    );
  }
}

/** The server answered with a status the store does not expect (for example "non-numeric value" to an incr). */
export class StoreProtocolError extends StoreError {
  readonly kind = 'protocol' as const;
  readonly outcomeUnknown = false;

  constructor(
    op: string,
    key: string | undefined,
    server: string,
    readonly status: number,
    detail: string,
  ) {
    super(`memcached server ${server} answered ${op} with status 0x${status.toString(16)}: ${detail}`, op, key, server);
  }
}

/** The caller asked for something the store cannot do (a TTL out of range, a CAS token of another server). */
export class StoreInputError extends StoreError {
  readonly kind = 'bad_input' as const;
  readonly outcomeUnknown = false;
}

/**
 * The store was configured wrongly (no servers, a malformed address, a negative timeout...). Thrown by the
 * constructor, never reported as an operation result; the message says what to fix.
 */
export class StoreConfigError extends Error {
  constructor(
    message: string,
    /** The option at fault. */
    readonly option: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}
