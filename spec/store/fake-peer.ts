import { createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP peer that pretends to be memcached but misbehaves as told: it lets connection-lifecycle tests provoke
 * what a real server does only by accident (closing mid-request, closing an old connection late).
 */
export class FakePeer {
  readonly sockets: Socket[] = [];

  private constructor(
    readonly server: Server,
    readonly address: string,
  ) {}

  /** Listens on a free port; `onConnection` gets each accepted socket and its index. */
  static async start(onConnection: (socket: Socket, index: number, peer: FakePeer) => void, allowHalfOpen = false): Promise<FakePeer> {
    let peer: FakePeer | undefined;
    const server = createServer({ allowHalfOpen }, (socket) => {
      if (!peer) return;
      peer.sockets.push(socket);
      socket.on('error', () => undefined);
      onConnection(socket, peer.sockets.length - 1, peer);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (!address || typeof address !== 'object') throw new Error('fake peer has no port');
    peer = new FakePeer(server, `127.0.0.1:${address.port}`);
    return peer;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Resolves with the value, or with `'pending'` if it has not settled within `ms`. */
export async function settledWithin<T>(promise: Promise<T>, ms: number): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<'pending'>((resolve) => (timer = setTimeout(() => resolve('pending'), ms)));
  try {
    return await Promise.race([promise, pending]);
  } finally {
    clearTimeout(timer);
  }
}
