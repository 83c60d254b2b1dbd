import { SqlSchemaGenerator, type CreateSchemaOptions, type UpdateSchemaOptions, type DatabaseSchema } from '@mikro-orm/postgresql';
import { installWriteCapture, verifyWriteCapture, type CaptureOrm, type WriteCaptureOptions } from './write-capture-setup.js';
import type { XaPostgreSqlDriver } from './xa-driver.js';

/**
 * MikroORM's schema generator (`orm.schema`, the CLI's `schema:*` commands), keeping the cache's database objects:
 *
 * - the log table and the change table are never dropped or diffed: `withXaCache` lists them in
 *   `schemaGenerator.skipTables`, and `schema:drop` only drops entity tables;
 * - the capture triggers are hidden from the diff (`XaSchemaHelper`), so `schema:update` and `migration:create`
 *   never drop them;
 * - but dropping a table drops its triggers, and a table created anew has none: after `create` (so also
 *   `refresh`, i.e. `schema:fresh`) and `update` executed their SQL, the log table and the write capture are
 *   installed again where missing. Only when the SQL was run here: `--dump` output and migrations need
 *   `xaCacheMigrationSql` (see docs/usage.md).
 */
export class XaSchemaGenerator extends SqlSchemaGenerator {
  override async create(options?: CreateSchemaOptions): Promise<void> {
    await super.create(options);
    await this.#restoreCapture(options?.schema);
  }

  override async update(options: UpdateSchemaOptions<DatabaseSchema> = {}): Promise<void> {
    await super.update(options);
    await this.#restoreCapture(options.schema);
  }

  /** Re-creates what a drop removed: the log table (after `dropDb`) and the triggers of tables that lack them. */
  async #restoreCapture(schema: string | undefined): Promise<void> {
    const driver = this.driver as unknown as XaPostgreSqlDriver;
    const view: CaptureOrm = {
      em: (this.em ?? driver.createEntityManager()) as unknown as CaptureOrm['em'],
      getMetadata: (() => this.metadata) as CaptureOrm['getMetadata'],
      isConnected: () => this.connection.isConnected(),
      connect: (async () => driver.connect()) as unknown as CaptureOrm['connect'],
    };
    const options: WriteCaptureOptions = schema ? { schemas: [schema] } : {};
    await driver.xaConnection.cache.xa.log.ensureTable(await driver.xaConnection.sqlRunner());
    if ((await verifyWriteCapture(view, options)).length > 0) await installWriteCapture(view, options);
  }
}
