import type { IMigrationGenerator, MikroORM, MigrationsOptions, NamingStrategy } from '@mikro-orm/core';
import { captureTargets, type WriteCaptureOptions } from './write-capture-setup.js';
import { XaConfigError } from './xa-errors.js';
import type { XaPostgreSqlDriver } from './xa-driver.js';

/** The statements of the cache's migration: what `up` creates and `down` removes. */
export interface XaCacheMigrationSql {
  readonly up: string[];
  readonly down: string[];
}

/**
 * The library's database objects as migration statements: the transaction log table, the change table, the capture
 * function, and the capture triggers on every table of the ORM's metadata (pivot tables included) and on the
 * partitions that exist now. Unlike `writeCaptureDdl`, tables that do not exist yet are included: a migration
 * runs after the migrations that create them, often in the same transaction. Every statement is idempotent, so
 * generating it again after adding entities and running it re-installs all triggers.
 */
export async function xaCacheMigrationSql(orm: MikroORM, options: WriteCaptureOptions = {}): Promise<XaCacheMigrationSql> {
  const driver = orm.em.getDriver() as unknown as Partial<XaPostgreSqlDriver>;
  if (!driver.xaConnection) throw XaConfigError.driverMissing();
  const { xa } = driver.xaConnection.cache;
  const targets = await captureTargets(orm, options);
  return {
    up: [...xa.log.ddl(), ...xa.capture.baseDdl(), ...targets.flatMap((t) => xa.capture.tableDdl(t))],
    down: [
      ...targets.flatMap((t) => xa.capture.dropTableDdl(t)),
      `DROP FUNCTION IF EXISTS ${xa.capture.functionName}()`,
      `DROP TABLE IF EXISTS ${xa.capture.table}`,
      `DROP TABLE IF EXISTS ${xa.log.table}`,
    ],
  };
}

/**
 * Writes a migration file with {@link xaCacheMigrationSql}, by MikroORM's own generator and into the configured
 * migrations folder (`migrations.path`, or `pathTs` when emitting TypeScript), like `migration:create` does. Needs
 * `@mikro-orm/migrations`. Returns the file's name and code.
 */
export async function createXaCacheMigration(orm: MikroORM, options: WriteCaptureOptions & { readonly name?: string; readonly path?: string } = {}): Promise<{ fileName: string; code: string }> {
  const sql = await xaCacheMigrationSql(orm, options);
  const migrations = orm.config.get('migrations') as MigrationsOptions;
  const generator = await migrationGenerator(orm, migrations);
  const [code, fileName] = await generator.generate(sql, options.path, options.name ?? 'xa_cache');
  return { fileName, code };
}

type GeneratorClass = new (driver: unknown, namingStrategy: NamingStrategy, options: MigrationsOptions) => IMigrationGenerator;

async function migrationGenerator(orm: MikroORM, migrations: MigrationsOptions): Promise<IMigrationGenerator> {
  let Generator = migrations.generator as unknown as GeneratorClass | undefined;
  if (!Generator) {
    // An optional peer: only applications that generate migrations have it.
    const module = (await import('@mikro-orm/migrations')) as unknown as Record<string, GeneratorClass>;
    Generator = migrations.emit === 'js' || migrations.emit === 'cjs' ? module.JSMigrationGenerator : module.TSMigrationGenerator;
  }
  return new (Generator as GeneratorClass)(orm.em.getDriver(), orm.config.getNamingStrategy(), migrations);
}
