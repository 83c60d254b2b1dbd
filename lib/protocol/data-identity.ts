import { hash } from 'node:crypto';
import type { SqlRunner } from './sql-runner.js';

/**
 * The identity of the data a cache serves: the PostgreSQL cluster (`system_identifier`, the same on a primary and
 * its physical replicas, different for every `initdb`) and the database, as `<system identifier>.<database>`.
 * Keys are scoped to it, so two databases sharing memcached and a namespace — on one server or on two servers
 * with equal database names — never serve each other's rows. Schemas and tables are in the keys themselves.
 *
 * A database name that is not a short plain word is replaced by a hash of it, so the identity stays a safe and
 * short part of a memcached key (and contains no newline, which the entry codec uses as a separator).
 */
export type DataIdentity = string;

/**
 * Columns that read the identity, `FROM pg_control_system()`; callers may add their own columns to the same
 * statement (the MikroORM connection reads its default isolation level with it) so it costs no round trip.
 * `pg_control_system()` is executable by every role (PostgreSQL 9.6 and later).
 */
export const DATA_IDENTITY_COLUMNS = 'system_identifier::text AS xa_system_identifier, current_database() AS xa_database';

/** The identity from a row selected with {@link DATA_IDENTITY_COLUMNS}. */
export function dataIdentityOf(row: object): DataIdentity {
  const { xa_system_identifier: system, xa_database: database } = row as { xa_system_identifier?: unknown; xa_database?: unknown };
  if (typeof system !== 'string' || !/^\d+$/.test(system) || typeof database !== 'string') throw new TypeError('not a row of DATA_IDENTITY_COLUMNS');
  const name = /^[A-Za-z0-9_-]{1,32}$/.test(database) ? database : `h${hash('sha256', database, 'base64url').slice(0, 16)}`;
  return `${system}.${name}`;
}

/** Reads the identity of the database `db` is connected to (one statement). */
export async function readDataIdentity(db: SqlRunner): Promise<DataIdentity> {
  const { rows } = await db.query(`SELECT ${DATA_IDENTITY_COLUMNS} FROM pg_control_system()`);
  return dataIdentityOf(rows[0] as object);
}
