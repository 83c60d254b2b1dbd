/**
 * The states a cache key can be in. Every byte string the library writes decodes to exactly one of these; bytes
 * that are not ours decode to {@link ForeignEntry} and are treated as a miss.
 *
 * - `value`: a committed value (a row, a collection, a query result), with the region generations it was read
 *   under (empty for keys that are not validated against regions).
 * - `lock`: transactions between prepare and promote/release (see {@link lockHolders}). While it has holders,
 *   readers treat it as a miss and may not fill; once every holder left it is as good as absent. A lock ever held
 *   by more than one transaction is *concurrent*: its last holder evicts instead of writing its own value, which
 *   might not be the newest. `prior` is the generation a region lock replaced, put back by a rollback.
 * - `lease`: a reader is loading the key from the database and may fill it if nothing touches the key meanwhile.
 * - `generation`: the current generation of a region (a table); query results record the generations they were
 *   read under and are valid only while every one is still current.
 */
export type Entry = ValueEntry | LockEntry | LeaseEntry | GenerationEntry;

/** A committed value. */
export interface ValueEntry {
  readonly kind: 'value';
  /** Region name to generation id, as current when the value was read from the database. */
  readonly generations: ReadonlyMap<string, string>;
  readonly payload: Buffer;
}

/**
 * A transaction lock, kept as the log of who joined and who left it, so that a transaction joins or leaves a lock
 * other transactions hold by appending one record (memcached APPEND, atomic, no compare-and-swap to lose).
 * Ids are transaction ids (UUIDs).
 */
export interface LockEntry {
  readonly kind: 'lock';
  readonly records: readonly LockRecord[];
  /** The region generation the lock replaced, restored by a rollback of a lock never shared. */
  readonly prior: string | undefined;
}

/** One join (`+`) or leave (`-`) of a lock. */
export interface LockRecord {
  readonly op: '+' | '-';
  readonly txId: string;
}

/** A reader's fill lease. */
export interface LeaseEntry {
  readonly kind: 'lease';
  readonly token: string;
}

/** A region generation. */
export interface GenerationEntry {
  readonly kind: 'generation';
  readonly id: string;
}

/** Bytes under one of our keys that the library did not write, or that are corrupt or truncated. */
export interface ForeignEntry {
  readonly kind: 'foreign';
  readonly reason: string;
}

/** What decoding can produce. */
export type DecodedEntry = Entry | ForeignEntry;

/**
 * The transactions holding a lock now: joined and not left, in joining order. Linear in the records (sets, not
 * list scans), since a lock's records come from memcached and may be planted: reading one must cost no more
 * than its length.
 */
export function lockHolders(lock: LockEntry): readonly string[] {
  let holders = holdersOf.get(lock);
  if (!holders) holdersOf.set(lock, (holders = holdersFrom(lock)));
  return holders;
}

/**
 * Holders per decoded lock: the protocol asks a lock for them several times (the decision, the report, the
 * read-back), and a busy table's region lock carries hundreds of records. Entries are never mutated, and callers
 * only read the array.
 */
const holdersOf = new WeakMap<LockEntry, readonly string[]>();

function holdersFrom(lock: LockEntry): string[] {
  const left = new Set<string>();
  for (const r of lock.records) if (r.op === '-') left.add(r.txId);
  const seen = new Set<string>();
  const holders: string[] = [];
  for (const r of lock.records) {
    if (r.op !== '+' || left.has(r.txId) || seen.has(r.txId)) continue;
    seen.add(r.txId);
    holders.push(r.txId);
  }
  return holders;
}

/** Whether more than one transaction ever joined the lock. */
export function lockIsConcurrent(lock: LockEntry): boolean {
  const first = lock.records.find((r) => r.op === '+')?.txId;
  return lock.records.some((r) => r.op === '+' && r.txId !== first);
}

/** Whether a transaction ever left the lock. */
export function lockWasLeftBy(lock: LockEntry, txId: string): boolean {
  return lock.records.some((r) => r.op === '-' && r.txId === txId);
}
