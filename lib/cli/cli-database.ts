import pg from 'pg';
import type { CliConfig } from './cli-config.js';
import { CliError } from './cli-errors.js';

/**
 * Opens the tool's small pg pool and checks that PostgreSQL answers, so an unreachable database is reported as
 * such (exit 4) before any command runs.
 */
export async function openDatabase(config: CliConfig, connectTimeoutMs: number): Promise<pg.Pool> {
  const pool = new pg.Pool({ ...config.pg, max: 4, connectionTimeoutMillis: connectTimeoutMs, application_name: 'mikro-orm-xa-cache cli' });
  pool.on('error', () => undefined); // an idle client dropped by the server; the next query reports it
  try {
    await pool.query('SELECT 1');
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw CliError.unreachableDatabase(config.dbLabel, error);
  }
  return pool;
}
