import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { PoolConfig } from 'pg';
import { resolveStoreOptions, type MemcachedStoreOptions } from '../store/memcached-store-options.js';
import { StoreConfigError } from '../store/store-errors.js';
import { secretsProblem } from '../protocol/entry-sealer.js';
import { CliError, describe } from './cli-errors.js';
import type { ParsedCommand } from './cli-args.js';

/** Where the tool finds the database, memcached and the cache's names. */
export interface CliConfig {
  readonly pg: PoolConfig;
  /** `host:port/database`, for messages (never the password). */
  readonly dbLabel: string;
  /** Empty only for `capture`, which needs no memcached. */
  readonly memcached: readonly string[];
  readonly namespace: string;
  readonly logTable: string;
  readonly store: Omit<MemcachedStoreOptions, 'servers' | 'namespace'>;
  /** The application's `secrets` (newest first), so the tool reads its authenticated entries; never printed. */
  readonly secrets: readonly string[];
  /** Where the secrets came from (a flag, variable or file name, for messages), if any were given. */
  readonly secretsSource: string | undefined;
  /** The application's `encryptValues`, taken from the config file with its secrets. */
  readonly encryptValues: boolean;
  /** The MikroORM config file read, if any. */
  readonly configFile: string | undefined;
  /** The configuration object that file exported (for `follow`, which starts the ORM itself). */
  readonly ormConfig: Readonly<Record<string, unknown>> | undefined;
  /** Warnings to show (for example a config file that could not be loaded but was not needed). */
  readonly warnings: readonly string[];
}

/** The MikroORM config paths the MikroORM CLI tries, in its order (JavaScript first, then TypeScript). */
export const DEFAULT_CONFIG_PATHS = ['./dist/mikro-orm.config.js', './build/mikro-orm.config.js', './mikro-orm.config.js', './mikro-orm.config.mjs', './src/mikro-orm.config.ts', './mikro-orm.config.ts'];

/** What the tool takes from a MikroORM config. */
interface OrmSettings {
  clientUrl?: string;
  host?: string;
  port?: number;
  user?: string;
  password?: string;
  dbName?: string;
  servers?: string[];
  namespace?: string;
  logTable?: string;
  store?: Omit<MemcachedStoreOptions, 'servers' | 'namespace'>;
  secrets?: unknown;
  encryptValues?: boolean;
  raw?: Record<string, unknown>;
}

/**
 * Resolves the configuration, each setting from the first place that has it: the flags (`--db`, `--memcached`,
 * `--namespace`, `--log-table`, `--secrets-env`), the environment (`DATABASE_URL`, `MEMCACHED_SERVERS`,
 * `XA_CACHE_NAMESPACE`, `XA_CACHE_LOG_TABLE`, `XA_CACHE_SECRETS`, `MEMCACHED_USERNAME`/`MEMCACHED_PASSWORD`), the
 * MikroORM config file, then the defaults (`xa`, `xa_cache_log`, no secrets). Servers and namespace are checked as
 * the store checks them: from a flag or the environment a usage error naming it, from the file a config error.
 *
 * The config file is `--config`, else `MIKRO_ORM_CLI_CONFIG`, else the `mikro-orm.configPaths` of the nearest
 * package.json, else the first of {@link DEFAULT_CONFIG_PATHS} that exists. A file named by `--config` or the
 * environment must load; a file found by looking is skipped with a warning when it fails and flags or the
 * environment already give the database and memcached. `--no-config` skips it.
 */
