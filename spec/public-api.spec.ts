import { expect } from 'chai';

/** The package as users import it: by name, through package.json `exports`, the built files only. */
describe('public API', () => {
  it('exports the setup, the marker, operations and the protocol by package name', async () => {
    // A specifier in a variable: the compiler must not resolve it, since dist/ does not exist before the first build.
    const packageName = 'mikro-orm-xa-cache';
    const api = (await import(packageName)) as Record<string, unknown>;
    for (const name of ['withXaCache', 'XaCacheAdapter', 'XaPostgreSqlDriver', 'XaEntityManager', 'XaSubscriber', 'Cacheable', 'startXaCache', 'serveMetrics', 'prometheusText', 'XaCache', 'TransactionLog', 'MemcachedStore', 'XaConfigError', 'CachePrepareError', 'ReadOnlyEntityError', 'CommitOutcomeError', 'StoreError']) {
      expect(api[name], name).to.be.a('function');
    }
  });
});
