/**
 * The states a cache key can be in. Every byte string the library writes decodes to exactly one of these; bytes
 * that are not ours decode to {@link ForeignEntry} and are treated as a miss.
 *
 * - `value`: a committed value (a row, a collection, a query result), with the region generations it was read
 *   under (empty for keys that are not validated against regions).
 * - `lock`: one or more transactions are between prepare and promote/release. Readers treat it as a miss and may
 *   not fill. `concurrent` records that more than one transaction ever held it: the last holder then evicts instead
 *   of writing its own value, which might not be the newest. `prior` is the generation a region lock replaced, put
 *   back by a rollback so that query results stay valid.
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

/** A transaction lock. Holder ids are transaction ids (UUIDs). */
export interface LockEntry {
  readonly kind: 'lock';
  readonly holders: readonly string[];
  readonly concurrent: boolean;
  readonly prior: string | undefined;
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
