import { expect } from 'chai';
import { fileURLToPath } from 'node:url';
import { sharedServers } from '../support/global-servers.js';
import { ProtocolFixture } from '../support/protocol-fixture.js';
import { killAtReady } from '../support/kill-at-ready.js';
import { cleanEnv, runTool } from './cli-harness.js';

const WRITER = fileURLToPath(new URL('../protocol/crash-writer.js', import.meta.url));

/**
 * Issue 14, case 7: a process killed after prepare, before COMMIT, leaves locks and no log row. `inspect` alone
 * cannot see them; `inspect --scan-locks` finds them in memcached. The writer scopes its keys to the database's
 * identity as an application does (`namespace/<identity>:`), so the scan must recognise that prefix.
 */
describe('inspect --scan-locks: locks of transactions that never committed', function () {
  this.timeout(60_000);
  let f: ProtocolFixture;
  let conn: string[];

  before(async () => {
    const s = sharedServers();
    f = await ProtocolFixture.create(s.memcachedAddresses, s.db, { protocol: { lockTtlSeconds: 30 }, scopeToDatabase: true });
    await f.seed([1, 2]);
    conn = ['--db', s.db, '--memcached', s.memcachedAddresses.join(','), '--namespace', f.namespace, '--log-table', f.cache.options.logTable];
  });
  after(async () => f.close());

  it('finds nothing before the crash, then lists the dead transaction\'s locked keys (exit 1)', async () => {
    const before = await runTool(['inspect', '--min-age', '0', '--scan-locks', ...conn]);
    expect(before.code, before.stdout + before.stderr).to.equal(0);
    expect(before.stdout).to.include('No key is locked by a transaction missing from the log');

    const s = sharedServers();
    await killAtReady(WRITER, { ...cleanEnv(), CRASH_AT: 'after-prepare', MEMCACHED_SERVERS: s.memcachedAddresses.join(','), DATABASE_URL: s.db, NAMESPACE: f.namespace, LOCK_TTL: '30', IDS: '1,2', SCOPED: '1' }, 'after-prepare');

    const plain = await runTool(['inspect', '--min-age', '0', ...conn]);
    expect(plain.stdout).to.include('Nothing in doubt'); // no log row: the log cannot show it

    const scan = await runTool(['inspect', '--min-age', '0', '--scan-locks', ...conn]);
    expect(scan.code, scan.stdout + scan.stderr).to.equal(1);
    // Two rows and the region's two copies (docs/protocol.md, "Region copies").
    expect(scan.stdout).to.match(/4 keys locked by transactions missing from the log/);
    expect(scan.stdout).to.match(/r:kv\s+[0-9a-f-]{36}\s+\d+s\s+\d+s/);

    const json = JSON.parse((await runTool(['inspect', '--min-age', '0', '--scan-locks', '--json', ...conn])).stdout) as { orphanLocks: Array<{ key: string; holders: string[]; expiresInSeconds: number }> };
    expect(json.orphanLocks).to.have.length(4);
    expect(new Set(json.orphanLocks.flatMap((l) => l.holders)).size).to.equal(1);
    // Still inside its 30 s lifetime (how far inside depends on how busy the machine is: no timing asserted).
    for (const lock of json.orphanLocks) expect(lock.expiresInSeconds).to.be.within(1, 30);

    // --min-age applies to the locks' age too: none of them can be older than its 30 s lifetime.
    const young = await runTool(['inspect', '--min-age', '31s', '--scan-locks', ...conn]);
    expect(young.code, young.stdout).to.equal(0);
  });
});
