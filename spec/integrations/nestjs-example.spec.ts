import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import type { INestApplication } from '@nestjs/common';
import { MikroORM, EntityManager } from '@mikro-orm/core';
import { EntityManager as PostgreSqlEntityManager } from '@mikro-orm/postgresql';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { sharedServers } from '../support/global-servers.js';
import { createDatabase } from '../support/postgres-cluster.js';
import { createExampleApp } from '../../examples/nestjs/create-app.js';
import { createExampleSchema } from '../../examples/nestjs/schema.js';
import type { ExampleSettings } from '../../examples/nestjs/settings.js';
import type { BookView } from '../../examples/nestjs/books.service.js';
import { XaCacheRuntime } from '../../lib/operations/xa-cache-runtime.js';
import { XaEntityManager } from '../../lib/mikro-orm/xa-entity-manager.js';

/** One booted instance of the example: its URL, the ORM and cache runtime Nest made, and the book reads it sent. */
interface Instance {
  readonly app: INestApplication;
  readonly url: string;
  readonly orm: MikroORM;
  readonly runtime: XaCacheRuntime;
  /** SELECTs on the book table sent by this instance's ORM, in order. */
  readonly bookSelects: string[];
}

describe('integrations: the NestJS example (examples/nestjs) booted against the real servers', function () {
  this.timeout(120_000);
  let dbName: string;
  let settings: ExampleSettings;
  const open: Instance[] = [];

  async function boot(): Promise<Instance> {
    const app = await createExampleApp(settings, false);
    await app.listen(0, '127.0.0.1');
    const { port } = app.getHttpServer().address() as AddressInfo;
    const orm = app.get<unknown, MikroORM>(MikroORM);
    const bookSelects: string[] = [];
    // Observes the SQL of the ORM Nest created (MikroORM reads the hook at every query).
    orm.config.set('onQuery', (query: string) => {
      if (/^\s*select\b[\s\S]*\bfrom\s+"book"/i.test(query)) bookSelects.push(query);
      return query;
    });
    const instance = { app, url: `http://127.0.0.1:${port}`, orm, runtime: app.get(XaCacheRuntime), bookSelects };
    open.push(instance);
    return instance;
  }

  async function call(instance: Instance, method: string, path: string, body?: unknown): Promise<BookView> {
    const response = await fetch(`${instance.url}${path}`, {
      method,
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    expect(response.status, `${method} ${path}`).to.be.oneOf([200, 201]);
    return (await response.json()) as BookView;
  }

  before(async () => {
    const s = sharedServers();
    dbName = `xa_nest_${randomUUID().slice(0, 8)}`;
    settings = { databaseUrl: await createDatabase(s.db, dbName), memcachedServers: s.memcachedAddresses, namespace: `nest${randomUUID().slice(0, 6)}` };
    await createExampleSchema(settings);
  });
  after(async () => {
    await Promise.all(open.map((i) => i.app.close()));
    // The database may be on a server the environment named (DATABASE_URL): leave nothing behind.
    const admin = new pg.Client({ connectionString: sharedServers().db });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).finally(() => admin.end());
  });

  it('starts the cache runtime with the application: startup sweep done, follower running', async () => {
    const a = await boot();
    expect(a.runtime.sweeper.sweeps).to.be.at.least(1);
    expect(a.runtime.lastSweepError).to.equal(undefined);
    expect(a.runtime.follower, 'the outside-changes follower').to.not.equal(undefined);
  });

  it("injects the entity manager as core's EntityManager or XaEntityManager, not as @mikro-orm/postgresql's", () => {
    const a = open[0]!;
    expect(a.app.get(EntityManager)).to.be.instanceOf(XaEntityManager);
    expect(a.app.get(XaEntityManager)).to.be.instanceOf(XaEntityManager);
    // @mikro-orm/nestjs registers the driver's own class (a subclass), so the driver package's export is unknown.
    expect(() => a.app.get(PostgreSqlEntityManager)).to.throw(/PostgreSqlEntityManager/);
  });

  it('serves the second GET of a book from memcached, with no SELECT on the book table', async () => {
    const a = open[0]!;
    const created = await call(a, 'POST', '/books', { title: 'Dune' });
    const before = a.bookSelects.length;
    expect(await call(a, 'GET', `/books/${created.id}`)).to.deep.equal(created);
    expect(a.bookSelects.length - before, 'the first GET reads the database (and fills the cache)').to.equal(1);
    const selects = a.bookSelects.length;
    const { hits, misses } = a.runtime.cache.stats;

    expect(await call(a, 'GET', `/books/${created.id}`)).to.deep.equal(created);
    expect(a.bookSelects.slice(selects), 'SQL of the second GET').to.deep.equal([]);
    expect(a.runtime.cache.stats.hits).to.equal(hits + 1);
    expect(a.runtime.cache.stats.misses).to.equal(misses);
  });

  it('a PATCH on one instance is read by the next GET on it and on a second instance that had the old title cached', async () => {
    const a = open[0]!;
    const b = await boot();
    const book = await call(a, 'POST', '/books', { title: 'Hyperion' });
    await call(a, 'GET', `/books/${book.id}`);
    await call(b, 'GET', `/books/${book.id}`);
    const bHits = b.runtime.cache.stats.hits;
    expect((await call(b, 'GET', `/books/${book.id}`)).title).to.equal('Hyperion');
    expect(b.runtime.cache.stats.hits, 'b serves the old title from the cache').to.equal(bHits + 1);

    expect(await call(a, 'PATCH', `/books/${book.id}`, { title: 'The Fall of Hyperion' })).to.deep.equal({ id: book.id, title: 'The Fall of Hyperion' });
    expect((await call(a, 'GET', `/books/${book.id}`)).title).to.equal('The Fall of Hyperion');
    expect((await call(b, 'GET', `/books/${book.id}`)).title).to.equal('The Fall of Hyperion');
    expect(a.runtime.cache.stats.promotes, 'the write went through prepare and promote').to.be.at.least(1);
  });

  it("serves the cache's metrics on the application's /metrics, next to the application's own", async () => {
    const a = open[0]!;
    const response = await fetch(`${a.url}/metrics`);
    expect(response.status).to.equal(200);
    expect(response.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
    const families = new Map(parsePrometheusTextFormat(await response.text()).map((f) => [f.name, f]));
    const value = (name: string): number => Number(families.get(name)?.metrics[0]?.value);

    expect(families.get('process_cpu_user_seconds_total')?.type, "the application's own metric").to.equal('COUNTER');
    expect(families.get('xa_cache_hits_total')?.type).to.equal('COUNTER');
    expect(value('xa_cache_hits_total')).to.equal(a.runtime.cache.stats.hits).and.to.be.at.least(2);
    expect(value('xa_cache_misses_total')).to.equal(a.runtime.cache.stats.misses).and.to.be.at.least(1);
    expect(value('xa_cache_promotes_total')).to.equal(a.runtime.cache.stats.promotes).and.to.be.at.least(1);
    expect(value('xa_cache_sweeps_total')).to.equal(a.runtime.sweeper.sweeps).and.to.be.at.least(1);
    for (const name of ['xa_cache_read_duration_seconds', 'xa_cache_fill_duration_seconds', 'xa_cache_commit_overhead_seconds']) {
      expect(families.get(name)?.type, name).to.equal('HISTOGRAM');
    }
  });

  it('fails the bootstrap, naming the servers, when no memcached answers startXaCache', async () => {
    let error: unknown;
    await createExampleApp({ ...settings, memcachedServers: ['127.0.0.1:1'] }, false).catch((e: unknown) => (error = e));
    expect(String(error)).to.include('no memcached server answered').and.to.include('127.0.0.1:1');
  });

  it('app.close() stops the cache runtime, then closes the ORM, and returns', async () => {
    for (const instance of open.splice(0)) {
      const order: string[] = [];
      // Observe (and pass through) the two calls whose order the lifecycle promises.
      const stop = instance.runtime.stop.bind(instance.runtime);
      instance.runtime.stop = async () => {
        order.push('runtime.stop');
        await stop();
      };
      const close = instance.orm.close.bind(instance.orm);
      instance.orm.close = async (force?: boolean) => {
        order.push('orm.close');
        await close(force);
      };

      await instance.app.close();
      expect(order).to.deep.equal(['runtime.stop', 'orm.close']);
      expect(await instance.orm.isConnected()).to.equal(false);
      expect(instance.runtime.follower?.leading, 'the follower gave up its lease').to.equal(false);
      let error: unknown;
      await instance.runtime.sweepNow().catch((e: unknown) => (error = e));
      expect(String(error)).to.include('the cache runtime was stopped');
    }
  });
});
