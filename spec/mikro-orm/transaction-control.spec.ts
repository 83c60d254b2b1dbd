import { expect } from 'chai';
import { transactionControl } from '../../lib/mikro-orm/kysely-client-driver.js';

/** The Kysely driver follows each session's transaction from the statements it sends (pure logic). */
describe('transactionControl: what a statement does to the session\'s transaction', () => {
  const cases: Array<[string, ReturnType<typeof transactionControl>]> = [
    ['begin', 'begin'],
    ['BEGIN ISOLATION LEVEL SERIALIZABLE', 'begin'],
    ['start transaction isolation level repeatable read', 'begin'],
    ['/* a comment */ begin', 'begin'],
    ['-- a comment\nBEGIN;', 'begin'],
    ['commit', 'commit'],
    ['COMMIT WORK;', 'commit'],
    ['end', 'commit'],
    ['commit and chain', 'commit-and-chain'],
    ['commit and no chain', 'commit'],
    ['rollback', 'rollback'],
    ['ROLLBACK TRANSACTION', 'rollback'],
    ['abort', 'rollback'],
    ['rollback to savepoint "sp1"', undefined],
    ['rollback to "sp1"', undefined],
    ["commit prepared 'x'", undefined],
    ["rollback prepared 'x'", undefined],
    ['savepoint "sp1"', undefined],
    ['release "sp1"', undefined],
    ['select 1', undefined],
    ['start_of_something()', undefined],
    ['update t set a = 1', undefined],
    ['', undefined],
  ];
  for (const [sql, expected] of cases) {
    it(`${JSON.stringify(sql)} → ${String(expected)}`, () => expect(transactionControl(sql)).to.equal(expected));
  }
});
