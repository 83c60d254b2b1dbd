import { connect } from 'node:net';

/** Sends one text-protocol command and collects the answer up to (and without) the terminating line. */
async function textCommand(address: string, command: string, terminator: string): Promise<Buffer> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), host);
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const all = Buffer.concat(chunks);
      if (all.subarray(-terminator.length).toString('latin1') === terminator) {
        socket.end();
        resolve(all.subarray(0, all.length - terminator.length));
      }
    });
    socket.on('error', reject);
    socket.write(command);
  });
}

/**
 * Every item a memcached server holds, as raw bytes by key: what anyone who reaches the port can read. Uses
 * `lru_crawler metadump all` to list the keys, then plain text-protocol `get`s.
 */
export async function dumpMemcached(address: string, prefix = ''): Promise<Map<string, Buffer>> {
  const listing = (await textCommand(address, 'lru_crawler metadump all\r\n', 'END\r\n')).toString('latin1');
  const keys = listing
    .split('\n')
    .map((line) => /^key=(\S+)/.exec(line)?.[1])
    .filter((k): k is string => k !== undefined)
    .map((k) => decodeURIComponent(k))
    .filter((k) => k.startsWith(prefix));
  const items = new Map<string, Buffer>();
  for (const key of keys) {
    const raw = await textCommand(address, `get ${key}\r\n`, 'END\r\n');
    const headerEnd = raw.indexOf('\r\n');
    if (headerEnd < 0) continue; // expired or evicted since the listing
    items.set(key, raw.subarray(headerEnd + 2, raw.length - 2));
  }
  return items;
}
