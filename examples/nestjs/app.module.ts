import { Module, type DynamicModule } from '@nestjs/common';
import { MikroOrmModule } from '@mikro-orm/nestjs';
import { BooksController } from './books.controller.js';
import { BooksService } from './books.service.js';
import { MetricsModule } from './metrics.module.js';
import { exampleOrmOptions } from './orm-config.js';
import type { ExampleSettings } from './settings.js';
import { XaCacheModule } from './xa-cache.module.js';

/**
 * The example application: MikroORM through @mikro-orm/nestjs with the cache's configuration, the cache's runtime
 * in the application's lifecycle, the books API, and `/metrics`.
 */
@Module({})
export class AppModule {
  static forRoot(settings: ExampleSettings): DynamicModule {
    return {
      module: AppModule,
      imports: [
        MikroOrmModule.forRoot(exampleOrmOptions(settings)),
        XaCacheModule.forRoot({ sweepIntervalMs: settings.sweepIntervalMs ?? 30_000 }),
        MetricsModule,
      ],
      controllers: [BooksController],
      providers: [BooksService],
    };
  }
}
