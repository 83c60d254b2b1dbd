import { expect } from 'chai';
import pg from 'pg';
import { sharedServers } from '../support/global-servers.js';
import { deferBegin } from '../../lib/mikro-orm/deferred-begin.js';
import { recordMessages, type RecordedMessages } from '../support/pg-messages.js';

/*
 * A pool client sends kysely's BEGIN with the transaction's first statement (lib/mikro-orm/deferred-begin.ts), against
 * the real PostgreSQL: what runs, in which transaction, and what the caller gets back.
 */
describe('BEGIN sent with the first statement of the transaction', () => {
  let client: pg.Client;
  let admin: pg.Client;
  let sent: string[];
  let recording: RecordedMessages;

  before(async () => {
    admin = new pg.Client({ connectionString: sharedServers().db });
    await admin.connect();
    await admin.query('DROP TABLE IF EXISTS deferred_begin; CREATE TABLE deferred_begin (id int PRIMARY KEY, v text)');
  });

  after(async () => {
    await admin.query('DROP TABLE IF EXISTS deferred_begin');
    await admin.end();
  });

  beforeEach(async () => {
    await admin.query('TRUNCATE deferred_begin');
    client = new pg.Client({ connectionString: sharedServers().db });
    await client.connect();
    deferBegin(client);
    // Counted at the prototype, as instrumentation does: every message the client sends.
    recording = recordMessages(client);
    sent = recording.sent;
  });

  afterEach(async () => {
    recording.stop();
    await client.end().catch(() => undefined);
  });

  const committed = async (): Promise<string[]> => (await admin.query<{ v: string }>('SELECT v FROM deferred_begin ORDER BY id')).rows.map((r) => r.v);

  it('one message for BEGIN and the next statement; the caller gets its own statement\'s result', async () => {
    await client.query('begin');
    expect(sent, 'BEGIN held back').to.deep.equal([]);
    const result = await client.query("insert into deferred_begin values (1, 'a') returning v");
    expect(result.rows).to.deep.equal([{ v: 'a' }]);
    expect(result.command).to.equal('INSERT');
    expect(await committed(), 'inside the transaction: not visible yet').to.deep.equal([]);
    await client.query('commit');
    expect(sent).to.deep.equal(["begin;insert into deferred_begin values (1, 'a') returning v", 'commit']);
    expect(await committed()).to.deep.equal(['a']);
  });

  it('a statement of several keeps its array of results, without the BEGIN\'s', async () => {
    await client.query('begin');
    const results = (await client.query("insert into deferred_begin values (1, 'a'); select v from deferred_begin")) as unknown as pg.QueryResult[];
    expect(results.map((r) => r.command)).to.deep.equal(['INSERT', 'SELECT']);
    await client.query('rollback');
    expect(await committed()).to.deep.equal([]);
  });

  it('a statement with parameters follows the BEGIN on its own, inside the transaction and its isolation level', async () => {
    await client.query('start transaction isolation level serializable');
    const level = await client.query<{ level: string }>('select current_setting($1) as level', ['transaction_isolation']);
    expect(level.rows).to.deep.equal([{ level: 'serializable' }]);
    await client.query('insert into deferred_begin values ($1, $2)', [1, 'rolled back']);
    await client.query('rollback');
    expect(await committed(), 'the parameterised insert ran in the transaction').to.deep.equal([]);
    expect(sent[0]).to.equal('start transaction isolation level serializable');
  });

  it('a failing first statement fails as after its BEGIN: the transaction is aborted and rolls back, the client goes on', async () => {
    await client.query('begin');
    let error: unknown;
    await client.query('insert into no_such_table values (1)').catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/no_such_table/);
    let aborted: unknown;
    await client.query("insert into deferred_begin values (1, 'x')").catch((e: unknown) => (aborted = e));
    expect(String(aborted)).to.match(/current transaction is aborted/);
    await client.query('rollback');
    expect((await client.query('select 1 as one')).rows).to.deep.equal([{ one: 1 }]);
    expect(await committed()).to.deep.equal([]);
  });

  it('COMMIT right after BEGIN carries it; a BEGIN not in kysely\'s spelling (upper case) is sent as it comes', async () => {
    await client.query('begin');
    await client.query('commit');
    await client.query('BEGIN');
    await client.query('rollback');
    expect(sent).to.deep.equal(['begin;commit', 'BEGIN', 'rollback']);
  });

  it('a lone BEGIN that fails (its backend terminated) fails what was queued behind it: nothing runs outside a transaction', async () => {
    client.on('error', () => undefined);
    const pid = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
    await client.query('begin');
    await admin.query('select pg_terminate_backend($1)', [pid]);
    let error: unknown;
    await client.query('insert into deferred_begin values ($1, $2)', [1, 'outside']).catch((e: unknown) => (error = e));
    expect(error, 'the insert failed').to.be.instanceOf(Error);
    expect(await committed()).to.deep.equal([]);
  });
});
