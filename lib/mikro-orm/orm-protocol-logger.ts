import type { Logger } from '@mikro-orm/core';
import type { ProtocolLogger } from '../protocol/protocol-options.js';

/** The MikroORM logger namespace of the cache: enable it with `debug: ['xa-cache']` (or `debug: true`). */
export const XA_CACHE_LOG_NAMESPACE = 'xa-cache';

/**
 * A {@link ProtocolLogger} that writes through MikroORM's logger, so the cache logs where the ORM logs.
 *
 * `debug` and `info` lines go to the `xa-cache` namespace and show only when it is enabled. Warnings and errors
 * go to `xa-cache` when it is enabled, else to MikroORM's `info` namespace (where the ORM puts its own warnings),
 * so turning on `debug: ['info']` is enough to see that something needs attention.
 */
export function ormProtocolLogger(logger: Logger): ProtocolLogger {
  return (level, message, data) => {
    const text = data === undefined ? message : `${message} ${safeJson(data)}`;
    if (level === 'debug' || level === 'info') return logger.log(XA_CACHE_LOG_NAMESPACE, text);
    const namespace = logger.isEnabled(XA_CACHE_LOG_NAMESPACE as never) ? XA_CACHE_LOG_NAMESPACE : 'info';
    if (level === 'warn') logger.warn(namespace, `mikro-orm-xa-cache: ${text}`);
    else logger.error(namespace, `mikro-orm-xa-cache: ${text}`);
  };
}

function safeJson(data: Record<string, unknown>): string {
  try {
    return JSON.stringify(data, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v instanceof Error ? v.message : v));
  } catch {
    return String(data);
  }
}
