import { NestFactory } from '@nestjs/core';
import type { INestApplication, LogLevel } from '@nestjs/common';
import { AppModule } from './app.module.js';
import type { ExampleSettings } from './settings.js';

/**
 * Creates the example application (not yet listening). Initialisation failures reject (instead of Nest's
 * default `process.abort()`), and SIGTERM / SIGINT close the application: the cache's runtime stops, then the ORM.
 */
export async function createExampleApp(settings: ExampleSettings, logger: false | LogLevel[] = ['log', 'warn', 'error']): Promise<INestApplication> {
  const app = await NestFactory.create(AppModule.forRoot(settings), { abortOnError: false, logger });
  app.enableShutdownHooks();
  return app;
}
