import type { CliSession } from './cli-session.js';

/** The log's rows by age: `old` ones are what inspect lists and a sweep takes, `young` ones are still settling. */
export interface LogRowCounts {
  readonly old: number;
  readonly young: number;
}

/** Counts the log rows at least `minAgeMs` old (database clock) and those younger, in one statement. */
export async function countLogRows(session: CliSession, minAgeMs: number): Promise<LogRowCounts> {
  const { rows } = await session.pool.query(
    `SELECT count(*) FILTER (WHERE created_at <= now() - make_interval(secs => $1::float8 / 1000))::int AS old,
            count(*) FILTER (WHERE created_at > now() - make_interval(secs => $1::float8 / 1000))::int AS young
       FROM ${session.config.logTable}`,
    [minAgeMs],
  );
  return rows[0] as LogRowCounts;
}
