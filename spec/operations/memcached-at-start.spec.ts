import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { sharedServers } from '../support/global-servers.js';
import { freePort } from '../support/free-port.js';
import { openBookstore, seedBookstore, type Bookstore } from '../support/bookstore.js';
import { startXaCache } from '../../lib/operations/start-xa-cache.js';
import { OperationsError } from '../../lib/operations/operations-error.js';

/** Case 11 of issue 14: memcached unreachable when the application starts. */
describe('startXaCache probes memcached', function () {
  this.timeout(60_000);
  const namespace = `mstart${randomUUID().slice(0, 6)}`;
  const logTable = `mstart_log_${namespace}`;
  const opened: Bookstore[] = [];
  const warnings: string[] = [];
  let dead: string[];

  async function open(servers: string[]): Promise<Bookstore> {
    const b = await openBookstore(servers, sharedServers().db, {
      namespace,
      logTable,
      store: { connectTimeoutMs: 500 },
      logger: (level, message) => {
        if (level === 'warn') warnings.push(message);
      },
    });
    opened.push(b);
    return b;
  }

  before(async () => {
    dead = [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`];
    const b = await open(sharedServers().memcachedAddresses);
    await seedBookstore(b.orm);
  });
  beforeEach(() => void warnings.splice(0));
  after(async () => {
    for (const b of opened) await b.close();
  });

  it('rejects, naming every server, when none answers', async () => {
    const b = await open(dead);
    const started = performance.now();
    let error: unknown;
    try {
      const runtime = await startXaCache(b.orm);
      await runtime.stop();
    } catch (e) {
      error = e;
    }
    expect(error).to.be.instanceOf(OperationsError);
    for (const server of dead) expect((error as Error).message).to.include(server);
    expect((error as Error).message).to.include('requireMemcached: false');
    expect(performance.now() - started).to.be.below(5_000);
  });

  it('starts anyway with requireMemcached: false, logging a warning that names the servers', async () => {
    const b = await open(dead);
    const runtime = await startXaCache(b.orm, { requireMemcached: false });
    try {
      expect(runtime.memcachedAtStart.map((p) => p.reachable)).to.deep.equal([false, false]);
      const warning = warnings.find((w) => w.includes('no memcached server answered'));
      expect(warning, warnings.join('\n')).to.be.a('string');
      for (const server of dead) expect(warning).to.include(server);
      expect(runtime.cache.stats.serversUnreachableAtStart).to.equal(2);
    } finally {
      await runtime.stop();
    }
  });

  it('starts when some servers answer, warning about and counting the others', async () => {
    const live = sharedServers().memcachedAddresses[0] as string;
    const b = await open([live, dead[0] as string]);
    const runtime = await startXaCache(b.orm);
    try {
      expect(runtime.memcachedAtStart.map((p) => [p.server, p.reachable])).to.deep.equal([
        [live, true],
        [dead[0], false],
      ]);
      expect(runtime.cache.stats.serversUnreachableAtStart).to.equal(1);
      const warning = warnings.find((w) => w.includes('memcached unreachable at startup'));
      expect(warning, warnings.join('\n')).to.include(dead[0]);
      expect(warning).to.not.include(live);
      expect(await runtime.metrics()).to.match(/^xa_cache_servers_unreachable_at_start_total 1$/m);
    } finally {
      await runtime.stop();
    }
  });

  it('starts silently when every server answers', async () => {
    const b = await open(sharedServers().memcachedAddresses);
    const runtime = await startXaCache(b.orm);
    try {
      expect(runtime.memcachedAtStart.every((p) => p.reachable)).to.equal(true);
      expect(runtime.memcachedAtStart).to.have.length(sharedServers().memcachedAddresses.length);
      expect(warnings.filter((w) => w.includes('memcached'))).to.deep.equal([]);
    } finally {
      await runtime.stop();
    }
  });
});
