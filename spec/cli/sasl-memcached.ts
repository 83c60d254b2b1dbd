import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isRoot, requireBinary } from '../support/binaries.js';
import { onProcessExit } from '../support/exit-cleanup.js';
import { freePort, waitForPort } from '../support/free-port.js';

/**
 * A real memcached that requires SASL (`-S`) and knows no user: it answers a connection that does not log in with
 * "authentication error" and refuses every login, which is all the tool's classification needs. memcached must
 * be built with SASL (Debian's is).
 */
export async function startSaslMemcached(): Promise<{ address: string; stop: () => void }> {
  const port = await freePort();
  const args = ['-S', '-l', '127.0.0.1', '-p', String(port), '-U', '0', '-m', '16', '-t', '1'];
  if (isRoot()) args.push('-u', 'memcache');
  // Cyrus SASL refuses to start without a configuration directory; PLAIN is what the store speaks.
  const conf = mkdtempSync(join(tmpdir(), 'xa-sasl-'));
  writeFileSync(join(conf, 'memcached.conf'), 'mech_list: plain\n');
  const child = spawn(requireBinary('memcached'), args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, SASL_CONF_PATH: conf } });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const stop = (): void => void child.kill('SIGKILL');
  const unregister = onProcessExit(stop);
  child.once('exit', unregister);
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`memcached -S exited with ${code}: ${stderr.trim()}`))));
  exited.catch(() => undefined);
  await Promise.race([waitForPort(port), exited]);
  return { address: `127.0.0.1:${port}`, stop };
}
