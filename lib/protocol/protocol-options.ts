import { ProtocolConfigError } from './protocol-errors.js';
import { secretsProblem } from './entry-sealer.js';

/**
 * What happens to a write transaction when memcached cannot be reached while it prepares.
 *
 * - `strict` (default): the database transaction is aborted with {@link CachePrepareError}. No reader anywhere can
 *   be served a pre-commit value; writes to keys on an unreachable server fail until it is back.
 * - `degrade`: the transaction commits. The keys it could not lock stay in the durable log until the recovery
 *   sweeper applies them; until then, a process that still reaches that server may serve their old values for at
 *   most the sweeper interval after the server is reachable again (see docs/protocol.md, "Failure policy").
 */
export type FailurePolicy = 'strict' | 'degrade';

/** A structured log line; the library never prints on its own. */
export type ProtocolLogger = (level: 'debug' | 'info' | 'warn' | 'error', message: string, data?: Record<string, unknown>) => void;

/** Settings of the two-phase protocol. */
export interface ProtocolOptions {
  /** How long a prepare lock protects a key if its transaction never finishes, in seconds. Default 30. */
  lockTtlSeconds?: number;
  /** How long a reader's fill lease lives, in seconds. Default 10. */
  leaseTtlSeconds?: number;
  /** How long a reader waits for another reader's lease before reading the database without filling. Default 100. */
  leaseWaitMs?: number;
  /**
   * How long a reader that finds a key locked by a writer waits for the writer's promote (the committed value, with
   * write-through) before reading the database without filling. Default 20; 0: never wait. A lock whose writer
   * died costs each read of its key up to this much until the lock expires or is swept.
   */
  lockWaitMs?: number;
  /** Default TTL of cached values, in seconds (0: until evicted). Default 3600. */
  valueTtlSeconds?: number;
  /** See {@link FailurePolicy}. Default `strict`. */
  failurePolicy?: FailurePolicy;
  /** The transaction log table, optionally schema-qualified. Default `xa_cache_log`. */
  logTable?: string;
  /** Compare-and-swap rounds per key before a transition gives up as contended. Default 8. */
  maxCasRounds?: number;
  /**
   * Secrets that authenticate cached values and generations (HMAC-SHA-256 over key and entry), newest first: the
   * first signs, all verify, so a new secret is rolled out by prepending it and an old one retired by removing it.
   * Each at least 16 bytes. Without secrets, anyone who can write to memcached can plant values (docs/security.md).
   */
  secrets?: readonly string[];
  /** Also encrypt cached values (AES-256-GCM, a fresh nonce per entry). Needs `secrets`. Default false. */
  encryptValues?: boolean;
  /**
   * Which application's rows of the log table are this cache's: processes of one namespace sweep only its rows.
   * The MikroORM adapter sets it to its key namespace. Default `''`.
   */
  logNamespace?: string;
  /** Log sink. */
  logger?: ProtocolLogger;
  /**
   * Test-only: awaited inside promote after the first half of the keys was promoted and before the rest, so a
   * crash test can kill the process in the middle of promote. Never set it in production.
   */
  midPromoteHook?: (txId: string) => Promise<void>;
  /**
   * Test-only: switch off one safeguard, so the consistency checker can show it catches the bug that follows.
   * Never set it in production.
   */
  unsafeTestSwitches?: UnsafeTestSwitches;
}

/** The safeguards a test can switch off (see {@link ProtocolOptions.unsafeTestSwitches}). */
export interface UnsafeTestSwitches {
  /** Fills overwrite the key with a plain set instead of a compare-and-swap against the reader's lease. */
  readonly fillWithoutLease?: boolean;
  /** Promote writes known values with a plain set, whoever holds the key, instead of a compare-and-swap. */
  readonly promoteWithoutCas?: boolean;
  /**
   * Not a mutation: promote waits a random 0 to this many ms first, so two writers of one key promote in either
   * order (the window a mutation of the concurrent-lock rule needs, which a promote's single round trip keeps
   * too narrow to show reliably).
   */
  readonly promoteJitterMs?: number;
  /** Prepare writes no log row: a crash after COMMIT leaves nothing for the sweeper. */
  readonly skipLog?: boolean;
  /** A rollback promotes the transaction's keys (writing its values) instead of releasing them. */
  readonly rollbackAsCommit?: boolean;
  /** Prepare ignores what the database captured: only the keys the ORM layer named are locked. */
  readonly skipCapture?: boolean;
  /**
   * Writes name the unique-key index entries of the new values only (from the capture and from flushes): the entry
   * of a value a row gave up (an update) or took away (a delete) is left naming that row.
   */
  readonly forgetOldUniqueValues?: boolean;
  /**
   * Outside changes (captured rows no prepare took: other programs' commits, Kysely outside a transaction) are
   * never applied: the follower and the Kysely autocommit path evict nothing, as if no follower ran.
   */
  readonly skipOutsideChanges?: boolean;
  /** Promote writes a transaction's known value even when another transaction joined its lock (ignores `lockIsConcurrent`). */
  readonly writeThroughSharedLock?: boolean;
  /**
   * Updates renew the conjunction regions of their rows' new values only: a result of a predicate a row moved out
   * of keeps being served.
   */
  readonly forgetOldConjunctions?: boolean;
}

