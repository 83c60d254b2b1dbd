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
  --secrets-env NAME     read the application's secrets (cache option secrets) from the environment variable
                         NAME, comma-separated, newest first. Default: XA_CACHE_SECRETS, else the config file's
                         secrets. Without them, the application's authenticated entries show as foreign.
                         Secret values are never printed.
  --connect-timeout DUR  how long to wait for PostgreSQL and memcached (default 5s, at most 24 days)
  SASL credentials come from MEMCACHED_USERNAME and MEMCACHED_PASSWORD, else the config's store options.
  --json                 machine-readable output on stdout
  -h, --help             this help
  Progress of long work (sweep, inspect --scan-locks, follow catching up) is one line on stderr, rewritten in
  place and erased when done: XA_CACHE_PROGRESS=auto (default: when stderr is a terminal), always or never.
  --json and -q never draw it.`;

const EXIT_STATUS = `Exit status:
  0  done (inspect: nothing in doubt; sweep: everything resolved; invalidate: every key reached)
  1  inspect: transactions are in doubt; sweep: some were left unresolved
  2  bad command line
  3  configuration missing or unusable (no database / memcached given, config file failed, no log table,
     bad secrets, memcached refused the SASL credentials)
  4  PostgreSQL or a memcached server could not be reached
  5  any other failure`;

const DURATIONS = 'Durations: 500ms, 10s, 2m, 1h, or a number of milliseconds; --min-age=0 and --min-age 0 are alike.';

const TOP = `mikro-orm-xa-cache: the operator tool of the MikroORM transactional memcached cache

Usage: mikro-orm-xa-cache <command> [options]

Commands:
  inspect   list in-doubt transactions: age, database outcome, each key's state in memcached
  sweep     resolve in-doubt transactions now (the recovery sweeper), once or --watch
  stats     counters of a running application (--url), or a one-off probe of memcached and the log
  capture   print or apply the DDL of the database-side write capture (triggers on the tables)
  invalidate  evict rows or renew tables' regions now, for changes no database reports (a restore, …)
  follow    a sidecar that applies outside writers' changes (psql, other services) as they commit

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
  --limit N              show at most N transactions (default 100, at most 1000000)
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
number of places at once (the application's own sweeps included). Prints what it resolved; from the second
batch, a progress line on stderr (rows resolved of those found at the start; see XA_CACHE_PROGRESS below).

Options:
  --min-age DUR          only rows at least this old (default 10s)
  --batch-size N         rows per batch (default 500, at most 100000)
  --limit N              list at most N resolved transactions (default 1000, at most 1000000)
  --watch                sweep every --interval until Ctrl-C / SIGTERM
  --interval DUR         time between sweeps with --watch (default 30s, at least 100ms)
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
  --url URL              the application's metrics endpoint (http or https), e.g. http://127.0.0.1:9464/metrics
  --min-age DUR          probe: count log rows at least this old as in doubt (default 10s)

${CONNECTION}

${DURATIONS}

Exit status: 0 read, 4 the endpoint, PostgreSQL or a memcached server could not be reached, 2/3/5 as for every
command.`,
  capture: `Usage: mikro-orm-xa-cache capture [--apply] [--drop] [--schema NAME ...] [--table SCHEMA.TABLE ...] [options]

Prints the DDL of the database-side write capture, as one psql-ready transaction: the change table
(<log table>_changes), the capture function, and statement triggers on each table, so that every write
(raw SQL, other programs, cascades, COPY, TRUNCATE) is reported to the cache. With --apply, runs it in one
transaction instead, under the advisory lock installWriteCapture takes. Idempotent: run it again after adding
tables or partitions. With metadata at hand, installWriteCapture(orm) picks exactly the entities' tables;
this command picks them from the catalog:

  --schema NAME          every table and partitioned table of the schema, with each partition (tagged with
                         its root table), except the cache's own tables; repeatable (default: public)
  --table SCHEMA.TABLE   exactly this table (with its partitions, if partitioned); repeatable. Names as the
                         catalog spells them (case-sensitive, unquoted). Not together with --schema.
  --apply                run the DDL (one transaction) instead of printing it
  --drop                 the DDL that removes the triggers from the tables (the change table stays)

Needs PostgreSQL only: no memcached, and the log table need not exist yet. The capture objects are named after
--log-table. --json prints the tables and the statements.

${CONNECTION}

Exit status: 0 done, 3 a --table that does not exist, 4 PostgreSQL could not be reached, 2/5 as for every
command.`,
  invalidate: `Usage: mikro-orm-xa-cache invalidate (--table SCHEMA.TABLE [--id ID ...] | --key KEY ...) [options]

Invalidates cache entries now, for a change that no database the application uses can report: data restored
from a backup, a table filled by another database, a fix made while the capture was off. It is what the
application does for outside writes: values and leases are deleted, region generations renewed, and locks of
running transactions marked so their holders write nothing over it.

  --table SCHEMA.TABLE   alone: renews the table's regions (t: query results, rows: its rows,
                         coll: collections kept in it): everything cached from the table misses once
  --id ID                with --table: evicts the row key e:SCHEMA.TABLE:ID of each (repeatable), and still
                         renews the table's query and collection regions (results and collections holding the
                         row cannot be named). ID as the key prints it: 42, a uuid, or JSON for composite keys
  --key KEY              evicts a raw item key as inspect shows it (repeatable); r:REGION renews a region

Give the application's secrets (--secrets-env, XA_CACHE_SECRETS or the config) when it has them: without
them its entries read as foreign and are deleted outright, the locks of running transactions included (which
are otherwise only marked). --json prints the keys and regions and those not reached.

${CONNECTION}

Exit status: 0 every key reached, 4 a key's memcached server (or PostgreSQL) could not be reached (run it again),
2/3/5 as for every command.`,
  follow: `Usage: mikro-orm-xa-cache follow --config FILE [options]

Applies the changes the database-side capture records for writers that do not use the cache (psql, other
services, migrations, COPY): evicts the rows, collections and query results they touch, at once when their
transaction commits (NOTIFY) and every --interval in any case. Runs until Ctrl-C / SIGTERM.

Every application started with startXaCache competes for the same follower lock (an advisory lock held on a
connection of its own), so exactly one process follows at a time, sidecar or application; run this when the
applications should not (startXaCache(orm, { outsideChangesFollower: 'none' })) or to keep a follower up
between deploys. If it dies, PostgreSQL releases the lock and another process takes over within --interval.
It also runs the recovery sweeper once at start, like an application.

It starts the application's ORM from its MikroORM config (the entities name what a changed row invalidates),
so --config (or the lookup below) must find the compiled config wrapped with withXaCache; --db, --memcached,
--namespace and --log-table override the config's settings.

Options:
  --interval DUR         fallback poll, and how often the feed's health is checked (default 1s, at least 100ms)
  --max-lag DUR          the feed counts as down past this (default 30s; more than --interval): the same bound
                         applications use (outsideChangesMaxLagMs) to stop serving
  --schema NAME          schemas of wildcard-schema entities' tables (repeatable)
  -q, --quiet            print only changes of role and of health (the default); --json prints every check

Prints one line whenever its role (following / standing by) or the feed's health changes.

${CONNECTION}

${DURATIONS}

Exit status: 0 stopped by a signal, 3 no usable config, 4 PostgreSQL or memcached could not be reached,
5 any other failure, 2 as for every command.`,
};

/** The help of a command, or of the tool. */
export function helpText(command?: CommandName): string {
  return command ? COMMAND_HELP[command] : TOP;
}
