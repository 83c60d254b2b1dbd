import { AsyncLocalStorage } from 'node:async_hooks';

/** Tables a cached query read, collected while it runs, so its result is invalidated when any of them changes. */
export class QueryScope {
  readonly tables = new Set<string>();
  /**
   * The schema the queried entity's table is read in (`em.fork({ schema })`, the entity's, MikroORM's `schema`
   * option), set before the result cache is asked. MikroORM's own key does not always name it (a named key, or the
   * `schema` option), so the adapter scopes the key by it: two schemas never share a result (G14).
   */
  schema: string | undefined;
  /** Set when a statement of the query ran on a read replica, which may lag behind a commit: never fill then. */
  readFromReplica = false;
}

/**
 * What the code running now is doing, carried through awaits: the connection sees every statement but not who
 * issued it, so the entity manager and the driver say it here.
 */
export interface CallContext {
  /** A query whose result may be cached is running: record the tables it reads. */
  readonly query?: QueryScope;
}

const storage = new AsyncLocalStorage<CallContext>();

/** The current call context (empty outside any). */
export function currentCall(): CallContext {
  return storage.getStore() ?? {};
}

/** Runs `fn` with `extra` added to the current call context. */
export function withCall<T>(extra: CallContext, fn: () => T): T {
  return storage.run({ ...storage.getStore(), ...extra }, fn);
}
