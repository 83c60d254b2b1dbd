import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

const POSTGRES_LIB = '/usr/lib/postgresql';

/** True when this process runs as root, where servers must drop privileges. */
export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * Where binaries are looked for: PATH, then `XA_CACHE_SEARCH_DIRS` (colon-separated) or, by default, Debian's
 * per-version PostgreSQL directories (highest version first; they are outside PATH), /usr/sbin, /usr/local/sbin
 * and /usr/bin. scripts/servers.sh, which installs what is missing, searches the same places in the same order.
 */
const searchPath = (): string[] => {
  const dirs = (process.env.PATH ?? '').split(':').filter(Boolean);
  const configured = process.env.XA_CACHE_SEARCH_DIRS;
  if (configured !== undefined) return [...dirs, ...configured.split(':').filter(Boolean)];
  const versions = existsSync(POSTGRES_LIB) ? readdirSync(POSTGRES_LIB).filter((v) => /^\d+$/.test(v)) : [];
  for (const version of versions.sort((a, b) => Number(b) - Number(a))) dirs.push(`${POSTGRES_LIB}/${version}/bin`);
  dirs.push('/usr/sbin', '/usr/local/sbin', '/usr/bin');
  return dirs;
};

/** Finds an installed binary, or throws saying what to run. */
export function requireBinary(name: string): string {
  for (const dir of searchPath()) {
    const candidate = `${dir}/${name}`;
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(`${name} was not found on PATH or in /usr/lib/postgresql/*/bin; run scripts/servers.sh test (as root it installs what is missing, otherwise it prints the command), or set DATABASE_URL / MEMCACHED_SERVERS to use running servers`);
}

/** Runs a command as the `postgres` user when this process is root (PostgreSQL refuses to run as root). */
export function runAsPostgres(binary: string, args: string[], options: { cwd?: string } = {}): string {
  if (isRoot()) {
    return execFileSync('runuser', ['-u', 'postgres', '--', binary, ...args], { encoding: 'utf8', cwd: options.cwd ?? '/tmp', stdio: ['ignore', 'pipe', 'pipe'] });
  }
  return execFileSync(binary, args, { encoding: 'utf8', cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}
