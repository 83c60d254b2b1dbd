import { fork, type ChildProcess } from 'node:child_process';

/** What a contender's child process answers: once ready (with what it reports then), then one answer a command. */
export type ContenderMessage<Ready extends object, Result> =
  | ({ readonly type: 'ready' } & Ready)
  | { readonly type: 'result'; readonly result: Result }
  | { readonly type: 'error'; readonly message: string };

/**
 * A benchmark contender in a child process of its own (the project's rule: contenders never share a process),
 * asked one thing at a time. `runnerFile` is the compiled runner, given the setup as its only argument.
 */
export class ContenderProcess<Command extends { readonly type: string }, Ready extends object, Result> {
  #waiting: { resolve: (m: ContenderMessage<Ready, Result>) => void; reject: (e: Error) => void } | undefined;
  readonly #exited: Promise<void>;

  private constructor(readonly child: ChildProcess) {
    child.on('message', (m: ContenderMessage<Ready, Result>) => {
      const w = this.#waiting;
      this.#waiting = undefined;
      w?.resolve(m);
    });
    this.#exited = new Promise((resolve) =>
      child.on('exit', (code) => {
        this.#waiting?.reject(new Error(`runner exited with ${code}`));
        this.#waiting = undefined;
        resolve();
      }),
    );
  }

  static async start<C extends { readonly type: string }, R extends object, T>(runnerFile: string, setup: { readonly key: string }): Promise<{ runner: ContenderProcess<C, R, T>; ready: { readonly type: 'ready' } & R }> {
    const runner = new ContenderProcess<C, R, T>(fork(runnerFile, [JSON.stringify(setup)], { stdio: 'inherit' }));
    const ready = await runner.#next();
    if (ready.type !== 'ready') throw new Error(`${setup.key}: ${ready.type === 'error' ? ready.message : 'unexpected message'}`);
    return { runner, ready };
  }

  #next(): Promise<ContenderMessage<Ready, Result>> {
    return new Promise((resolve, reject) => (this.#waiting = { resolve, reject }));
  }

  /** Sends a command and waits for its result. */
  async run(command: Exclude<Command, { type: 'close' }>): Promise<Result> {
    const answer = this.#next();
    this.child.send(command);
    const m = await answer;
    if (m.type !== 'result') throw new Error(m.type === 'error' ? m.message : 'unexpected message');
    return m.result;
  }

  /** Asks the child to close, and kills it if it has not exited within 10 s. */
  async close(): Promise<void> {
    if (this.child.exitCode === null && this.child.connected) this.child.send({ type: 'close' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.#exited;
    clearTimeout(timer);
  }
}

/** What a contender's child process does between its start and its close (see {@link serveContender}). */
export interface ServedContender<Command extends { readonly type: string }, Ready extends object, Result> {
  /** Sent to the parent once the contender is open. */
  readonly ready: Ready;
  /** Answers one command; the parent sends the next only after the answer. */
  handle(command: Exclude<Command, { type: 'close' }>): Promise<Result>;
  close(): Promise<void>;
}

/**
 * The child's side of {@link ContenderProcess}: reads its setup from the only argument, opens the contender with
 * `open`, reports ready, then answers commands until `close`. Any failure is sent to the parent as an `error`.
 */
export function serveContender<Setup, Command extends { readonly type: string }, Ready extends object, Result>(open: (setup: Setup) => Promise<ServedContender<Command, Ready, Result>>): void {
  const send = (message: ContenderMessage<Ready, Result>): void => {
    process.send?.(message);
  };
  const failure = (error: unknown): ContenderMessage<Ready, Result> => ({ type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  const main = async (): Promise<void> => {
    const served = await open(JSON.parse(process.argv[2] ?? '') as Setup);
    process.on('message', (command: Command) => {
      void (async () => {
        try {
          if (command.type === 'close') {
            await served.close();
            process.disconnect();
            return;
          }
          send({ type: 'result', result: await served.handle(command as Exclude<Command, { type: 'close' }>) });
        } catch (error) {
          send(failure(error));
        }
      })();
    });
    send({ type: 'ready', ...served.ready });
  };
  main().catch((error: unknown) => {
    send(failure(error));
    process.exitCode = 1;
    process.disconnect?.();
  });
}
