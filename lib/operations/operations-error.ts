/** Misuse of the operations helpers; the message says what to change. */
export class OperationsError extends Error {
  constructor(message: string) {
    super(`mikro-orm-xa-cache: ${message}`);
    this.name = new.target.name;
  }

  static notXaOrm(driver: string): OperationsError {
    return new OperationsError(`startXaCache needs an ORM built with withXaCache(config, options); its driver is ${driver}`);
  }

  static invalid(option: string, value: unknown, expected: string): OperationsError {
    return new OperationsError(`option "${option}" is ${JSON.stringify(value) ?? String(value)}; expected ${expected}`);
  }

  static captureMissing(tables: readonly string[]): OperationsError {
    return new OperationsError(
      `the database-side write capture is missing or out of date on ${tables.join(', ')}; writes there would not reach the cache. Install it: "mikro-orm-xa-cache capture --apply" or installWriteCapture(orm) (or startXaCache(orm, { writeCapture: 'warn' }) to stop caching these tables instead)`,
    );
  }

  static memcachedUnreachable(probes: ReadonlyArray<{ server: string; error?: { message: string } }>): OperationsError {
    const servers = probes.map((p) => `${p.server} (${p.error?.message ?? 'no answer'})`).join(', ');
    return new OperationsError(
      `no memcached server answered: ${servers}. Every cached write would fail (or, under the "degrade" policy, stay in the log) until one does. Check the "servers" option and that memcached runs and is reachable from here, or start anyway with startXaCache(orm, { requireMemcached: false })`,
    );
  }

  static stopped(): OperationsError {
    return new OperationsError('the cache runtime was stopped');
  }
}
