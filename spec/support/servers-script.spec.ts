import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isRoot } from './binaries.js';

// Compiled to dist/spec/support/: three levels up is the repository root.
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const SCRIPT = join(root, 'scripts', 'servers.sh');

interface ScriptRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs scripts/servers.sh with `env` as its whole environment (nothing inherited), as this user or — `asUser`,
 * only possible as root — as `nobody`, a real unprivileged user.
 */
function runScript(args: string[], env: NodeJS.ProcessEnv, asUser?: 'nobody'): ScriptRun {
  const command = asUser ? ['/usr/sbin/runuser', '-u', asUser, '--', '/bin/bash', SCRIPT, ...args] : ['/bin/bash', SCRIPT, ...args];
  const run = spawnSync(command[0] as string, command.slice(1), { env, encoding: 'utf8', cwd: '/' });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** A directory anyone may read, holding executable shell scripts. */
function stubDir(stubs: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'xa-servers-'));
  chmodSync(dir, 0o755);
  for (const [name, body] of Object.entries(stubs)) writeStub(dir, name, body);
  return dir;
}

function writeStub(dir: string, name: string, body: string): void {
  writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`);
  chmodSync(join(dir, name), 0o755);
}

/** Stand-ins for every program the tests need, PostgreSQL at `pgVersion`. */
function serverStubs(pgVersion: string): Record<string, string> {
  const stubs: Record<string, string> = { initdb: `echo "initdb (PostgreSQL) ${pgVersion}"` };
  for (const name of ['memcached', 'pg_ctl', 'pg_basebackup', 'psql', 'spin', 'gcc']) stubs[name] = 'exit 0';
  return stubs;
}

/**
 * An apt-get that records its calls (with DEBIAN_FRONTEND) and whose `install` puts the stubs next to itself.
 * It runs on a bare PATH: programs by absolute path.
 */
function recordingAptGet(): { dir: string; calls: () => string[] } {
  const dir = stubDir();
  const log = join(dir, 'apt-get.log');
  const install = Object.entries(serverStubs('15.20'))
    .map(([name, body]) => `printf '%s\\n' '#!/bin/sh' '${body.replace(/'/g, `'"'"'`)}' > "$here/${name}"; /bin/chmod 755 "$here/${name}"`)
    .join('\n  ');
  writeStub(dir, 'apt-get', `here='${dir}'\necho "$DEBIAN_FRONTEND $*" >> "$here/apt-get.log"\nif [ "$1" = install ]; then\n  ${install}\nfi`);
  return { dir, calls: () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []) };
}

