import { expect } from 'chai';
import { checkHistory, type OpRecord, type OutsideBound } from './checker.js';
import { itemGroups } from './member-rows.js';
import type { CommittedTx } from './schema.js';

/*
 * The shape of seed 20260591's finding, by hand: item 9 (row v1, in group 2) moved into group 3 by the external
 * writer (acknowledged at t=100), then the library moved item 7 out of group 3 (returned at t=130), leaving [9]. A
 * collection read of group 3 that got the ids [9] and item 9's row still in its replaced version (group 2) sees [],
 * which is only group 3's membership long before (v1): the checker called it a stale read (G2).
 */
describe('consistency checker: a collection read with a member row of another group (hand-made history)', () => {
  const history: CommittedTx[] = [
    {
      token: 'seed',
      xid: '1',
      states: [
        { key: 'i:7', version: 1, token: 'seed' },
        { key: 'i:9', version: 1, token: 'seed' },
        { key: 'g:1', version: 1, token: 'seed', members: [7] },
        { key: 'g:2', version: 1, token: 'seed', members: [9] },
        { key: 'g:3', version: 1, token: 'seed', members: [] },
      ],
    },
    {
      token: 'in',
      xid: '2',
      states: [
        { key: 'i:7', version: 2, token: 'in' },
        { key: 'g:1', version: 2, token: 'in', members: [] },
        { key: 'g:3', version: 2, token: 'in', members: [7] },
      ],
    },
    {
      token: 'ext',
      xid: '3',
      states: [
        { key: 'i:9', version: 2, token: 'ext' },
        { key: 'g:2', version: 2, token: 'ext', members: [] },
        { key: 'g:3', version: 3, token: 'ext', members: [7, 9] },
      ],
    },
    {
      token: 'lib',
      xid: '4',
      states: [
        { key: 'i:7', version: 3, token: 'lib' },
        { key: 'g:1', version: 3, token: 'lib', members: [7] },
        { key: 'g:3', version: 4, token: 'lib', members: [9] },
      ],
    },
  ];
  const moveIn: OpRecord = { worker: 2, seq: 0, op: { kind: 'move', id: 7, to: 3 }, tokens: ['in'], start: 10, end: 20, result: { ok: true, obs: [], token: 'in' } };
  const external: OpRecord = { worker: 4, seq: 1, op: { kind: 'extMove', id: 9, to: 3 }, tokens: ['ext'], start: 90, end: 104, ackAt: 100, result: { ok: true, obs: [], token: 'ext' } };
  const move: OpRecord = { worker: 2, seq: 1, op: { kind: 'move', id: 7, to: 1 }, tokens: ['lib'], start: 95, end: 130, result: { ok: true, obs: [], token: 'lib' } };
  const groupReadAt = (start: number, members: number[] = [], group = { token: 'lib', version: 4 }): OpRecord => ({
    worker: 2,
    seq: 2,
    op: { kind: 'group', g: 3 },
    tokens: [],
    start,
    end: start + 20,
    result: { ok: true, obs: [{ key: 'g:3', ...group }, { key: 'm:3', members, via: 'collection' }] },
  });
  const bound: OutsideBound = { ms: 1000, followerIntervalMs: 1000, disturbances: [] };
  const guarantees = (records: OpRecord[], h: CommittedTx[] = history): string[] => checkHistory([moveIn, ...records], h, { outside: bound }).anomalies.map((a) => a.guarantee);

  it('knows each item version\'s group from the memberships recorded in its transaction, else its previous one', () => {
    const groups = itemGroups([...history, { token: 'touch', xid: '5', states: [{ key: 'i:9', version: 3, token: 'touch' }] }, { token: 'gone', xid: '6', states: [{ key: 'i:9', version: 4, token: null }] }]);
    expect([...groups.get('i:9')!]).to.deep.equal([[1, 2], [2, 3], [3, 3], [4, null]]);
    expect([...groups.get('i:7')!]).to.deep.equal([[1, 1], [2, 3], [3, 1]]);
  });

  it('accepts the membership minus a member whose row was read stale within the outside-writers bound, and measures it', () => {
    const summary = checkHistory([moveIn, external, move, groupReadAt(150)], history, { outside: bound });
    expect(summary.anomalies).to.deep.equal([]);
    expect(summary.memberRowMixes).to.equal(1);
    expect(summary.outsideStale.sent.max).to.equal(50);
  });

  it('rejects it once the bound has passed: the member row\'s replaced version is no longer allowed', () => {
    expect(guarantees([external, move, groupReadAt(1101)])).to.deep.equal(['G2']);
  });

  it('rejects it when a library commit replaced the member row before the read began (no stale row is allowed)', () => {
    const touched: CommittedTx[] = [...history, { token: 'lib2', xid: '5', states: [{ key: 'i:9', version: 3, token: 'lib2' }] }];
    const touch: OpRecord = { worker: 1, seq: 1, op: { kind: 'update', ids: [9], via: 'flush' }, tokens: ['lib2'], start: 131, end: 140, result: { ok: true, obs: [], token: 'lib2' } };
    expect(guarantees([external, move, touch, groupReadAt(150)], touched)).to.deep.equal(['G2']);
  });

  it('rejects a stale membership minus a member whose row is fresh, and a member row older than a returned commit', () => {
    // Items 7 and 9 moved into group 3 together (v2, returned at t=20), then 7 out: [] is neither [7, 9] without
    // item 7 (that membership was replaced by the library's commit) nor [9] without item 9 (its row in group 1 too).
    const together: CommittedTx[] = [
      { token: 'seed', xid: '1', states: [{ key: 'i:7', version: 1, token: 'seed' }, { key: 'i:9', version: 1, token: 'seed' }, { key: 'g:1', version: 1, token: 'seed', members: [7, 9] }, { key: 'g:3', version: 1, token: 'seed', members: [] }] },
      { token: 'in', xid: '2', states: [{ key: 'i:7', version: 2, token: 'in' }, { key: 'i:9', version: 2, token: 'in' }, { key: 'g:1', version: 2, token: 'in', members: [] }, { key: 'g:3', version: 2, token: 'in', members: [7, 9] }] },
      { token: 'lib', xid: '3', states: [{ key: 'i:7', version: 3, token: 'lib' }, { key: 'g:1', version: 3, token: 'lib', members: [7] }, { key: 'g:3', version: 3, token: 'lib', members: [9] }] },
    ];
    expect(guarantees([move, groupReadAt(150, [], { token: 'lib', version: 3 })], together)).to.deep.equal(['G2']);
  });

  it('never explains an added member: ids not in the membership are not loaded', () => {
    expect(guarantees([external, move, groupReadAt(150, [7, 9])])).to.deep.equal(['G2']);
  });
});
