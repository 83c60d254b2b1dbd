/**
 * The MikroORM integration: the result-cache adapter, the XA driver and connection (row and collection cache,
 * write tracking, the two phases around COMMIT), the entity manager, the flush subscriber, the entity marker and
 * the one-call config helper. Imports `../protocol` and `../store`; nothing imports it but the package barrel.
 *
 * @packageDocumentation
 */
export { withXaCache } from './with-xa-cache.js';
export { XaCacheAdapter, type XaCacheOptions } from './xa-cache-adapter.js';
export { XaPostgreSqlDriver } from './xa-driver.js';
export { XaPostgreSqlConnection } from './xa-connection.js';
export { XaEntityManager } from './xa-entity-manager.js';
export { XaSubscriber } from './xa-subscriber.js';
export { Cacheable, entityCacheOf, type EntityCacheSettings, type ResolvedEntityCache } from './entity-marker.js';
export { XaConfigError, ReadOnlyEntityError, CommitOutcomeError, type CommitOutcome } from './xa-errors.js';
export { statementTables, type StatementTables } from './sql-tables.js';
export { invalidate, invalidateTable, invalidateAll } from './invalidation.js';
export { installWriteCapture, verifyWriteCapture, writeCaptureDdl, captureTargets, type WriteCaptureOptions, type CaptureOrm } from './write-capture-setup.js';
export { xaCacheMigrationSql, createXaCacheMigration, type XaCacheMigrationSql } from './xa-cache-migration.js';
export { XaSchemaGenerator } from './xa-schema-generator.js';
export { XaPostgreSqlPlatform, XaSchemaHelper } from './xa-platform.js';
export { libraryTables } from './with-xa-cache.js';
export { unbackedUniqueKeys, verifyUniqueKeys, type UnbackedUniqueKey } from './unique-key-catalog.js';
