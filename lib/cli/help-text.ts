import type { CommandName } from './cli-args.js';

const CONNECTION = `Where to connect (each setting from the first place that has it: flag, environment, MikroORM config, default):
  --db URL               PostgreSQL, postgres://user:password@host:5432/db     (env DATABASE_URL)
  --memcached LIST       memcached servers, host:11211[,host:11211…]            (env MEMCACHED_SERVERS)
  --namespace NAME       the cache's key prefix (cache option namespace; default xa)   (env XA_CACHE_NAMESPACE)
  --log-table NAME       the transaction log table (cache option logTable; default xa_cache_log) (env XA_CACHE_LOG_TABLE)
  --config FILE          the MikroORM config (env MIKRO_ORM_CLI_CONFIG). Without it, the MikroORM CLI's lookup:
                         package.json "mikro-orm": { "configPaths": [...] }, then ./dist/mikro-orm.config.js,
                         ./build/mikro-orm.config.js, ./mikro-orm.config.js, ./mikro-orm.config.mjs,
                         ./src/mikro-orm.config.ts, ./mikro-orm.config.ts. The database comes from clientUrl (or
                         host/port/user/password/dbName), the rest from the withXaCache options (resultCache.options).
  --context NAME         which config of an exported array (env MIKRO_ORM_CONTEXT_NAME; default "default")
  --no-config            do not look for a config file
  --connect-timeout DUR  how long to wait for PostgreSQL and memcached (default 5s)
  --json                 machine-readable output on stdout
  -h, --help             this help`;

const EXIT_STATUS = `Exit status:
  0  done (inspect: nothing in doubt; sweep: everything resolved)
  1  inspect: transactions are in doubt; sweep: some were left unresolved
  2  bad command line
  3  configuration missing or unusable (no database / memcached given, config file failed, no log table)
  4  PostgreSQL or a memcached server could not be reached
  5  any other failure`;

const DURATIONS = 'Durations: 500ms, 10s, 2m, 1h, or a number of milliseconds.';

const TOP = `mikro-orm-xa-cache: the operator tool of the MikroORM transactional memcached cache

Usage: mikro-orm-xa-cache <command> [options]

Commands:
  inspect   list in-doubt transactions: age, database outcome, each key's state in memcached
  sweep     resolve in-doubt transactions now (the recovery sweeper), once or --watch
  stats     counters of a running application (--url), or a one-off probe of memcached and the log

Run mikro-orm-xa-cache <command> --help for its options.

${CONNECTION}

${EXIT_STATUS}`;

const COMMAND_HELP: Record<CommandName, string> = {
  inspect: `Usage: mikro-orm-xa-cache inspect [options]

Lists the transactions of the log older than --min-age, oldest first: a transaction is in doubt when it
committed (its log row exists) but its promote may not have finished, because its process died or memcached
was unreachable. For each: its id, age (database clock), what PostgreSQL says of it (committed, aborted,
in progress, unknown) and each of its keys' state in memcached (locked by this / other transactions, gone,
value, …). Younger rows are normal (promotes in flight, rows awaiting lazy deletion) and are only counted.

Options:
  --min-age DUR          only rows at least this old (default 10s, the sweeper's default)
  --limit N              show at most N transactions (default 100)
  --scan-locks           also list keys locked by transactions that never committed (killed before
                         COMMIT): they have no log row, so only memcached shows them. Walks every item
                         of each server (lru_crawler metadump); locks younger than --min-age are left out

${CONNECTION}

${DURATIONS}

Exit status: 0 nothing in doubt, 1 transactions in doubt (or, with --scan-locks, such locks), 4 nothing in doubt but a memcached server did not
answer (or PostgreSQL could not be reached), 2/3/5 as for every command.`,
  sweep: `Usage: mikro-orm-xa-cache sweep [options]

Runs the recovery sweeper: for each in-doubt transaction it removes the transaction from its locks, evicts its
items and renews its regions' generations, then deletes its log row. Safe to run at any time and from any
number of places at once (the application's own sweeps included). Prints what it resolved; progress of long
runs goes to stderr.

Options:
  --min-age DUR          only rows at least this old (default 10s)
  --batch-size N         rows per batch (default 500)
  --limit N              list at most N resolved transactions (default 1000)
  --watch                sweep every --interval until Ctrl-C / SIGTERM
  --interval DUR         time between sweeps with --watch (default 30s)
  -q, --quiet            only the summary line (with --watch: only sweeps that did something)

${CONNECTION}

${DURATIONS}

Exit status: 0 everything resolved, 1 some transactions left in doubt (keys on unreachable servers),
4 a memcached server did not answer, 2/3/5 as for every command. With --watch: 0 when stopped.`,
  stats: `Usage: mikro-orm-xa-cache stats [--url URL] [options]

With --url, reads a running application's counters from its metrics endpoint (serveMetrics(runtime, { port })
or any route answering await runtime.metrics()): hits, misses, puts, lock bypasses, lease waits, stale fills
refused, evictions, in-doubt counts, errors by kind, and the same per region.

Without --url, a one-off probe: each memcached server's reachability, round trip, items, memory and evictions
(memcached's own stats), and the in-doubt rows of the transaction log.

Options:
  --url URL              the application's metrics endpoint, e.g. http://127.0.0.1:9464/metrics
  --min-age DUR          probe: count log rows at least this old as in doubt (default 10s)

${CONNECTION}

${DURATIONS}

Exit status: 0 read, 4 the endpoint, PostgreSQL or a memcached server could not be reached, 2/3/5 as for every
command.`,
};

/** The help of a command, or of the tool. */
export function helpText(command?: CommandName): string {
  return command ? COMMAND_HELP[command] : TOP;
}
