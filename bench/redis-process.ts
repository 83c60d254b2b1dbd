import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { freePort, waitForPort } from '../spec/support/free-port.js';
import { onProcessExit } from '../spec/support/exit-cleanup.js';

const CANDIDATES = ['/usr/bin/redis-server', '/usr/local/bin/redis-server', '/usr/sbin/redis-server'];

/** A throwaway redis-server on a free port (no persistence), for the community adapter; undefined when not installed. */
export class RedisProcess {
  #stopped = false;

  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
  ) {}

  static binary(): string | undefined {
    for (const dir of (process.env.PATH ?? '').split(':')) if (dir && existsSync(`${dir}/redis-server`)) return `${dir}/redis-server`;
    return CANDIDATES.find((c) => existsSync(c));
  }

  static async start(): Promise<RedisProcess | undefined> {
    const binary = RedisProcess.binary();
    if (!binary) return undefined;
    const port = await freePort();
    const child = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdio: 'ignore' });
    const server = new RedisProcess(child, port);
    onProcessExit(() => server.#kill());
    await waitForPort(port);
    return server;
  }

  #kill(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.child.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    this.#kill();
  }
}

