import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchConfig } from './config.js';
import { digestProfile, type ProfileDigest } from './cpu-profile.js';
import { cloneDatabase, dropDatabase } from './database.js';

export interface ProfileSummary {
  readonly workload: string;
  readonly description: string;
  readonly opsPerSecond: number;
  readonly perOp: Readonly<Record<string, number>>;
  readonly seconds: number;
  readonly digest: ProfileDigest;
}

const RUNS = [
  { workload: 'pk', description: 'primary-key hit, xa-cache, 32 in flight, cache warm' },
  { workload: 'write', description: 'write transaction of 10 books, xa-cache, 1 in flight (load + change + flush)' },
] as const;

/** Runs each focused profile in a child `node --cpu-prof` and digests the measured window of its profile. */
export async function runProfiles(options: { admin: string; template: string; memcached: readonly string[]; config: BenchConfig; log: (line: string) => void }): Promise<ProfileSummary[]> {
  const summaries: ProfileSummary[] = [];
  const seconds = Math.max(4, Math.min(10, options.config.seconds * 2));
  for (const run of RUNS) {
    const dir = mkdtempSync(join(tmpdir(), 'xa-bench-prof-'));
    const database = `bench_profile_${run.workload}`;
    try {
      const databaseUrl = await cloneDatabase(options.admin, options.template, database);
      options.log(`profiling: ${run.description}, ${seconds} s under --cpu-prof`);
      const windowFile = join(dir, 'window.json');
      await new Promise<void>((resolve, reject) => {
        const child = spawn(process.execPath, ['--cpu-prof', '--cpu-prof-dir', dir, 'dist/bench/profile.js', run.workload, String(seconds)], {
          stdio: ['ignore', 'inherit', 'inherit'],
          env: {
            ...process.env,
            PROFILE_DATABASE_URL: databaseUrl,
            PROFILE_MEMCACHED: options.memcached.join(','),
            PROFILE_BOOKS: String(options.config.books),
            PROFILE_POOL: String(options.config.pool),
            PROFILE_WINDOW: windowFile,
          },
        });
        child.on('error', reject);
        child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`profile run ${run.workload} exited with ${code}`))));
      });
      const window = JSON.parse(readFileSync(windowFile, 'utf8')) as { start: number; end: number; opsPerSecond: number; perOp: Record<string, number> };
      const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
      if (!file) throw new Error('no .cpuprofile was written');
      const digest = digestProfile(join(dir, file), window);
      options.log(`profiling: ${run.workload} ran ${Math.round(window.opsPerSecond).toLocaleString('en-US')} ops/s under the profiler; ${digest.samples} samples in the window`);
      summaries.push({ workload: run.workload, description: run.description, opsPerSecond: window.opsPerSecond, perOp: window.perOp, seconds, digest });
    } catch (error) {
      options.log(`profiling ${run.workload} failed: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      await dropDatabase(options.admin, database).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return summaries;
}
