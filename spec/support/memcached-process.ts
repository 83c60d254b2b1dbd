import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { freePort, waitForPort } from './free-port.js';
import { isRoot, requireBinary } from './binaries.js';
import { onProcessExit } from './exit-cleanup.js';

/** Settings for a throwaway memcached. */
export interface MemcachedOptions {
  /** Memory limit in MiB (`-m`); small values make memcached evict. Default 64. */
  memoryMb?: number;
  /** Largest item (`-I`), for example `'1m'`. Default memcached's own (1 MiB). */
  maxItemSize?: string;
  /** Port to listen on; a free one by default. Kept across restarts. */
  port?: number;
}

/**
 * A memcached process started from the installed binary, owned by the test run: it can be killed, restarted
 * (empty, on the same port), stalled with SIGSTOP and resumed.
 */
/** Whether a memcached at `address` answers `version` within 100 ms (a stopped or dead one does not). */
export function answersVersion(address: string): Promise<boolean> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve) => {
    const socket = connect(Number(port), host);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, 100);
    socket.once('data', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => undefined);
    socket.write('version\r\n');
  });
}

export class MemcachedProcess {
  #child: ChildProcess | undefined;
  #port = 0;

  private constructor(private readonly options: MemcachedOptions) {}

  /** Starts a memcached and waits until it accepts connections. */
  static async start(options: MemcachedOptions = {}): Promise<MemcachedProcess> {
    const server = new MemcachedProcess(options);
    server.#port = options.port ?? (await freePort());
    await server.#spawn();
    return server;
  }

  /** `host:port` to connect to. */
  get address(): string {
    return `127.0.0.1:${this.#port}`;
  }

  get port(): number {
    return this.#port;
  }

  /** The process id, while it runs (for signals sent from outside this process, e.g. by a helper shell). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  async #spawn(): Promise<void> {
    const binary = requireBinary('memcached');
    const args = ['-l', '127.0.0.1', '-p', String(this.#port), '-U', '0', '-m', String(this.options.memoryMb ?? 64), '-c', '4096', '-t', '2'];
    if (this.options.maxItemSize) args.push('-I', this.options.maxItemSize);
    if (isRoot()) args.push('-u', 'memcache');
    const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<never>((_, reject) =>
      child.once('exit', (code) => reject(new Error(`memcached exited with ${code} before listening: ${stderr.trim()}`))),
    );
    exited.catch(() => undefined);
    await Promise.race([waitForPort(this.#port), exited]);
    this.#child = child;
    const unregister = onProcessExit(() => {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    });
    child.once('exit', () => {
      unregister();
      if (this.#child === child) this.#child = undefined;
    });
  }

  /** SIGKILLs the process: every item is lost, clients see their connections drop. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }

  /** Starts it again on the same port, empty. */
  async restart(): Promise<void> {
    await this.kill();
    await this.#spawn();
  }

  /** SIGSTOPs the process: connections stay open but nothing is answered. */
  pause(): void {
    this.#child?.kill('SIGSTOP');
  }

  /**
   * Resolves once a paused process no longer answers `version` within 100 ms. On a loaded machine SIGSTOP can take
   * a moment to stop every thread, and a request sent meanwhile would still be answered.
   */
  async untilSilent(): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const answered = await answersVersion(`127.0.0.1:${this.#port}`);
      if (!answered) return;
    }
    throw new Error(`memcached on ${this.address} still answers after SIGSTOP`);
  }

  /** SIGCONTs a paused process. */
  resume(): void {
    this.#child?.kill('SIGCONT');
  }

  /** Stops the process for good. */
  async stop(): Promise<void> {
    this.resume();
    await this.kill();
  }
}