/** The environment of a machine where nothing but what `dir` holds is installed. */
const bare = (dir: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({ PATH: dir, XA_CACHE_SEARCH_DIRS: '', ...extra });

const TESTS_MISSING = 'scripts/servers.sh: the tests need programs that are not installed: memcached, PostgreSQL 15+ (initdb pg_ctl pg_basebackup psql), spin, a C compiler (gcc, for the model check)';
const TESTS_NOT_ENOUGH = '(Running servers named by DATABASE_URL / MEMCACHED_SERVERS are not enough for the tests: the fault tests start, kill and restart servers of their own.)';

describe('scripts/servers.sh: the server programs of the tests and the demo', () => {
  it('exits 0 in silence when everything is installed, for the tests and for the demo', () => {
    for (const target of ['test', 'demo']) {
      const run = runScript(['--check', target], { PATH: process.env.PATH ?? '/usr/bin:/bin' });
      expect(run.code, run.stderr).to.equal(0);
      expect(run.stdout + run.stderr).to.equal('');
    }
  });

  it('without root, prints the apt-get command with sudo and exits 1, installing nothing', () => {
    const apt = recordingAptGet();
    const run = runScript(['test'], bare(apt.dir), isRoot() ? 'nobody' : undefined);
    expect(run.code, run.stderr).to.equal(1);
    expect(run.stderr.split('\n')).to.deep.equal([TESTS_MISSING, 'Install them with:', '  sudo apt-get update && sudo apt-get install -y memcached postgresql spin gcc', TESTS_NOT_ENOUGH, '']);
    expect(run.stdout).to.equal('');
    expect(apt.calls()).to.deep.equal([]);
  });

  it('as root, installs the missing packages with a non-interactive apt-get (update first), then exits 0', function () {
    // Installing needs root: as another user this test is the previous one.
    if (!isRoot()) this.skip();
    const apt = recordingAptGet();
    const run = runScript(['test'], bare(apt.dir));
    expect(run.code, run.stderr).to.equal(0);
    expect(run.stderr).to.equal('scripts/servers.sh: installing memcached postgresql spin gcc for the test (apt-get; XA_CACHE_INSTALL=never only checks)\n');
    expect(apt.calls()).to.deep.equal(['noninteractive update -qq', 'noninteractive install -y -qq memcached postgresql spin gcc']);
  });

  it('--check and XA_CACHE_INSTALL=never only report, even as root', () => {
    for (const [args, extra] of [[['--check', 'test'], {}], [['test'], { XA_CACHE_INSTALL: 'never' }]] as const) {
      const apt = recordingAptGet();
      const run = runScript([...args], bare(apt.dir, extra));
      expect(run.code, run.stderr).to.equal(1);
      const sudo = isRoot() ? '' : 'sudo ';
      expect(run.stderr).to.include(`  ${sudo}apt-get update && ${sudo}apt-get install -y memcached postgresql spin gcc\n`);
      expect(apt.calls()).to.deep.equal([]);
    }
  });

  it('the demo: names the Docker route too, and needs nothing when DATABASE_URL and MEMCACHED_SERVERS name servers', () => {
    const dir = stubDir();
    const run = runScript(['--check', 'demo'], bare(dir));
    expect(run.code, run.stderr).to.equal(1);
    expect(run.stderr.split('\n')).to.deep.equal([
      'scripts/servers.sh: the demo needs programs that are not installed: memcached, PostgreSQL 15+ (initdb pg_ctl)',
      "Install them with your system's package manager (Debian packages: memcached postgresql).",
      'Or, where Docker runs, start servers and name them (see docker-compose.yml):',
      '  docker compose up -d',
      '  DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/xa_cache MEMCACHED_SERVERS=127.0.0.1:11211,127.0.0.1:11212 npm run demo',
      '',
    ]);
    const given = runScript(['--check', 'demo'], bare(dir, { DATABASE_URL: 'postgres://db.example/app', MEMCACHED_SERVERS: 'cache.example:11211' }));
    expect(given.code, given.stderr).to.equal(0);
    const onlyDb = runScript(['--check', 'demo'], bare(dir, { DATABASE_URL: 'postgres://db.example/app' }));
    expect(onlyDb.stderr).to.include('not installed: memcached\n');
  });

  it('refuses a PostgreSQL older than 15, saying where a newer one comes from', () => {
    const dir = stubDir(serverStubs('13.16'));
    const run = runScript(['--check', 'test'], bare(dir));
    expect(run.code, run.stderr).to.equal(1);
    expect(run.stderr).to.include(`scripts/servers.sh: ${dir}/initdb is PostgreSQL 13 ("initdb (PostgreSQL) 13.16"); 15 or newer is needed`);
    const current = runScript(['--check', 'test'], bare(stubDir(serverStubs('16.4'))));
    expect(current.code, current.stderr).to.equal(0);
  });

  it('rejects bad usage with exit 2', () => {
    for (const args of [[], ['tests'], ['test', 'demo']]) expect(runScript(args, { PATH: '/usr/bin:/bin' }).code, args.join(' ')).to.equal(2);
    expect(runScript(['test'], { PATH: '/usr/bin:/bin', XA_CACHE_INSTALL: 'yes' }).code).to.equal(2);
  });
});
