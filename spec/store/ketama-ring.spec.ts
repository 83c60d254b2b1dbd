import { expect } from 'chai';
import { KetamaRing } from '../../lib/store/index.js';

describe('KetamaRing', () => {
  const servers = ['10.0.0.1:11211', '10.0.0.2:11211', '10.0.0.3:11211', '10.0.0.4:11211'];
  const keys = Array.from({ length: 20_000 }, (_, i) => `xa:entity:User:${i}`);

  it('spreads keys roughly evenly', () => {
    const ring = new KetamaRing(servers);
    const counts = new Map<string, number>();
    for (const key of keys) counts.set(ring.serverFor(key), (counts.get(ring.serverFor(key)) ?? 0) + 1);
    expect(counts.size).to.equal(4);
    for (const count of counts.values()) expect(count / keys.length).to.be.within(0.15, 0.35);
  });

  it('moves only the removed server’s keys when a server is removed', () => {
    const before = new KetamaRing(servers);
    const after = new KetamaRing(servers.filter((s) => s !== '10.0.0.3:11211'));
    let moved = 0;
    for (const key of keys) {
      const was = before.serverFor(key);
      const is = after.serverFor(key);
      if (was !== is) {
        moved++;
        expect(was, `key ${key} moved off a server that stayed`).to.equal('10.0.0.3:11211');
      }
    }
    expect(moved / keys.length).to.be.within(0.15, 0.35);
  });

  it('moves only about a fifth of the keys, all to the new server, when a fifth server is added', () => {
    const before = new KetamaRing(servers);
    const after = new KetamaRing([...servers, '10.0.0.5:11211']);
    const moved = keys.filter((key) => before.serverFor(key) !== after.serverFor(key));
    for (const key of moved) expect(after.serverFor(key)).to.equal('10.0.0.5:11211');
    expect(moved.length / keys.length).to.be.within(0.1, 0.3);
  });

  it('does not depend on the order servers are listed in', () => {
    const a = new KetamaRing(servers);
    const b = new KetamaRing([...servers].reverse());
    for (const key of keys.slice(0, 2000)) expect(a.serverFor(key)).to.equal(b.serverFor(key));
  });

  it('maps everything to the only server of a one-server ring', () => {
    const ring = new KetamaRing(['127.0.0.1:11211']);
    expect(ring.indexFor('anything')).to.equal(0);
  });
});
