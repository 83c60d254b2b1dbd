import { expect } from 'chai';
import pg from 'pg';
import { Servers } from './servers.js';
import { terminateBackends } from './postgres-cluster.js';
import { sharedServers } from './global-servers.js';

describe('test harness', () => {
  it('provides three memcached servers and a PostgreSQL database', async () => {
    const servers = sharedServers();
    expect(servers.memcachedAddresses).to.have.length(3);
    const client = new pg.Client({ connectionString: servers.db });
    await client.connect();
    const { rows } = await client.query<{ one: number }>('SELECT 1 AS one');
    await client.end();
    expect(rows[0]?.one).to.equal(1);
  });

  it('kills, restarts and stalls an owned memcached', async () => {
    const servers = await Servers.start({ memcached: 1, postgres: false, owned: true });
    try {
      const [server] = servers.memcached;
      if (!server) throw new Error('no memcached');
      await server.kill();
      expect(server.running).to.equal(false);
      await server.restart();
      expect(server.running).to.equal(true);
      server.pause();
      server.resume();
    } finally {
      await servers.stop();
    }
  });

  it('terminates PostgreSQL backends on demand', async () => {
    const url = sharedServers().db;
    const victim = new pg.Client({ connectionString: url, application_name: 'harness-victim' });
    await victim.connect();
    const lost = new Promise<Error>((resolve) => victim.on('error', resolve));
    expect(await terminateBackends(url, { applicationName: 'harness-victim' })).to.equal(1);
    expect((await lost).message).to.match(/terminat/);
  });
});
