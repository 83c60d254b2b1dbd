import { ProtocolFixture } from '../../spec/support/protocol-fixture.js';
import { forEachIndex } from '../measure.js';

/** What the sweeper run measured. */
export interface RecoveryResult {
  readonly transactions: number;
  readonly keysPerTransaction: number;
  readonly createSeconds: number;
  readonly sweepSeconds: number;
  readonly resolved: number;
  readonly unresolved: number;
  readonly keys: number;
  readonly batches: number;
  readonly leftInLog: number;
}

/**
 * Recovery: `count` transactions each prepared (3 row keys locked, 1 of 50 regions locked, the log row inserted),
 * committed in PostgreSQL, and never promoted, as if their process had died right after COMMIT. Then one sweeper
 * (`XaCache.sweep`, batches of 500) resolves them all; the time of the sweep alone is reported.
 */
export async function runRecovery(memcached: readonly string[], databaseUrl: string, count: number, progress: (line: string) => void): Promise<RecoveryResult> {
  const fixture = await ProtocolFixture.create(memcached, databaseUrl);
  // Dropping the database afterwards terminates its backends; an idle pooled client must not crash the run.
  fixture.pool.on('error', () => undefined);
  try {
    const created = performance.now();
    await forEachIndex(count, 16, async (i) => {
      const client = await fixture.pool.connect();
      const tx = fixture.cache.begin();
      tx.invalidate([`kv:${3 * i}`, `kv:${3 * i + 1}`, `kv:${3 * i + 2}`]);
      tx.touchRegions([`kv_region_${i % 50}`]);
      try {
        await client.query('BEGIN');
        await tx.prepare(client);
        await client.query('COMMIT');
        // No promote: the process "died" here. Keys stay locked, the log row stays.
      } finally {
        client.release();
      }
    });
    const createSeconds = (performance.now() - created) / 1000;
    const inDoubt = await fixture.cache.log.count(fixture.pool);
    progress(`recovery: ${inDoubt} in-doubt transactions created in ${createSeconds.toFixed(1)} s; sweeping`);
    const started = performance.now();
    const report = await fixture.cache.sweep(fixture.pool, { minAgeMs: 0 });
    const sweepSeconds = (performance.now() - started) / 1000;
    const leftInLog = await fixture.cache.log.count(fixture.pool);
    progress(`recovery: ${report.resolved} resolved (${report.keys} keys, ${report.batches} batches) in ${sweepSeconds.toFixed(2)} s, ${leftInLog} left`);
    return { transactions: inDoubt, keysPerTransaction: 4, createSeconds, sweepSeconds, ...report, leftInLog };
  } finally {
    await fixture.close();
  }
}
