import { connect } from 'node:net';

/** What memcached's own `stats` says of one server (server-wide, not per namespace). */
export interface MemcachedServerStats {
  readonly server: string;
  readonly version?: string;
  readonly uptimeSeconds?: number;
  readonly items?: number;
  readonly bytes?: number;
  readonly limitBytes?: number;
  readonly evictions?: number;
  readonly getHits?: number;
  readonly getMisses?: number;
  readonly connections?: number;
  /** Why the stats could not be read (a server with SASL refuses the text protocol). */
  readonly error?: string;
}

/** Sends `stats` in memcached's text protocol to `host:port` and parses the answer. */
export function memcachedStats(server: string, timeoutMs: number): Promise<MemcachedServerStats> {
  const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(server);
  if (!match) return Promise.resolve({ server, error: 'not host:port' });
  return new Promise((resolve) => {
    const socket = connect({ host: match[1] as string, port: Number(match[2]) });
    let data = '';
    const done = (result: MemcachedServerStats): void => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => done({ server, error: `no answer within ${timeoutMs} ms` }));
    socket.on('error', (error) => done({ server, error: error.message }));
    socket.on('connect', () => socket.write('stats\r\n'));
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      if (data.startsWith('ERROR') || data.startsWith('CLIENT_ERROR')) return done({ server, error: 'stats refused (SASL-only server?)' });
      if (!data.endsWith('END\r\n')) return;
      const stat = new Map<string, string>();
      for (const line of data.split('\r\n')) {
        const [tag, name, value] = line.split(' ');
        if (tag === 'STAT' && name !== undefined && value !== undefined) stat.set(name, value);
      }
      const num = (name: string): number | undefined => (stat.has(name) ? Number(stat.get(name)) : undefined);
      done({
        server,
        version: stat.get('version'),
        uptimeSeconds: num('uptime'),
        items: num('curr_items'),
        bytes: num('bytes'),
        limitBytes: num('limit_maxbytes'),
        evictions: num('evictions'),
        getHits: num('get_hits'),
        getMisses: num('get_misses'),
        connections: num('curr_connections'),
      });
    });
  });
}
