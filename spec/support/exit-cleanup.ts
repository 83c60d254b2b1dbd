const cleanups = new Set<() => void>();
let installed = false;

/**
 * Registers a synchronous cleanup that runs when this process exits, however it exits (normal end, an uncaught
 * error, SIGINT/SIGTERM), so throwaway servers do not outlive the test run. Returns a function that unregisters it.
 */
export function onProcessExit(cleanup: () => void): () => void {
  if (!installed) {
    installed = true;
    const runAll = (): void => {
      for (const fn of [...cleanups]) {
        cleanups.delete(fn);
        try {
          fn();
        } catch {
          // best effort on the way out
        }
      }
    };
    process.on('exit', runAll);
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        runAll();
        process.exit(130);
      });
    }
  }
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}
