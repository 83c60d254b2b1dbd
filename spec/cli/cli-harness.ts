import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killAtReady } from '../support/kill-at-ready.js';
import { sharedServers } from '../support/global-servers.js';

/** The built command-line tool. */
export const CLI = fileURLToPath(new URL('../../lib/cli/main.js', import.meta.url));
const WRITER = fileURLToPath(new URL('./killed-writer.js', import.meta.url));

/** What a run of the tool printed and returned. */
export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** An empty working directory, so no MikroORM config file is found by accident. */
export function emptyDir(): string {
  return mkdtempSync(join(tmpdir(), 'xa-cli-'));
}

/** The environment without anything that would point the tool at servers. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of ['DATABASE_URL', 'MEMCACHED_SERVERS', 'MIKRO_ORM_CLI_CONFIG', 'MIKRO_ORM_CONTEXT_NAME', 'XA_CACHE_NAMESPACE', 'XA_CACHE_LOG_TABLE', 'XA_CACHE_SECRETS', 'MEMCACHED_USERNAME', 'MEMCACHED_PASSWORD']) delete env[name];
  return { ...env, ...extra };
}

/** Runs the tool as a separate process (with `node`, default this one) and collects its output. */
export function runTool(args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; node?: string } = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(options.node ?? process.execPath, [CLI, ...args], { cwd: options.cwd ?? emptyDir(), env: options.env ?? cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Starts an application process that renames a book and SIGKILLs it in the middle of promote: a real in-doubt
 * transaction. Resolves once the process is dead.
 */
export async function killWriterMidPromote(options: { namespace: string; logTable: string; bookId: number; title: string; secrets?: readonly string[] }): Promise<void> {
  const s = sharedServers();
  const env: NodeJS.ProcessEnv = { ...cleanEnv(), MEMCACHED_SERVERS: s.memcachedAddresses.join(','), DATABASE_URL: s.db, NAMESPACE: options.namespace, LOG_TABLE: options.logTable, BOOK_ID: String(options.bookId), TITLE: options.title };
  if (options.secrets) env.SECRETS = options.secrets.join(',');
  await killAtReady(WRITER, env, 'promote');
}
