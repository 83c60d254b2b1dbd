/** Exit statuses of the command-line tool (also listed by `--help`). */
export const EXIT = {
  /** Done; for `inspect`, nothing in doubt; for `sweep`, everything resolved. */
  ok: 0,
  /** `inspect`: transactions are in doubt. `sweep`: some were left unresolved (a key's server unreachable). */
  inDoubt: 1,
  /** Bad command line. */
  usage: 2,
  /**
   * Missing or unusable configuration (no config file, no database or memcached given, no log table, bad secrets,
   * memcached refusing the SASL credentials).
   */
  config: 3,
  /** PostgreSQL or a memcached server could not be reached. */
  unreachable: 4,
  /** Anything else. */
  failed: 5,
} as const;

/** A failure the tool reports in one clear line (plus an optional hint) and exits with. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    readonly hint?: string,
  ) {
    super(message);
    this.name = new.target.name;
  }

  static usage(message: string, command?: string): CliError {
    return new CliError(message, EXIT.usage, `see: mikro-orm-xa-cache ${command ? `${command} ` : ''}--help`);
  }

  static config(message: string, hint?: string): CliError {
    return new CliError(message, EXIT.config, hint);
  }

  static noDatabase(): CliError {
    return CliError.config(
      'no database: give --db postgres://user:password@host:5432/db, set DATABASE_URL, or point --config at your MikroORM config',
      'a MikroORM config file is looked for as the MikroORM CLI does (see --help)',
    );
  }

  static noMemcached(): CliError {
    return CliError.config(
      'no memcached servers: give --memcached host:11211[,host:11211…], set MEMCACHED_SERVERS, or point --config at a MikroORM config built with withXaCache',
    );
  }

  static unreachableDatabase(target: string, cause: unknown): CliError {
    return new CliError(`cannot reach PostgreSQL at ${target}: ${describe(cause)}`, EXIT.unreachable, 'check --db / DATABASE_URL / the config, and that the server accepts connections');
  }

  static unreachableMemcached(servers: readonly string[]): CliError {
    return new CliError(`cannot reach memcached at ${servers.join(', ')}`, EXIT.unreachable, 'check --memcached / MEMCACHED_SERVERS / the config, and that the servers run');
  }

  /** memcached answered but refused the tool: a matter of credentials, not of the network. */
  static memcachedAuth(servers: readonly string[], why: 'required' | 'refused'): CliError {
    const message =
      why === 'refused'
        ? `memcached at ${servers.join(', ')} refused the SASL credentials (authentication failed)`
        : `memcached at ${servers.join(', ')} requires SASL authentication, and no credentials were given`;
    return new CliError(message, EXIT.config, 'set MEMCACHED_USERNAME and MEMCACHED_PASSWORD, or store: { username, password } in the withXaCache options');
  }

  static noLogTable(table: string, target: string): CliError {
    return CliError.config(
      `the transaction log table "${table}" does not exist in ${target}`,
      'check --log-table (the logTable cache option) and the database; the table is created when the application first connects',
    );
  }
}

const PREFIX = 'mikro-orm-xa-cache: ';

/**
 * A one-line description of an error from pg, node or ours. The library's own errors start with the tool's name,
 * which the tool prints once in front of every message, so it is taken off here.
 */
export function describe(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return describe(error.errors[0]);
  if (error instanceof Error) {
    const code = (error as { code?: string }).code;
    return withoutPrefix(code && !error.message.includes(code) ? `${error.message} (${code})` : error.message || String(code ?? error.name));
  }
  return withoutPrefix(String(error));
}

/** A message as the tool prints it: after the tool's name, so without it. */
export function withoutPrefix(message: string): string {
  return message.startsWith(PREFIX) ? message.slice(PREFIX.length) : message;
}
