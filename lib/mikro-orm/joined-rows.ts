import type pg from 'pg';
import { JOINED_ROWS } from '../protocol/sql-runner.js';

type Query = (...args: unknown[]) => unknown;

/**
 * Lets a text of several statements marked {@link JOINED_ROWS} (the transaction log's statement with the read that
 * rides along it) reach its caller through kysely: `pg` answers such a text with one result per statement, and
 * kysely keeps only `result.rows`, which an array of results does not have. On a client patched here the caller
 * gets one result whose rows are those of every statement, in order. Unmarked texts pass untouched.
 *
 * Installed after {@link deferBegin}, whose `query` it wraps (a BEGIN sent with the marked text is dropped there).
 */
export function joinMarkedRows(client: pg.Client): void {
  const query = (client as unknown as { query: Query }).query;
  const patched: Query = (...args) => {
    const [text] = args;
    const result = query.apply(client, args);
    if (typeof text !== 'string' || !text.startsWith(JOINED_ROWS)) return result;
    return (result as Promise<pg.QueryResult | pg.QueryResult[]>).then((answer) =>
      Array.isArray(answer) ? { ...(answer[answer.length - 1] as pg.QueryResult), rows: answer.flatMap((r) => r.rows ?? []) } : answer,
    );
  };
  (client as unknown as { query: Query }).query = patched;
}