export async function resolveCliConfig(parsed: ParsedCommand, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Promise<CliConfig> {
  const v = parsed.values;
  const warnings: string[] = [];
  const str = (name: string): string | undefined => (typeof v[name] === 'string' && (v[name] as string).trim() !== '' ? (v[name] as string).trim() : undefined);
  const dbGiven = str('db') ?? nonEmpty(env.DATABASE_URL);
  const memcachedGiven = str('memcached') ?? nonEmpty(env.MEMCACHED_SERVERS);

  let orm: OrmSettings = {};
  let configFile: string | undefined;
  if (!v['no-config']) {
    const explicit = str('config') ?? nonEmpty(env.MIKRO_ORM_CLI_CONFIG);
    if (explicit) {
      configFile = resolve(cwd, explicit);
      if (!existsSync(configFile)) throw CliError.config(`config file ${configFile} does not exist`, explicit === str('config') ? 'check --config' : 'check MIKRO_ORM_CLI_CONFIG');
      orm = await loadOrmConfig(configFile, str('context') ?? nonEmpty(env.MIKRO_ORM_CONTEXT_NAME));
    } else {
      const found = findConfigFile(cwd);
      if (found) {
        try {
          orm = await loadOrmConfig(found, str('context') ?? nonEmpty(env.MIKRO_ORM_CONTEXT_NAME));
          configFile = found;
        } catch (error) {
          if (!(dbGiven && (memcachedGiven || parsed.command === 'capture'))) throw error;
          warnings.push(`skipped ${found}: ${error instanceof CliError ? error.message : describe(error)}`);
        }
      }
    }
  }

  const memcachedList = (memcachedGiven ? memcachedGiven.split(',').map((s) => s.trim()).filter(Boolean) : orm.servers) ?? [];
  // `capture` only talks to PostgreSQL: it is run where memcached may not be reachable (a migration job).
  const needsMemcached = parsed.command !== 'capture';
  if (needsMemcached && memcachedList.length === 0) throw CliError.noMemcached();
  const namespace = str('namespace') ?? nonEmpty(env.XA_CACHE_NAMESPACE) ?? orm.namespace ?? 'xa';
  if (memcachedList.length > 0) {
    checkStoreSettings(memcachedList, namespace, {
      servers: str('memcached') ? '--memcached' : memcachedGiven ? 'MEMCACHED_SERVERS' : `the servers of ${configFile}`,
      namespace: str('namespace') ? '--namespace' : nonEmpty(env.XA_CACHE_NAMESPACE) ? 'XA_CACHE_NAMESPACE' : `the namespace of ${configFile}`,
      command: parsed.command,
    });
  }
  let pg: PoolConfig;
  let dbLabel: string;
  if (dbGiven) {
    pg = { connectionString: dbGiven };
    dbLabel = urlLabel(dbGiven);
  } else if (orm.clientUrl) {
    pg = { connectionString: orm.clientUrl, password: orm.password };
    dbLabel = urlLabel(orm.clientUrl);
  } else if (orm.dbName) {
    pg = { host: orm.host ?? 'localhost', port: orm.port ?? 5432, user: orm.user ?? 'postgres', password: orm.password, database: orm.dbName };
    dbLabel = `${pg.host}:${pg.port}/${orm.dbName}`;
  } else throw CliError.noDatabase();

  return {
    pg,
    dbLabel,
    memcached: memcachedList,
    namespace,
    logTable: str('log-table') ?? nonEmpty(env.XA_CACHE_LOG_TABLE) ?? orm.logTable ?? 'xa_cache_log',
    store: saslFromEnvironment(orm.store ?? {}, env),
    ...resolveSecrets(str('secrets-env'), env, orm, configFile),
    configFile,
    ormConfig: orm.raw,
    warnings,
  };
}

/**
 * Checks the servers and the namespace as the store will, before anything connects: a value given on the command
 * line or in the environment is a usage error naming that flag or variable, one from the config file a
 * configuration error.
 */
function checkStoreSettings(servers: readonly string[], namespace: string, source: { servers: string; namespace: string; command: string }): void {
  try {
    resolveStoreOptions({ servers, namespace });
  } catch (error) {
    if (!(error instanceof StoreConfigError)) throw error;
    const from = error.option === 'namespace' ? source.namespace : source.servers;
    const message = `${from}: ${error.message}`;
    throw from.startsWith('the ') ? CliError.config(message) : CliError.usage(message, source.command);
  }
}

/**
 * SASL credentials as the application takes them: from the store options, or else from `MEMCACHED_USERNAME` /
 * `MEMCACHED_PASSWORD` (see the adapter), so the tool authenticates wherever the application does.
 */
function saslFromEnvironment(store: NonNullable<OrmSettings['store']>, env: NodeJS.ProcessEnv): NonNullable<OrmSettings['store']> {
  if (store.username !== undefined || store.password !== undefined) return store;
  const { MEMCACHED_USERNAME: username, MEMCACHED_PASSWORD: password } = env;
  return username !== undefined && password !== undefined ? { ...store, username, password } : store;
}

/**
 * The application's secrets, from the first place that has them: the variable named by `--secrets-env`, then
 * `XA_CACHE_SECRETS` (both comma-separated, newest first), then the config file's `secrets`. Without them the tool
 * cannot tell the application's authenticated entries from planted ones and shows them as foreign.
 */
function resolveSecrets(secretsEnv: string | undefined, env: NodeJS.ProcessEnv, orm: OrmSettings, configFile: string | undefined): Pick<CliConfig, 'secrets' | 'secretsSource' | 'encryptValues'> {
  const split = (text: string): string[] => text.split(',').map((s) => s.trim()).filter(Boolean);
  let secrets: unknown;
  let source: string | undefined;
  if (secretsEnv !== undefined) {
    source = `${secretsEnv} (named by --secrets-env)`;
    const text = nonEmpty(env[secretsEnv]);
    if (text === undefined) throw CliError.config(`the environment variable ${secretsEnv}, named by --secrets-env, is not set`, 'set it to the secrets, comma-separated, newest first');
    secrets = split(text);
  } else if (nonEmpty(env.XA_CACHE_SECRETS) !== undefined) {
    source = 'XA_CACHE_SECRETS';
    secrets = split(env.XA_CACHE_SECRETS as string);
  } else if (orm.secrets !== undefined) {
    source = `the secrets of ${configFile}`;
    secrets = orm.secrets;
  }
  if (source === undefined) return { secrets: [], secretsSource: undefined, encryptValues: false };
  // The message says what is wrong with the list, never what is in it.
  const problem = secretsProblem(secrets);
  if (problem) throw CliError.config(`${source} must hold ${problem}`);
  return { secrets: secrets as string[], secretsSource: source, encryptValues: orm.encryptValues === true };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value !== undefined && value.trim() !== '' ? value.trim() : undefined;
}

function urlLabel(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname || 'localhost'}:${u.port || '5432'}${u.pathname || ''}`;
  } catch {
    throw CliError.config(`the database URL is not a URL (expected postgres://user:password@host:5432/db)`);
  }
}

