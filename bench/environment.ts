import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, totalmem, release, platform } from 'node:os';
import { createRequire } from 'node:module';
import { postgresVersion } from './database.js';

/** The machine and the versions of everything measured, for the report. */
export interface Environment {
  readonly date: string;
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGb: number;
  readonly os: string;
  readonly node: string;
  readonly postgres: string;
  readonly memcached: string;
  readonly redis: string;
  readonly packages: Readonly<Record<string, string>>;
  /** The commit of the library measured (and whether lib/ had uncommitted changes). */
  readonly commit: string;
}

const require = createRequire(import.meta.url);

function packageVersion(name: string): string {
  try {
    // The package's own package.json, found from its entry point (some do not export ./package.json).
    let dir = require.resolve(name);
    for (let i = 0; i < 6; i++) {
      dir = dir.slice(0, dir.lastIndexOf('/'));
      try {
        const pkg = JSON.parse(readFileSync(`${dir}/package.json`, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === name) return pkg.version ?? 'unknown';
      } catch {
        // keep climbing
      }
    }
  } catch {
    // not installed
  }
  return 'not installed';
}

function binaryVersion(binary: string, args: string[]): string {
  try {
    return execFileSync(binary, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n')[0] ?? 'unknown';
  } catch {
    return 'not installed';
  }
}

function libraryCommit(): string {
  if (process.env.BENCH_COMMIT) return process.env.BENCH_COMMIT;
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', 'lib'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${head} with uncommitted changes in lib/` : head;
  } catch {
    return 'unknown';
  }
}

export async function describeEnvironment(databaseUrl: string): Promise<Environment> {
  const cpuList = cpus();
  return {
    date: new Date().toISOString(),
    cpu: cpuList[0]?.model ?? 'unknown',
    cores: cpuList.length,
    memoryGb: Math.round(totalmem() / 2 ** 30),
    os: `${platform()} ${release()}`,
    node: process.version,
    postgres: await postgresVersion(databaseUrl),
    memcached: binaryVersion('memcached', ['-V']),
    redis: binaryVersion('redis-server', ['--version']),
    commit: libraryCommit(),
    packages: Object.fromEntries(['@mikro-orm/core', '@mikro-orm/postgresql', 'pg', 'memjs', 'ioredis', 'mikro-orm-cache-adapter-redis'].map((p) => [p, packageVersion(p)])),
  };
}
