import type { EntityMetadata } from '@mikro-orm/core';
import type { CacheStats } from '../protocol/cache-stats.js';
import type { ProtocolLogger } from '../protocol/protocol-options.js';
import type { SqlRunner } from '../protocol/sql-runner.js';
import { entityCacheOf } from './entity-marker.js';

/**
 * Which schema an unqualified table name means is PostgreSQL's decision, through `search_path` (the role's and
 * the database's defaults, the connection string, and any `SET search_path` the application sends). Cache keys
 * name a schema, so a key that says `public.item` must only ever hold rows of `public.item` (G14).
 *
 * The guard never guesses. Calls without an explicit schema (and calls in the default schema, which MikroORM may
 * send unqualified) use the cache only while both hold:
 * - at connect, the entity's table resolved to the default schema under the pool's `search_path`;
 * - no statement of this process changed `search_path` since (`SET [SESSION|LOCAL] search_path`, `SET SCHEMA`,
 *   `set_config('search_path', …)`, `ALTER ROLE|DATABASE … SET search_path`): after one, the schema a pooled
 *   connection resolves to is unknown, so those reads go to the database and are counted in
 *   `stats.searchPathBypasses`; the change is logged once. Calls with another explicit schema are unaffected.
 */
export class SearchPathGuard {
  readonly #defaultSchema: string;
  readonly #stats: CacheStats;
  readonly #logger: () => ProtocolLogger | undefined;
  /** Root tables of cached entities that an unqualified name does not resolve to the default schema for. */
  readonly #misresolved = new Map<string, string>();
  #changed = false;

  constructor(defaultSchema: string, stats: CacheStats, logger: () => ProtocolLogger | undefined) {
    this.#defaultSchema = defaultSchema;
    this.#stats = stats;
    this.#logger = logger;
  }

  /**
   * At connect (before the cache serves anything): resolves the unqualified name of every cached entity's root
   * table under the pool's `search_path`, in one statement. A table that does not exist yet resolves to
   * `current_schema()`, where an unqualified `CREATE TABLE` would put it.
   */
  async resolve(db: SqlRunner, metas: Iterable<EntityMetadata>, configSchema: string | undefined): Promise<void> {
    if (configSchema !== undefined && configSchema !== this.#defaultSchema) return; // every call is qualified
    const tables = new Set<string>();
    for (const meta of metas) {
      const root = meta.root ?? meta;
      if (!entityCacheOf(meta)) continue;
      if (root.schema === undefined || root.schema === '*' || root.schema === this.#defaultSchema) tables.add(root.tableName);
    }
    this.#misresolved.clear();
    if (tables.size === 0) return;
    const { rows } = await db.query(
      `SELECT t.name, coalesce(n.nspname, current_schema()) AS schema
         FROM unnest($1::text[]) AS t(name)
         LEFT JOIN pg_class c ON c.oid = to_regclass(quote_ident(t.name))
         LEFT JOIN pg_namespace n ON n.oid = c.relnamespace`,
      [[...tables]],
    );
    for (const { name, schema } of rows as Array<{ name: string; schema: string | null }>) {
      if (schema !== this.#defaultSchema) this.#misresolved.set(name, schema ?? '(none)');
    }
    if (this.#misresolved.size > 0) {
      const list = [...this.#misresolved].map(([table, schema]) => `${table} -> ${schema}`).join(', ');
      this.#logger()?.('warn', `cached tables resolve to another schema than defaultSchema "${this.#defaultSchema}" under the pool's search_path (${list}); they are not cached without an explicit schema — set defaultSchema or MikroORM's schema option`);
    }
  }

  /** Every statement the connection analyses passes here once: a change of `search_path` is remembered for good. */
  observe(sql: string): void {
    if (this.#changed || !CHANGES_SEARCH_PATH.test(sql)) return;
    this.#changed = true;
    this.#logger()?.('warn', 'a statement changed search_path; rows, collections and query results without an explicit schema are no longer cached by this process');
  }

  /** Whether a row or collection read of these entities under `schema` (the call's; undefined when none) may use the cache. */
  allows(schema: string | undefined, ...metas: EntityMetadata[]): boolean {
    if (schema !== undefined && schema !== this.#defaultSchema) return true;
    if (!this.#changed && !metas.some((meta) => this.#misresolved.has((meta.root ?? meta).tableName))) return true;
    this.#stats.searchPathBypasses++;
    return false;
  }

  /** Whether query results may use the cache: their keys cannot say which schema unqualified tables meant. */
  allowsResults(): boolean {
    if (!this.#changed && this.#misresolved.size === 0) return true;
    this.#stats.searchPathBypasses++;
    return false;
  }
}

/** Statements that change which schema unqualified names resolve to, for this session or for new ones. */
const CHANGES_SEARCH_PATH = /\bset\s+(?:session\s+|local\s+)?(?:search_path|schema)\b|set_config\s*\(\s*'search_path'/i;
