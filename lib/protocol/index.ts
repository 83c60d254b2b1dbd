/**
 * The two-phase protocol: entry envelopes, locks, leases, the coordinator (prepare, commit decision, promote or
 * release), the durable transaction log in PostgreSQL and the recovery sweeper.
 *
 * Storage-agnostic above the {@link CacheStore} interface of `../store`; imports nothing from `../mikro-orm` or
 * `../cli`. The database is reached through the structural {@link SqlRunner}.
 *
 * @packageDocumentation
 */
export { XaCache } from './xa-cache.js';
export { CacheTransaction, type CacheTransactionState, type CompletionReport } from './cache-transaction.js';
export { CacheReader, type CacheRead, type FillTicket, type MissReason, type PayloadVerdict, type ReadOptions } from './cache-reader.js';
export { CacheStats } from './cache-stats.js';
export type { CacheObserver, CacheOperation, ObservedAttributes, OperationEnd } from './cache-observer.js';
export { TransactionLog, type LogRow, type DatabaseOutcome } from './transaction-log.js';
export type { SqlRunner } from './sql-runner.js';
export type { SweepOptions, SweepReport } from './recovery-sweeper.js';
export type { InDoubtTransaction, KeyState } from './in-doubt.js';
export { resolveProtocolOptions, type ProtocolOptions, type ResolvedProtocolOptions, type FailurePolicy, type ProtocolLogger, type UnsafeTestSwitches } from './protocol-options.js';
export { ProtocolConfigError, CachePrepareError, ProtocolStateError } from './protocol-errors.js';
export type { Entry, ValueEntry, LockEntry, LeaseEntry, GenerationEntry, ForeignEntry, DecodedEntry } from './entry.js';
export { encodeEntry, decodeEntry } from './entry-codec.js';
export { regionKey } from './protocol-context.js';
export { WriteCapture, CAPTURE_VERSION, MAX_CAPTURED_ROWS, type CapturedChange, type CapturedKeys, type CaptureDeriver, type CaptureTarget } from './write-capture.js';
export { readDataIdentity, dataIdentityOf, DATA_IDENTITY_COLUMNS, type DataIdentity } from './data-identity.js';
