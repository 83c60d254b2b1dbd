import { execFileSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** The oldest Node.js the tool (MikroORM 7) runs on. */
export const MIN_NODE: readonly [number, number] = [22, 17];

/** Whether a `major.minor.patch` version is at least {@link MIN_NODE}. */
export function nodeSupported(version: string): boolean {
  const [major = 0, minor = 0] = version.replace(/^v/, '').split('.').map(Number);
  return major > MIN_NODE[0] || (major === MIN_NODE[0] && minor >= MIN_NODE[1]);
}

/**
 * A Node.js of a supported version installed by the project (`node_modules/.bin/node`, as the `node` npm package
 * installs it), looked for in `from` and each of its parents, for each starting point in turn.
 */
export function findProjectNode(starts: readonly string[], current = process.execPath): string | undefined {
  const self = safeRealpath(current);
  const seen = new Set<string>();
  for (const start of starts) {
    for (let dir = resolve(start); ; dir = dirname(dir)) {
      const candidate = join(dir, 'node_modules', '.bin', 'node');
      if (!seen.has(candidate) && existsSync(candidate)) {
        seen.add(candidate);
        if (safeRealpath(candidate) !== self && nodeSupported(versionOf(candidate))) return candidate;
      }
      if (dirname(dir) === dir) break;
    }
  }
  return undefined;
}

function versionOf(node: string): string {
  try {
    return execFileSync(node, ['--version'], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '0.0.0';
  }
}

function safeRealpath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}
