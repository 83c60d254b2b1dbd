/**
 * One contender of `npm run bench`, in a process of its own (`child_process.fork`, see `contender-process.ts`):
 * opens its ORM on its own database copy and cache namespace, then does what the parent asks, one thing at a time:
 * fill what a workload reads (`prepare`), measure one round of it (`measure`), count its counters one operation at
 * a time (`probe`), or measure it under the V8 CPU profiler (`profile`). Nothing here runs while another
 * contender is measured.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { contenderOf, type ContenderContext } from './contenders/index.js';
import { serveContender } from './contender-process.js';
import { digestProfile, type ProfileDigest } from './cpu-profile.js';
import { countPerOperation, measureRound, type Operation, type RoundResult } from './measure.js';
import { workloadOf, type DataShape } from './workloads/index.js';

export interface SuiteSetup extends ContenderContext {
  readonly key: string;
  readonly data: DataShape;
}

export type SuiteCommand =
  | { readonly type: 'prepare'; readonly workload: string }
  | { readonly type: 'measure'; readonly workload: string; readonly warmup: number; readonly seconds: number }
  | { readonly type: 'probe'; readonly workload: string; readonly count: number }
  | { readonly type: 'profile'; readonly workload: string; readonly warmup: number; readonly seconds: number }
  | { readonly type: 'close' };

/** Counters per operation, by kind (`all`, `read`, `write`, `timed`), each operation run alone. */
export type ProbeResult = Record<string, Record<string, number>>;

/** A measured window under the CPU profiler. */
export interface ProfileResult {
  readonly ops: number;
  readonly seconds: number;
  readonly opsPerSecond: number;
  readonly inFlight: number;
  readonly digest: ProfileDigest;
}

export type SuiteResult = { readonly prepareSeconds: number } | RoundResult | ProbeResult | ProfileResult;

/** Nothing to report once open. */
export type SuiteReady = Record<string, never>;

serveContender<SuiteSetup, SuiteCommand, SuiteReady, SuiteResult>(async (setup) => {
  const contender = await contenderOf(setup.key).open(setup);
  const operations = new Map<string, Operation>();
  const operationOf = (key: string): Operation => {
    const op = operations.get(key);
    if (!op) throw new Error(`workload ${key} was not prepared`);
    return op;
  };
  return {
    ready: {},
    async handle(command) {
      const workload = workloadOf(command.workload);
      switch (command.type) {
        case 'prepare': {
          const t0 = performance.now();
          operations.set(workload.key, await workload.prepare(contender, setup.data));
          return { prepareSeconds: (performance.now() - t0) / 1000 };
        }
        case 'measure':
          return measureRound(operationOf(workload.key), { inFlight: workload.inFlight, warmup: command.warmup, seconds: command.seconds, counters: contender.counters });
        case 'probe':
          return countPerOperation(operationOf(workload.key), command.count, contender.counters);
        case 'profile':
          return profile(operationOf(workload.key), workload.inFlight, command.warmup, command.seconds, contender.counters);
      }
    },
    close: () => contender.close(),
  };
});

/** Measures `op` with the V8 sampling profiler on for the measured window only, and digests the samples. */
async function profile(op: Operation, inFlight: number, warmup: number, seconds: number, counters: () => Record<string, number>): Promise<ProfileResult> {
  await measureRound(op, { inFlight, warmup, seconds: 0.001, counters });
  const session = new Session();
  session.connect();
  const dir = mkdtempSync(join(tmpdir(), 'xa-bench-prof-'));
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 1000 });
    await session.post('Profiler.start');
    const m = await measureRound(op, { inFlight, warmup: 0.001, seconds, counters });
    const { profile: cpuProfile } = await session.post('Profiler.stop');
    const file = join(dir, 'window.cpuprofile');
    writeFileSync(file, JSON.stringify(cpuProfile));
    return { ops: m.ops, seconds: m.seconds, opsPerSecond: m.opsPerSecond, inFlight, digest: digestProfile(file) };
  } finally {
    session.disconnect();
    rmSync(dir, { recursive: true, force: true });
  }
}
