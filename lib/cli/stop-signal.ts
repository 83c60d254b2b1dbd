/**
 * How the long-running commands (`sweep --watch`, `follow`) stop: SIGINT or SIGTERM ends the current pause at
 * once and the loop after its current round. `release()` removes the handlers. The pause keeps the process alive.
 */
export interface StopSignal {
  readonly stopping: boolean;
  /** Waits `ms`, or less if a stop signal arrives. */
  pause(ms: number): Promise<void>;
  release(): void;
}

/** Listens for SIGINT and SIGTERM until {@link StopSignal.release}. */
export function stopSignal(): StopSignal {
  let stopping = false;
  let wake: (() => void) | undefined;
  const stop = (): void => {
    stopping = true;
    wake?.();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return {
    get stopping() {
      return stopping;
    },
    pause: (ms) =>
      new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, ms);
      }),
    release: () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    },
  };
}
