#!/usr/bin/env node
/**
 * The `mikro-orm-xa-cache` command. npm runs a package's bin with whatever `node` is on PATH; MikroORM 7 needs
 * Node.js 22.17 or newer, so on an older Node this re-runs itself with the project's own Node
 * (`node_modules/.bin/node`, looked for upward from the working directory and from this package), or fails
 * saying what to install. Nothing that needs the newer Node is imported before that check.
 */
import { spawn } from 'node:child_process';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findProjectNode, MIN_NODE, nodeSupported } from './node-runtime.js';

const REEXEC_MARK = 'MIKRO_ORM_XA_CACHE_REEXEC';
const self = fileURLToPath(import.meta.url);

if (nodeSupported(process.versions.node)) {
  const { runCli } = await import('./run-cli.js');
  process.exit(await runCli(process.argv.slice(2)));
} else {
  const node = process.env[REEXEC_MARK] ? undefined : findProjectNode([process.cwd(), dirname(self)]);
  if (!node) {
    process.stderr.write(
      `mikro-orm-xa-cache: Node.js ${MIN_NODE.join('.')} or newer is required (MikroORM 7); this is ${process.version} (${process.execPath}).\n` +
        `  install a newer Node, or add it to the project: npm install --save-dev node@22, then run npx mikro-orm-xa-cache again\n`,
    );
    process.exit(3);
  }
  const child = spawn(node, [...process.execArgv, self, ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, [REEXEC_MARK]: '1' } });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => child.kill(signal));
  child.on('error', (error) => {
    process.stderr.write(`mikro-orm-xa-cache: could not start ${node}: ${error.message}\n`);
    process.exit(5);
  });
  child.on('exit', (code, signal) => process.exit(code ?? (signal === 'SIGINT' ? 130 : 143)));
}
