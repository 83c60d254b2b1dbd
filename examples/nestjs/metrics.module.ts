import { Controller, Get, Header, Injectable, Module, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { XaCacheRuntime, registerXaCacheMetrics, type XaCacheMetrics } from 'mikro-orm-xa-cache';

/** `GET /metrics`: the application's prom-client registry, the cache's metrics among its own. */
@Controller('metrics')
export class MetricsController {
  constructor(private readonly registry: Registry) {}

  @Get()
  @Header('Content-Type', Registry.PROMETHEUS_CONTENT_TYPE)
  scrape(): Promise<string> {
    return this.registry.metrics();
  }
}

/** Registers the cache's counters and latency histograms into the application's registry, for its lifetime. */
@Injectable()
export class XaCacheMetricsRegistration implements OnModuleInit, OnModuleDestroy {
  #metrics: XaCacheMetrics | undefined;

  constructor(
    private readonly runtime: XaCacheRuntime,
    private readonly registry: Registry,
  ) {}

  async onModuleInit(): Promise<void> {
    this.#metrics = await registerXaCacheMetrics(this.runtime, { registry: this.registry });
  }

  onModuleDestroy(): void {
    this.#metrics?.unregister();
  }
}

/**
 * The application's metrics: one prom-client registry per application (process metrics and the cache's), served
 * on `/metrics`. An application that already has a registry provides it here instead.
 */
@Module({
  controllers: [MetricsController],
  providers: [
    {
      provide: Registry,
      useFactory: () => {
        const registry = new Registry();
        collectDefaultMetrics({ register: registry });
        return registry;
      },
    },
    XaCacheMetricsRegistration,
  ],
})
export class MetricsModule {}
