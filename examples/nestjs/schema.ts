import { MikroORM } from '@mikro-orm/postgresql';
import { installWriteCapture } from 'mikro-orm-xa-cache';
import { exampleOrmOptions } from './orm-config.js';
import type { ExampleSettings } from './settings.js';

/**
 * Creates the example's tables if missing and installs the cache's write capture on them: what a real
 * application does in a migration (`createXaCacheMigration`), done here in one call so the example runs on an
 * empty database. `startXaCache` refuses to start without the capture.
 */
export async function createExampleSchema(settings: ExampleSettings): Promise<void> {
  const orm = await MikroORM.init(exampleOrmOptions(settings));
  try {
    await orm.schema.update();
    await installWriteCapture(orm);
  } finally {
    await orm.close(true);
  }
}
