import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { sharedServers } from '../support/global-servers.js';
import { ProtocolFixture } from '../support/protocol-fixture.js';
import { encodeEntry } from '../../lib/protocol/entry-codec.js';
import { regionKey } from '../../lib/protocol/protocol-context.js';
import { ProtocolConfigError } from '../../lib/protocol/protocol-errors.js';
import { XaCache } from '../../lib/protocol/xa-cache.js';
import { MemcachedStore } from '../../lib/store/memcached-store.js';

const secret = (): string => randomBytes(32).toString('base64');

describe('sealed entries (secrets configured)', () => {
  const open = async (protocol: { secrets: string[]; encryptValues?: boolean }, namespace?: string): Promise<ProtocolFixture> => {
    const s = sharedServers();
    const f = await ProtocolFixture.create(s.memcachedAddresses, s.db, { protocol, namespace });
    await f.seed([1, 2]);
    return f;
  };

  it('never serves a forged entry: the right format without a valid MAC is a miss, counted', async () => {
    const f = await open({ secrets: [secret()] });
    try {
      const forged = encodeEntry({ kind: 'value', generations: new Map(), payload: Buffer.from(JSON.stringify({ v: 666, token: 'forged' })) });
      await f.store.execute([{ op: 'set', key: 'kv:1', value: Buffer.concat([forged, randomBytes(32)]), ttl: 0 }] as const);
      expect(await f.read(1)).to.deep.equal({ v: 1, token: 'seed' });
      await f.store.execute([{ op: 'set', key: 'kv:2', value: forged, ttl: 0 }] as const);
      expect(await f.read(2)).to.deep.equal({ v: 1, token: 'seed' });
      expect(f.cache.stats.forgedEntries).to.be.greaterThan(0);
    } finally {
      await f.close();
    }
  });

  it('never serves a valid entry copied under another key', async () => {
    const f = await open({ secrets: [secret()] });
    try {
      await f.cache.reader.fetch('kv:evil', async () => Buffer.from(JSON.stringify({ v: 666, token: 'copied' })));
      const genuine = await f.store.get('kv:evil');
      if (genuine.status !== 'hit') throw new Error('expected the entry to be cached');
      await f.store.execute([{ op: 'set', key: 'kv:1', value: genuine.item.value, ttl: 0 }] as const);
      expect(await f.read(1)).to.deep.equal({ v: 1, token: 'seed' });
    } finally {
      await f.close();
    }
  });

  it('refuses forged region generations, so old results cannot be made valid again', async () => {
    const f = await open({ secrets: [secret()] });
    try {
      await f.cache.reader.fetch('q:all', async () => Buffer.from('old'), { regions: ['kv'] });
      const region = await f.store.get(regionKey('kv'));
      await f.write([1], { regions: ['kv'] });
      if (region.status !== 'hit') throw new Error('expected a generation');
      // Put back the old generation without its MAC: it must not revive the result read under it.
      await f.store.execute([{ op: 'set', key: regionKey('kv'), value: region.item.value.subarray(0, region.item.value.length - 32), ttl: 0 }] as const);
      expect((await f.cache.reader.read('q:all', { regions: ['kv'], lease: false })).status).to.equal('miss');
    } finally {
      await f.close();
    }
  });

  it('rotates secrets: a new secret first still reads entries signed by the old one; dropping the old one refuses them', async () => {
    const s = sharedServers();
    const oldSecret = secret();
    const newSecret = secret();
    const before = await open({ secrets: [oldSecret] });
    const namespace = before.namespace;
    await before.read(1);
    await before.close();
    const rolling = await ProtocolFixture.create(s.memcachedAddresses, s.db, { namespace, protocol: { secrets: [newSecret, oldSecret] } });
    try {
      const hits = rolling.cache.stats.hits;
      expect(await rolling.read(1)).to.deep.equal({ v: 1, token: 'seed' });
      expect(rolling.cache.stats.hits, 'the old-signed entry verifies').to.equal(hits + 1);
      await rolling.read(2); // signed with the new secret
    } finally {
      await rolling.close();
    }
    // Back to only the old secret (a rollback of the rotation): entries the new secret signed are refused.
    const back = await ProtocolFixture.create(s.memcachedAddresses, s.db, { namespace, protocol: { secrets: [oldSecret] } });
    try {
      expect(await back.read(2)).to.deep.equal({ v: 1, token: 'seed' });
      expect(back.cache.stats.forgedEntries).to.equal(1);
      expect(back.cache.stats.hits).to.equal(0);
    } finally {
      await back.close();
    }
  });

  it('encrypts values: the bytes in memcached do not contain the data, and hits decrypt', async () => {
    const f = await open({ secrets: [secret()], encryptValues: true });
    try {
      await f.cache.reader.fetch('kv:secret', async () => Buffer.from('the quick brown fox of 1983'));
      const raw = await f.store.get('kv:secret');
      if (raw.status !== 'hit') throw new Error('expected a cached value');
      expect(raw.item.value.includes(Buffer.from('quick brown fox'))).to.equal(false);
      const again = await f.cache.reader.read('kv:secret');
      expect(again.status === 'hit' && again.payload.toString()).to.equal('the quick brown fox of 1983');
    } finally {
      await f.close();
    }
  });

  it('refuses bad secret settings with a message that does not echo them', () => {
    const store = new MemcachedStore({ servers: sharedServers().memcachedAddresses });
    expect(() => new XaCache(store, { secrets: ['short-and-weak'] })).to.throw(ProtocolConfigError, /at least 16 bytes/).with.property('message').that.does.not.include('short-and-weak');
    expect(() => new XaCache(store, { encryptValues: true })).to.throw(ProtocolConfigError, /set secrets/);
    void store.close();
  });
});
