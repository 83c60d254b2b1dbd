/**
 * Child process for the crash tests: runs one writing transaction and stops dead at the phase named by
 * CRASH_AT, printing "READY" so the parent can SIGKILL it there.
 */
import { ProtocolFixture } from '../support/protocol-fixture.js';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

const crashAt = env('CRASH_AT') as 'after-prepare' | 'after-commit' | 'mid-promote';
const hang = async (): Promise<never> => {
  process.stdout.write('READY\n');
  return new Promise<never>(() => setInterval(() => undefined, 1000));
};

const fixture = await ProtocolFixture.create(env('MEMCACHED_SERVERS').split(','), env('DATABASE_URL'), {
  namespace: env('NAMESPACE'),
  // SCOPED=1: keys scoped to the database's identity, like an application's (what the operator tool reads).
  scopeToDatabase: process.env.SCOPED === '1',
  protocol: {
    lockTtlSeconds: Number(env('LOCK_TTL')),
    midPromoteHook: crashAt === 'mid-promote' ? hang : undefined,
    unsafeTestSwitches: { skipLog: process.env.SKIP_LOG === '1' },
  },
});
await fixture.write(env('IDS').split(',').map(Number), {
  regions: ['kv'],
  putValues: true,
  at: async (phase) => {
    if (crashAt === 'after-prepare' && phase === 'prepared') await hang();
    if (crashAt === 'after-commit' && phase === 'committed') await hang();
  },
});
process.stdout.write('FINISHED\n');
