/** The protocol's operations an observer can time and trace. */
export type CacheOperation = 'read' | 'fill' | 'prepare' | 'promote' | 'release' | 'sweep';

/** Plain attributes of an operation: names like `keys`, `hits`, `outcome`, `policy`, `region`. */
export type ObservedAttributes = Record<string, string | number | boolean>;

/** Ends an observed operation with what it did (`error` when it threw). */
export type OperationEnd = (result: ObservedAttributes, error?: unknown) => void;

/**
 * Timing hooks (for histograms, spans): called when an operation starts, with its attributes; the function it
 * returns is called when the operation ends. Installed with `CacheStats.observe`; with none installed, the
 * protocol checks one flag per operation and allocates nothing.
 */
export interface CacheObserver {
  start(operation: CacheOperation, attributes: ObservedAttributes): OperationEnd;
}

/** Starts an operation on every observer; one end function ends it on all. */
export function startAll(observers: readonly CacheObserver[], operation: CacheOperation, attributes: ObservedAttributes): OperationEnd {
  if (observers.length === 1) return (observers[0] as CacheObserver).start(operation, attributes);
  const ends = observers.map((o) => o.start(operation, attributes));
  return (result, error) => {
    for (const end of ends) end(result, error);
  };
}
