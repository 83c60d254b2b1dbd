import { spawn } from 'node:child_process';

/**
 * Starts a Node script that prints `READY` when it reaches the point a test wants it dead at (and then waits),
 * SIGKILLs it there, and resolves once it is gone: a process killed at an exact protocol phase, no sleeps.
 */
export async function killAtReady(script: string, env: NodeJS.ProcessEnv, what: string): Promise<void> {
  const proc = spawn(process.execPath, [script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  await new Promise<void>((resolve, reject) => {
    proc.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('READY')) resolve();
    });
    proc.once('exit', (code) => reject(new Error(`the process exited (${code}) before reaching ${what}: ${stderr}`)));
  });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  proc.kill('SIGKILL');
  await exited;
}
