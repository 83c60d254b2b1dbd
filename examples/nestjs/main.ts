import { createExampleApp } from './create-app.js';
import { createExampleSchema } from './schema.js';
import { settingsFromEnv } from './settings.js';

/**
 * `node dist/examples/nestjs/main.js [--create-schema]`, with `DATABASE_URL`, `MEMCACHED_SERVERS` and `PORT`
 * (default 3000) set. `--create-schema` creates the tables and the write capture first.
 */
async function main(): Promise<void> {
  const settings = settingsFromEnv();
  if (process.argv.includes('--create-schema')) await createExampleSchema(settings);
  const port = Number(process.env.PORT ?? 3000);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`examples/nestjs: PORT must be a port number, not ${process.env.PORT}`);
  const app = await createExampleApp(settings);
  await app.listen(port);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
