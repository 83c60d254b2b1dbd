import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// Compiled to dist/spec/model/model.spec.js: three levels up is the repository root.
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const script = resolve(root, 'spec', 'model', 'check.sh');

const MUTATIONS = ['NO_LEASE', 'NO_CAS_PROMOTE', 'NO_LOCK', 'NO_CONCURRENT_FLAG', 'NO_REGION_LOCK', 'WT_TAG_AT_PROMOTE', 'NO_INFLIGHT_CHECK', 'READ_BEFORE_JOIN', 'NO_OLD_VALUE'];

function spinInstalled(): boolean {
  return spawnSync('sh', ['-c', 'command -v spin'], { encoding: 'utf8' }).status === 0;
}

/**
 * The SPIN model of the protocol (spec/model/xa-protocol.pml, docs/model.md): the correct protocol verifies
 * exhaustively, and each mutation (a deliberately broken protocol) is caught with a counterexample.
 */
describe('Promela model of the protocol (SPIN)', function () {
  this.timeout(360_000);

  it('verifies the protocol and catches every mutation', function () {
    // Never skipped: a run without spin must not pass for one that checked the model. `npm test` brings it.
    expect(spinInstalled(), 'spin is not installed: run scripts/servers.sh test (as root it installs spin and gcc; otherwise it prints the command)').to.equal(true);
    expect(existsSync(script), `missing ${script}`).to.equal(true);
    const run = spawnSync('bash', [script], { cwd: root, encoding: 'utf8', timeout: 350_000, maxBuffer: 16 * 1024 * 1024 });
    const output = `${run.stdout ?? ''}${run.stderr ?? ''}`;
    expect(run.error, output).to.equal(undefined);
    expect(run.status, output).to.equal(0);
    const lines = run.stdout.split('\n');
    const line = (name: string): string => lines.find((l) => l.startsWith(`${name} `)) ?? '';
    for (const name of ['correct-item', 'correct-item-2reads', 'correct-region', 'correct-write-through', 'correct-scheme']) {
      expect(line(name), output).to.match(/OK\s+verified, no error/);
    }
    for (const mutation of MUTATIONS) {
      expect(line(mutation), output).to.match(/OK\s+caught: assertion violated/);
    }
  });
});