/** {@link ProtocolOptions} with every default applied. */
export type ResolvedProtocolOptions = Required<Omit<ProtocolOptions, 'logger' | 'midPromoteHook' | 'unsafeTestSwitches' | 'secrets'>> &
  Pick<ProtocolOptions, 'logger' | 'midPromoteHook'> & { unsafeTestSwitches: UnsafeTestSwitches; secrets: readonly string[] };

const MAX_TTL = 30 * 24 * 3600;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/;

/** Applies defaults and checks every setting, throwing {@link ProtocolConfigError} that says what to fix. */
export function resolveProtocolOptions(options: ProtocolOptions = {}): ResolvedProtocolOptions {
  const resolved: ResolvedProtocolOptions = {
    lockTtlSeconds: options.lockTtlSeconds ?? 30,
    leaseTtlSeconds: options.leaseTtlSeconds ?? 10,
    leaseWaitMs: options.leaseWaitMs ?? 100,
    lockWaitMs: options.lockWaitMs ?? 20,
    valueTtlSeconds: options.valueTtlSeconds ?? 3600,
    failurePolicy: options.failurePolicy ?? 'strict',
    logTable: options.logTable ?? 'xa_cache_log',
    maxCasRounds: options.maxCasRounds ?? 8,
    secrets: options.secrets ?? [],
    encryptValues: options.encryptValues ?? false,
    logNamespace: options.logNamespace ?? '',
    logger: options.logger,
    midPromoteHook: options.midPromoteHook,
    unsafeTestSwitches: options.unsafeTestSwitches ?? {},
  };
  integer('lockTtlSeconds', resolved.lockTtlSeconds, 1, MAX_TTL);
  integer('leaseTtlSeconds', resolved.leaseTtlSeconds, 1, MAX_TTL);
  integer('leaseWaitMs', resolved.leaseWaitMs, 0, 60_000);
  integer('lockWaitMs', resolved.lockWaitMs, 0, 60_000);
  integer('valueTtlSeconds', resolved.valueTtlSeconds, 0, MAX_TTL);
  integer('maxCasRounds', resolved.maxCasRounds, 1, 100);
  if (resolved.failurePolicy !== 'strict' && resolved.failurePolicy !== 'degrade') {
    throw ProtocolConfigError.invalid('failurePolicy', resolved.failurePolicy, "'strict' or 'degrade'");
  }
  if (typeof resolved.logTable !== 'string' || !IDENTIFIER.test(resolved.logTable)) {
    throw ProtocolConfigError.invalid('logTable', resolved.logTable, 'a table name, optionally schema-qualified (letters, digits, underscores)');
  }
  if (options.secrets !== undefined) {
    const problem = secretsProblem(options.secrets);
    if (problem) throw ProtocolConfigError.invalid('secrets', `${Array.isArray(options.secrets) ? options.secrets.length : typeof options.secrets} secret(s)`, problem);
  }
  if (typeof resolved.encryptValues !== 'boolean') throw ProtocolConfigError.invalid('encryptValues', resolved.encryptValues, 'true or false');
  if (resolved.encryptValues && resolved.secrets.length === 0) throw ProtocolConfigError.invalid('encryptValues', true, 'secrets to derive the encryption key from; set secrets too');
  if (typeof resolved.logNamespace !== 'string' || resolved.logNamespace.length > 64) throw ProtocolConfigError.invalid('logNamespace', resolved.logNamespace, 'a string of at most 64 characters');
  if (resolved.logger !== undefined && typeof resolved.logger !== 'function') {
    throw ProtocolConfigError.invalid('logger', resolved.logger, 'a function (level, message, data)');
  }
  return resolved;
}

function integer(name: string, value: unknown, min: number, max: number): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw ProtocolConfigError.invalid(name, value, `an integer from ${min} to ${max}`);
  }
}
