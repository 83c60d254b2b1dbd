import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Anything that renders metrics in Prometheus' text format, such as an {@link XaCacheRuntime}. */
export interface MetricsProvider {
  metrics(): Promise<string>;
}

/** Where {@link serveMetrics} listens. */
export interface MetricsServerOptions {
  /** Port; 0 picks a free one (read it from `address`). */
  readonly port: number;
  /** Default `127.0.0.1`: expose it wider deliberately. */
  readonly host?: string;
  /** Default `/metrics`. */
  readonly path?: string;
}

/** A running metrics endpoint. */
export interface MetricsServer {
  /** `http://host:port/path`, for `mikro-orm-xa-cache stats --url`. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves the metrics on a small HTTP endpoint for Prometheus to scrape, and for `mikro-orm-xa-cache stats --url`.
 * Applications that already run an HTTP server can instead answer their own route with `await runtime.metrics()`.
 */
export async function serveMetrics(provider: MetricsProvider, options: MetricsServerOptions): Promise<MetricsServer> {
  const path = options.path ?? '/metrics';
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== path) {
      res.writeHead(404).end();
      return;
    }
    provider.metrics().then(
      (text) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(text),
      (error: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${String(error)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => resolve());
  });
  server.unref();
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}${path}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
