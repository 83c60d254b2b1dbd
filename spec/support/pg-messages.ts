import pg from 'pg';

/** The texts of the messages recorded by {@link recordMessages}, and how to stop recording. */
export interface RecordedMessages {
  readonly sent: string[];
  /** Puts `pg.Client.prototype.query` back. */
  stop(): void;
}

/**
 * Records the text of every message `of` (or, without it, every client) sends, at `pg.Client.prototype.query`, where
 * instrumentation sees it: what went on the wire, after any patch of the client's own `query`.
 */
export function recordMessages(of?: pg.Client): RecordedMessages {
  const sent: string[] = [];
  const query = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    if (of === undefined || this === of) sent.push(typeof args[0] === 'string' ? args[0] : String((args[0] as { text?: string } | undefined)?.text ?? 'submittable'));
    return (query as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof query;
  return { sent, stop: () => void (pg.Client.prototype.query = query) };
}
