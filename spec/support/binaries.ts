import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** True when this process runs as root, where servers must drop privileges. */
export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

const searchPath = (): string[] => {
  const dirs = (process.env.PATH ?? '').split(':').filter(Boolean);
  // Debian keeps PostgreSQL's server binaries outside PATH.
  for (const version of ['17', '16', '15', '14', '13']) dirs.push(`/usr/lib/postgresql/${version}/bin`);
  dirs.push('/usr/sbin', '/usr/local/sbin', '/usr/bin');
  return dirs;
};

/** Finds an installed binary, or throws saying which package provides it. */
export function requireBinary(name: string): string {
  for (const dir of searchPath()) {
    const candidate = `${dir}/${name}`;
    if (existsSync(candidate)) return candidate;
  }
  const hint: Record<string, string> = {
    memcached: 'apt-get install -y memcached',
    initdb: 'apt-get install -y postgresql',
    pg_ctl: 'apt-get install -y postgresql',
    postgres: 'apt-get install -y postgresql',
    pg_basebackup: 'apt-get install -y postgresql',
  };
  throw new Error(`${name} was not found on PATH or in /usr/lib/postgresql/*/bin; install it (${hint[name] ?? name}) or set DATABASE_URL / MEMCACHED_SERVERS to use running servers`);
}

/** Runs a command as the `postgres` user when this process is root (PostgreSQL refuses to run as root). */
export function runAsPostgres(binary: string, args: string[], options: { cwd?: string } = {}): string {
  if (isRoot()) {
    return execFileSync('runuser', ['-u', 'postgres', '--', binary, ...args], { encoding: 'utf8', cwd: options.cwd ?? '/tmp', stdio: ['ignore', 'pipe', 'pipe'] });
  }
  return execFileSync(binary, args, { encoding: 'utf8', cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}
