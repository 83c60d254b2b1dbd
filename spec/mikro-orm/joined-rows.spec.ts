import { expect } from 'chai';
import pg from 'pg';
import { sharedServers } from '../support/global-servers.js';
import { deferBegin } from '../../lib/mikro-orm/deferred-begin.js';
import { joinMarkedRows } from '../../lib/mikro-orm/joined-rows.js';
import { JOINED_ROWS } from '../../lib/protocol/sql-runner.js';
import { recordMessages, type RecordedMessages } from '../support/pg-messages.js';

/*
 * A pool client answers a text marked JOINED_ROWS with the rows of all its statements (lib/mikro-orm/joined-rows.ts),
 * patched as the ORM's pool patches it (after deferBegin), against the real PostgreSQL.
 */
describe('rows of a marked text of several statements, joined', () => {
  let client: pg.Client;
  let sent: string[];
  let recording: RecordedMessages;

  beforeEach(async () => {
    client = new pg.Client({ connectionString: sharedServers().db });
    await client.connect();
    deferBegin(client);
    joinMarkedRows(client);
    recording = recordMessages(client);
    sent = recording.sent;
  });

  afterEach(async () => {
    recording.stop();
    await client.end();
  });

  it('one result with every statement\'s rows, in order; an unmarked text keeps its array of results', async () => {
    const joined = (await client.query(`${JOINED_ROWS}select 1 as a; select b from generate_series(3, 2, -1) as b`)) as unknown as pg.QueryResult;
    expect(joined.rows).to.deep.equal([{ a: 1 }, { b: 3 }, { b: 2 }]);
    const plain = (await client.query('select 1 as a; select 2 as b')) as unknown as pg.QueryResult[];
    expect(plain).to.be.an('array').with.length(2);
  });

  it('right after a held-back BEGIN: one message, run inside the transaction, rows joined without the BEGIN\'s', async () => {
    await client.query('begin');
    const joined = (await client.query(`${JOINED_ROWS}select txid_current_if_assigned() is null as fresh; select pg_current_xact_id()::text as xid`)) as unknown as pg.QueryResult;
    expect(sent, 'one message').to.have.length(1);
    expect(sent[0]).to.match(/^begin;\/\* xa-cache: joined rows \*\//);
    expect(joined.rows).to.have.length(2);
    expect(joined.rows[0]).to.deep.equal({ fresh: true });
    const { rows } = await client.query('select pg_current_xact_id()::text as xid');
    expect(rows[0].xid, 'the same transaction').to.equal((joined.rows[1] as { xid: string }).xid);
    await client.query('rollback');
  });

  it('a failing statement rejects the call', async () => {
    let error: unknown;
    await client.query(`${JOINED_ROWS}select 1 as a; select 1 / 0`).catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/division by zero/);
  });
});
