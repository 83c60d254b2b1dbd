import { Servers } from './servers.js';

let shared: Servers | undefined;

/**
 * The servers shared by the whole mocha run: three memcached and one PostgreSQL database, started once.
 * Tests that kill or stall servers start their own with `Servers.start({ owned: true })`.
 */
export function sharedServers(): Servers {
  if (!shared) throw new Error('shared servers are started by the mocha root hooks (see .mocharc.json)');
  return shared;
}

/** Mocha root hooks: start the shared servers before the first test, stop them after the last. */
export const mochaHooks = {
  async beforeAll(this: Mocha.Context): Promise<void> {
    this.timeout(120_000);
    shared = await Servers.start({ memcached: 3 });
  },
  async afterAll(): Promise<void> {
    await shared?.stop();
    shared = undefined;
  },
};
