import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import pg from 'pg';
import { sharedServers } from '../support/global-servers.js';
import { TransactionLog } from '../../lib/protocol/transaction-log.js';
import { WriteCapture } from '../../lib/protocol/write-capture.js';
import type { SqlRunner, StatementRider } from '../../lib/protocol/sql-runner.js';

/*
 * The log statement with a read riding along it (TransactionLog.record): both go out in one message, the log
 * statement's values inlined, and the runner answers with the rows of both (JOINED_ROWS).
 */

/** A rider whose delivered rows (or failure) the test reads. */
function rider(sql: string): StatementRider & { readonly rows: Promise<object[]> } {
  let deliver!: (rows: object[]) => void;
  let fail!: (error: unknown) => void;
  const rows = new Promise<object[]>((resolve, reject) => ((deliver = resolve), (fail = reject)));
  rows.catch(() => undefined);
  return { sql, deliver, fail, rows };
}

/** A runner over one client, joining the results of a several-statement text as the ORM's pool clients do. */
function joiningRunner(client: pg.Client, held?: StatementRider): SqlRunner {
  return {
    async query(sql, params) {
      const answer = (await client.query(sql, params)) as unknown as pg.QueryResult | pg.QueryResult[];
      return Array.isArray(answer) ? { rows: answer.flatMap((r) => r.rows) } : answer;
    },
    takeRider: () => held,
  };
}

describe('the transaction log statement carrying a read', function () {
  this.timeout(30_000);
  const table = `xa_log_${randomUUID().slice(0, 8)}`;
  const log = new TransactionLog(table, 'ns');
  const capture = new WriteCapture(table);
  let client: pg.Client;

  before(async () => {
    client = new pg.Client({ connectionString: sharedServers().db });
    await client.connect();
    await log.ensureTable(client);
    await capture.ensureBase(client);
  });
  after(async () => {
    await client.query(`DROP TABLE IF EXISTS ${table}, ${capture.table} CASCADE`);
    await client.end();
  });
  afterEach(async () => {
    await client.query('ROLLBACK').catch(() => undefined);
    await client.query('RESET standard_conforming_strings');
  });

  for (const conforming of ['on', 'off']) {
    it(`stores keys holding quotes, backslashes and placeholders exactly, and delivers the read's rows in order (standard_conforming_strings ${conforming})`, async () => {
      await client.query(`SET standard_conforming_strings = ${conforming}`);
      const keys = ["e:public.t:it's", 'e:public.t:back\\slash', "e:public.t:\\'", 'e:public.t:$1 $2::uuid[]', 'e:public.t:ünï\ncode', 'e:public.t:E\'\''];
      const done = [randomUUID(), randomUUID()];
      const read = rider('select n from generate_series(1, 3) as n order by n desc;');
      const txId = randomUUID();
      await client.query('BEGIN');
      const { xid } = await log.record(joiningRunner(client, read), txId, keys, [], done, capture);
      const { rows } = await client.query(`SELECT keys, regions, namespace, xid::text AS xid, pg_current_xact_id()::text AS own FROM ${table} WHERE tx_id = $1`, [txId]);
      await client.query('ROLLBACK');
      expect(rows).to.have.length(1);
      expect(rows[0].keys).to.deep.equal(keys);
      expect(rows[0].regions).to.deep.equal([]);
      expect(rows[0].namespace).to.equal('ns');
      expect(xid).to.equal(rows[0].own);
      expect((await read.rows).map((r) => (r as { n: number }).n)).to.deep.equal([3, 2, 1]);
    });
  }

  it('deletes the promoted rows it is given, in the same message', async () => {
    const earlier = randomUUID();
    await client.query(`INSERT INTO ${table} (tx_id, namespace, keys, regions) VALUES ($1, 'ns', '{}', '{}')`, [earlier]);
    await client.query('BEGIN');
    await log.record(joiningRunner(client, rider('select 1 as one')), randomUUID(), ['k'], ['r'], [earlier], capture);
    await client.query('COMMIT');
    const { rows } = await client.query(`SELECT 1 FROM ${table} WHERE tx_id = $1`, [earlier]);
    expect(rows).to.have.length(0);
  });

  it('a runner that does not join the rows fails the statement and the read with a clear error', async () => {
    const read = rider('select 1 as one');
    const cutting: SqlRunner = {
      // What kysely makes of an array of results: no rows.
      async query(sql, params) {
        const answer = (await client.query(sql, params)) as unknown as pg.QueryResult | pg.QueryResult[];
        return { rows: Array.isArray(answer) ? [] : answer.rows };
      },
      takeRider: () => read,
    };
    await client.query('BEGIN');
    let error: unknown;
    await log.record(cutting, randomUUID(), ['k'], [], [], capture).catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/JOINED_ROWS/);
    let readError: unknown;
    await read.rows.catch((e: unknown) => (readError = e));
    expect(readError).to.equal(error);
  });

  it('a failing read fails the statement: nothing of it is left in the transaction', async () => {
    const read = rider('select 1 / 0 as boom');
    await client.query('BEGIN');
    let error: unknown;
    await log.record(joiningRunner(client, read), randomUUID(), ['k'], [], [], capture).catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/division by zero/);
    let readError: unknown;
    await read.rows.catch((e: unknown) => (readError = e));
    expect(readError).to.equal(error);
    // The transaction is aborted: PostgreSQL refuses anything but its end.
    let after: unknown;
    await client.query('SELECT 1').catch((e: unknown) => (after = e));
    expect(String(after)).to.match(/current transaction is aborted/);
  });
});
