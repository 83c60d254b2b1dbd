import { expect } from 'chai';
import { DEFAULT_MAX_VALUE_BYTES, MemcachedStore, StoreConfigError, type MemcachedStoreOptions } from '../../lib/store/index.js';

describe('MemcachedStore options', () => {
  const refused = (options: MemcachedStoreOptions, option: string, message: RegExp): void => {
    let error: unknown;
    try {
      new MemcachedStore(options);
    } catch (e) {
      error = e;
    }
    expect(error).to.be.instanceOf(StoreConfigError);
    expect((error as StoreConfigError).option).to.equal(option);
    expect((error as StoreConfigError).message).to.match(message);
  };

  it('refuses an empty server list', () => refused({ servers: [] }, 'servers', /at least one/));

  it('refuses malformed addresses, saying how to write them', () => {
    for (const address of ['localhost', 'host:', ':11211', 'host:0', 'host:70000', 'a b:1', '127.0.0.1:11211:3']) {
      refused({ servers: [address] }, 'servers', /"host:port"/);
    }
  });

  it('refuses a server listed twice', () => refused({ servers: ['h:1', 'h:1'] }, 'servers', /twice/));

  it('refuses negative, fractional and NaN numbers', () => {
    refused({ servers: ['h:1'], timeoutMs: -1 }, 'timeoutMs', /integer/);
    refused({ servers: ['h:1'], timeoutMs: Number.NaN }, 'timeoutMs', /NaN/);
    refused({ servers: ['h:1'], connectTimeoutMs: 0 }, 'connectTimeoutMs', /from 1/);
    refused({ servers: ['h:1'], retryAfterMs: 1.5 }, 'retryAfterMs', /integer/);
    refused({ servers: ['h:1'], maxValueBytes: -5 }, 'maxValueBytes', /integer/);
  });

  it('refuses namespaces that would make keys unsafe', () => {
    for (const namespace of ['', 'a b', 'a:b', 'x'.repeat(65), 'é']) refused({ servers: ['h:1'], namespace }, 'namespace', /printable/);
  });

  it('refuses a username without a password, without echoing either', () => {
    refused({ servers: ['h:1'], username: 'secret-user' }, 'username', /^username and password must be given together/);
  });

  it('accepts IPv6 addresses and fills in defaults', () => {
    const store = new MemcachedStore({ servers: ['[::1]:11211', 'cache.local:11212'] });
    expect(store.maxValueBytes).to.equal(DEFAULT_MAX_VALUE_BYTES);
    expect(store.serverFor('k')).to.be.oneOf(['[::1]:11211', 'cache.local:11212']);
  });
});
