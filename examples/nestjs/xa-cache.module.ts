import { Injectable, Module, type BeforeApplicationShutdown, type DynamicModule } from '@nestjs/common';
import { MikroORM } from '@mikro-orm/core';
import { XaCacheRuntime, startXaCache, type StartXaCacheOptions } from 'mikro-orm-xa-cache';

/**
 * Stops the cache's runtime when the application shuts down. Nest runs every `beforeApplicationShutdown` hook
 * before any `onApplicationShutdown` hook, and @mikro-orm/nestjs closes the ORM in the latter: so the sweeps and
 * the outside-changes follower stop before the ORM's connections close, as `startXaCache` asks.
 */
@Injectable()
export class XaCacheShutdown implements BeforeApplicationShutdown {
  constructor(private readonly runtime: XaCacheRuntime) {}

  async beforeApplicationShutdown(): Promise<void> {
    await this.runtime.stop();
  }
}

/**
 * The cache's runtime in the application's lifecycle: `startXaCache` runs while the application initialises
 * (after the ORM, before the HTTP server listens): it checks memcached and the write capture, sweeps what
 * crashed processes left in doubt, and starts the periodic sweeps and the outside-changes follower. A failure
 * there fails the bootstrap. The runtime is injectable (`XaCacheRuntime`) for metrics and health checks.
 */
@Module({})
export class XaCacheModule {
  static forRoot(options: StartXaCacheOptions = {}): DynamicModule {
    return {
      module: XaCacheModule,
      global: true,
      providers: [{ provide: XaCacheRuntime, inject: [MikroORM], useFactory: (orm: MikroORM) => start(orm, options) }, XaCacheShutdown],
      exports: [XaCacheRuntime],
    };
  }
}

/**
 * `startXaCache`, closing the ORM when it fails: a failed bootstrap runs no shutdown hooks, and the ORM's open
 * connections would keep the process alive after it reported the error.
 */
async function start(orm: MikroORM, options: StartXaCacheOptions): Promise<XaCacheRuntime> {
  try {
    return await startXaCache(orm, options);
  } catch (error) {
    await orm.close(true);
    throw error;
  }
}