/** The config file the MikroORM CLI would use from `cwd`, if any. */
export function findConfigFile(cwd: string): string | undefined {
  const candidates: string[] = [];
  const pkgPath = resolve(cwd, 'package.json');
  if (existsSync(pkgPath)) {
    try {
      const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { 'mikro-orm'?: { configPaths?: unknown } };
      const paths = pkg['mikro-orm']?.configPaths;
      if (Array.isArray(paths)) candidates.push(...paths.filter((p): p is string => typeof p === 'string'));
    } catch {
      // an unreadable package.json names no config
    }
  }
  candidates.push(...DEFAULT_CONFIG_PATHS);
  return candidates.map((p) => resolve(cwd, p)).find((p) => existsSync(p));
}

/** Imports a MikroORM config module and takes the database and cache settings from it. */
async function loadOrmConfig(file: string, contextName: string | undefined): Promise<OrmSettings> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (error) {
    throw CliError.config(`could not load the MikroORM config ${file}: ${describe(error)}`, file.endsWith('.ts') ? 'point --config at the compiled .js config, or give --db and --memcached' : undefined);
  }
  let config: unknown = mod.default ?? mod.config ?? mod;
  if (typeof config === 'function') config = await (config as () => unknown)();
  config = await config;
  if (Array.isArray(config)) {
    const name = contextName ?? 'default';
    const picked = config.find((c: { contextName?: string }) => (c?.contextName ?? 'default') === name);
    if (!picked) throw CliError.config(`the MikroORM config ${file} has no context "${name}"`, 'choose one with --context');
    config = typeof picked === 'function' ? await (picked as () => unknown)() : picked;
  }
  if (config === null || typeof config !== 'object') throw CliError.config(`the MikroORM config ${file} does not export a configuration object`);
  const c = config as Record<string, unknown>;
  const cache = (c.resultCache as { options?: Record<string, unknown> } | undefined)?.options ?? {};
  let password = c.password;
  if (typeof password === 'function') password = await (password as () => unknown)();
  if (password !== null && typeof password === 'object') password = (password as { password?: unknown }).password;
  return {
    clientUrl: typeof c.clientUrl === 'string' ? c.clientUrl : undefined,
    host: typeof c.host === 'string' ? c.host : undefined,
    port: typeof c.port === 'number' ? c.port : undefined,
    user: typeof c.user === 'string' ? c.user : undefined,
    password: typeof password === 'string' ? password : undefined,
    dbName: typeof c.dbName === 'string' ? c.dbName : undefined,
    servers: Array.isArray(cache.servers) ? (cache.servers as string[]) : undefined,
    namespace: typeof cache.namespace === 'string' ? cache.namespace : undefined,
    logTable: typeof cache.logTable === 'string' ? cache.logTable : undefined,
    store: typeof cache.store === 'object' && cache.store !== null ? (cache.store as OrmSettings['store']) : undefined,
    secrets: cache.secrets,
    encryptValues: cache.encryptValues === true,
    raw: c,
  };
}
