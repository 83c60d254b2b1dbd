import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { sharedServers } from '../support/global-servers.js';
import { ProtocolFixture } from '../support/protocol-fixture.js';
import { CLI, cleanEnv, emptyDir, runTool, type CliRun } from './cli-harness.js';

/*
 * Progress of long operator work: drawn on stderr when it is a terminal (here a real pseudo-terminal, made by
 * util-linux `script`), never with --json, never into a pipe; XA_CACHE_PROGRESS overrides the terminal test.
 */

const ERASE_LINE = '\r\u001b[K';

/** Shell-quotes one argument. */
const quote = (arg: string): string => `'${arg.replace(/'/g, `'"'"'`)}'`;

/**
 * Runs the tool with stdout and stderr on one pseudo-terminal 200 columns wide (`script` merges them, and the
 * terminal turns each newline into CR LF), and collects what the terminal showed.
 */
function runOnTerminal(args: readonly string[], env: NodeJS.ProcessEnv = cleanEnv()): Promise<{ code: number | null; screen: string }> {
  const command = `stty cols 200; exec ${[process.execPath, CLI, ...args].map(quote).join(' ')}`;
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-q', '-e', '-c', command, '/dev/null'], { cwd: emptyDir(), env, stdio: ['ignore', 'pipe', 'pipe'] });
    let screen = '';
    child.stdout.on('data', (d: Buffer) => (screen += d.toString()));
    child.stderr.on('data', (d: Buffer) => (screen += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, screen }));
  });
}

describe('progress of long operator work (sweep, inspect --scan-locks)', function () {
  this.timeout(60_000);
  const namespace = `prog${randomUUID().slice(0, 6)}`;
  const logTable = `progress_log_${namespace}`;
  let f: ProtocolFixture;
  let conn: string[];

  before(async () => {
    const s = sharedServers();
    f = await ProtocolFixture.create(s.memcachedAddresses, s.db, { namespace, logTable, scopeToDatabase: true, protocol: { logNamespace: namespace } });
    conn = ['--db', s.db, '--memcached', s.memcachedAddresses.join(','), '--namespace', namespace, '--log-table', logTable];
  });
  after(async () => {
    await f.close();
  });

  /** `count` transactions that committed and whose process "died" before promote: each leaves a log row and a lock. */
  async function inDoubt(count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const client = await f.pool.connect();
      try {
        const tx = f.cache.begin();
        tx.invalidate([`item:${randomUUID()}`]);
        await client.query('BEGIN');
        await tx.prepare(client);
        await client.query('COMMIT');
      } finally {
        client.release();
      }
    }
    expect(await f.cache.log.count(f.pool)).to.equal(count);
  }

  /** A sweep of 40 rows in batches of 10: long enough (four batches) to draw progress. */
  const sweep = (...extra: string[]): string[] => ['sweep', '--min-age', '0', '--batch-size', '10', ...extra, ...conn];

  it('a sweep of many rows on a terminal draws one line of progress, then erases it before the result', async () => {
    await inDoubt(40);
    const run = await runOnTerminal(sweep());
    expect(run.code, run.screen).to.equal(0);
    // The first update is drawn at once: the second batch's; later ones may be skipped by the 100 ms redraw limit.
    const drawn = run.screen.indexOf('\rsweeping: 20 of 40 rows resolved (batch 2), 20 keys, 0 left in doubt, ');
    expect(drawn, JSON.stringify(run.screen)).to.be.greaterThan(-1);
    const erased = run.screen.indexOf(ERASE_LINE, drawn + 1);
    const result = run.screen.indexOf('Resolved 40 transactions (40 keys)');
    expect(erased, JSON.stringify(run.screen)).to.be.greaterThan(drawn);
    expect(result, JSON.stringify(run.screen)).to.be.greaterThan(erased);
    // The first batch alone draws nothing: a one-batch sweep is over before a line could help.
    expect(run.screen).not.to.include('(batch 1)');
    expect(await f.cache.log.count(f.pool)).to.equal(0);
  });

  it('a sweep with --json on a terminal draws nothing: the screen is the JSON document', async () => {
    await inDoubt(40);
    const run = await runOnTerminal(sweep('--json'));
    expect(run.code, run.screen).to.equal(0);
    expect(run.screen).not.to.include('sweeping');
    expect(run.screen).not.to.include('\u001b');
    const parsed = JSON.parse(run.screen.replace(/\r\n/g, '\n')) as { report: { resolved: number; batches: number } };
    expect(parsed.report).to.include({ resolved: 40, batches: 4 });
  });

  it('a sweep into pipes (no terminal) writes the result only: nothing on stderr, no control characters', async () => {
    await inDoubt(40);
    const run: CliRun = await runTool(sweep());
    expect(run.code, run.stderr).to.equal(0);
    expect(run.stderr).to.equal('');
    expect(run.stdout).to.match(/^Resolved 40 transactions \(40 keys\) in /);
    expect(run.stdout).not.to.match(/[\r\u001b]/);
  });

  it('XA_CACHE_PROGRESS: always draws into a pipe, never keeps a terminal quiet, anything else is a usage error', async () => {
    await inDoubt(40);
    const always = await runTool(sweep(), { env: cleanEnv({ XA_CACHE_PROGRESS: 'always' }) });
    expect(always.code, always.stderr).to.equal(0);
    expect(always.stderr).to.match(/^\rsweeping: 20 of 40 rows resolved \(batch 2\), 20 keys, 0 left in doubt, [^\r]*\u001b\[K/);
    expect(always.stderr.endsWith(ERASE_LINE), JSON.stringify(always.stderr)).to.equal(true);
    expect(always.stdout).to.match(/^Resolved 40 transactions/);
    expect(always.stdout).not.to.match(/[\r\u001b]/);

    await inDoubt(40);
    const alwaysJson = await runTool(sweep('--json'), { env: cleanEnv({ XA_CACHE_PROGRESS: 'always' }) });
    expect(alwaysJson.code, alwaysJson.stderr).to.equal(0);
    expect(alwaysJson.stderr).to.equal('');

    await inDoubt(40);
    const never = await runOnTerminal(sweep(), cleanEnv({ XA_CACHE_PROGRESS: 'never' }));
    expect(never.code, never.screen).to.equal(0);
    expect(never.screen).not.to.include('sweeping');
    expect(never.screen).to.include('Resolved 40 transactions');

    const bad = await runTool(sweep(), { env: cleanEnv({ XA_CACHE_PROGRESS: 'yes' }) });
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.include('XA_CACHE_PROGRESS must be auto, always or never, not "yes"');
  });

  it('inspect --scan-locks on a terminal says how far the scan is; into a pipe it does not', async () => {
    const run = await runOnTerminal(['inspect', '--scan-locks', '--min-age', '0', ...conn]);
    expect(run.code, run.screen).to.equal(0);
    const servers = sharedServers().memcachedAddresses.length;
    expect(run.screen).to.match(new RegExp(`\\rscanning memcached for orphan locks: [\\d,]+ items listed, \\d of ${servers} servers done`));
    expect(run.screen.indexOf(ERASE_LINE)).to.be.lessThan(run.screen.indexOf('Nothing in doubt'));
    const piped = await runTool(['inspect', '--scan-locks', '--min-age', '0', ...conn]);
    expect(piped.code, piped.stderr).to.equal(0);
    expect(piped.stderr).to.equal('');
  });
});
