import type { StoreError } from '../store/store-errors.js';

/** A protocol setting is missing or wrong. */
export class ProtocolConfigError extends Error {
  constructor(
    message: string,
    readonly option: string,
  ) {
    super(message);
    this.name = new.target.name;
  }

  static invalid(option: string, value: unknown, expected: string): ProtocolConfigError {
    return new ProtocolConfigError(`mikro-orm-xa-cache: option "${option}" is ${describe(value)}; expected ${expected}`, option);
  }
}

/**
 * Under the `strict` failure policy, some keys could not be locked before the database commit, so the transaction
 * must not commit: a reader could otherwise be served their old values after it. The caller rolls back.
 */
export class CachePrepareError extends Error {
  constructor(
    readonly txId: string,
    /** The keys that could not be locked, with why. */
    readonly failures: ReadonlyMap<string, StoreError | 'contended'>,
  ) {
    const sample = [...failures].slice(0, 3).map(([key, why]) => `${key}: ${why === 'contended' ? 'contended' : why.message}`);
    super(`mikro-orm-xa-cache: could not lock ${failures.size} cache key(s) before commit, so transaction ${txId} was not committed (failure policy "strict"): ${sample.join('; ')}`);
    this.name = new.target.name;
  }
}

/** A protocol call came out of order (promote before prepare, prepare twice, …): a bug in the caller. */
export class ProtocolStateError extends Error {
  constructor(
    readonly txId: string,
    readonly state: string,
    readonly call: string,
  ) {
    super(`mikro-orm-xa-cache: cannot ${call} transaction ${txId} in state "${state}"`);
    this.name = new.target.name;
  }
}

function describe(value: unknown): string {
  if (value === undefined) return 'missing';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return 'a function';
  return `${typeof value} ${String(value)}`;
}
