import type { Configuration, Dictionary, MikroORM } from '@mikro-orm/core';
import { PostgreSqlPlatform, PostgreSqlSchemaHelper, type AbstractSqlConnection, type SqlTriggerDef } from '@mikro-orm/postgresql';
import { WriteCapture } from '../protocol/write-capture.js';
import { XaSchemaGenerator } from './xa-schema-generator.js';

/** The log table the configuration names (the adapter's options), with the protocol's default. */
export function configuredLogTable(config: Configuration): string {
  const options = config.get('resultCache')?.options as { logTable?: unknown } | undefined;
  return typeof options?.logTable === 'string' ? options.logTable : 'xa_cache_log';
}

/**
 * MikroORM's schema helper, blind to the write-capture triggers: MikroORM 7 manages the triggers it finds on entity
 * tables, and would drop ours in every `schema:update` and write their drop into every generated migration, since
 * no entity declares them. Hiding them from introspection leaves them alone (they are the library's, installed by
 * `installWriteCapture`), while triggers the application declares are still compared as before.
 */
export class XaSchemaHelper extends PostgreSqlSchemaHelper {
  override async getAllTriggers(connection: AbstractSqlConnection, tablesBySchemas: Parameters<PostgreSqlSchemaHelper['getAllTriggers']>[1]): Promise<Dictionary<SqlTriggerDef[]>> {
    const all = await super.getAllTriggers(connection, tablesBySchemas);
    const capture = new WriteCapture(configuredLogTable(this.platform.getConfig()));
    const ours = new Set((['ins', 'upd', 'del', 'trunc'] as const).map((suffix) => capture.triggerName(suffix)));
    const kept: Dictionary<SqlTriggerDef[]> = {};
    for (const [table, triggers] of Object.entries(all)) kept[table] = triggers.filter((t) => !ours.has(t.name));
    return kept;
  }

  /** Likewise blind to the capture's `…_take()` function (its trigger function MikroORM already leaves alone). */
  override async getAllRoutines(connection: AbstractSqlConnection, schemas?: string[]): ReturnType<PostgreSqlSchemaHelper['getAllRoutines']> {
    const all = await super.getAllRoutines(connection, schemas);
    const take = new WriteCapture(configuredLogTable(this.platform.getConfig())).takeFunctionName.split('.').pop();
    return all.filter((routine) => routine.name !== take);
  }
}

/**
 * The PostgreSQL platform of {@link XaPostgreSqlDriver}: its schema helper ignores the capture triggers, and its
 * schema generator re-installs them after it creates or alters tables (see {@link XaSchemaGenerator}).
 */
export class XaPostgreSqlPlatform extends PostgreSqlPlatform {
  protected override readonly schemaHelper: PostgreSqlSchemaHelper = new XaSchemaHelper(this);

  override lookupExtensions(orm: MikroORM): void {
    super.lookupExtensions(orm);
    // Replaces the registration super made: `orm.schema`, the CLI's schema commands and the migrator all get it.
    orm.config.registerExtension('@mikro-orm/schema-generator', () => new XaSchemaGenerator(orm.em as never));
  }
}
