import net from 'node:net';

/**
 * A TCP forwarder in front of one memcached: the process whose store points at it can be partitioned away from
 * the server (every connection dropped, new ones closed at once) while other processes still reach it directly.
 * The fault tests and the consistency checker use it for partitions.
 */
export class PartitionProxy {
  readonly #sockets = new Set<net.Socket>();
  #partitioned = false;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(target: string): Promise<PartitionProxy> {
    const [host, port] = target.split(':') as [string, string];
    let proxy: PartitionProxy | undefined;
    const server = net.createServer((downstream) => {
      const self = proxy;
      if (!self || self.#partitioned) return void downstream.destroy();
      const upstream = net.connect(Number(port), host);
      const pair = [downstream, upstream];
      for (const socket of pair) {
        self.#sockets.add(socket);
        socket.on('error', () => undefined);
        socket.on('close', () => {
          self.#sockets.delete(socket);
          for (const other of pair) other.destroy();
        });
      }
      downstream.pipe(upstream);
      upstream.pipe(downstream);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    proxy = new PartitionProxy(server, (server.address() as net.AddressInfo).port);
    return proxy;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Cuts this path to memcached: open connections drop, new ones are closed as soon as they are accepted. */
  partition(): void {
    this.#partitioned = true;
    for (const socket of this.#sockets) socket.destroy();
  }

  heal(): void {
    this.#partitioned = false;
  }

  async close(): Promise<void> {
    this.partition();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
