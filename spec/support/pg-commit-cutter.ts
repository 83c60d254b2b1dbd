import net from 'node:net';

/**
 * A TCP forwarder in front of PostgreSQL that can lose a connection at the worst moment of a commit: once armed,
 * the next simple-query `COMMIT` a client sends is forwarded, so the server commits, and the connection is cut
 * as soon as the server starts answering, so the client never hears that it did. This is "connection lost
 * during a COMMIT that committed", which `pg_terminate_backend` cannot aim at.
 *
 * It parses only the client's side of the v3 protocol (an untyped startup message, then typed messages); SSL is
 * not supported (the harness connects without it).
 */
export class PgCommitCutter {
  readonly #sockets = new Set<net.Socket>();
  #armed: (() => void) | undefined;
  /** Connections cut so far. */
  cuts = 0;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(host: string, port: number): Promise<PgCommitCutter> {
    let cutter: PgCommitCutter | undefined;
    const server = net.createServer((downstream) => (cutter ? cutter.#forward(downstream, host, port) : downstream.destroy()));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    cutter = new PgCommitCutter(server, (server.address() as net.AddressInfo).port);
    return cutter;
  }

  /** The connection URL of `url`'s database through this proxy. */
  urlFor(url: string): string {
    const u = new URL(url);
    u.host = `127.0.0.1:${this.port}`;
    return u.toString();
  }

  /** Cuts the connection of the next COMMIT after the server received it; resolves when it was cut. */
  cutNextCommit(): Promise<void> {
    return new Promise((resolve) => (this.#armed = resolve));
  }

  #forward(downstream: net.Socket, host: string, port: number): void {
    const upstream = net.connect(port, host);
    const pair = [downstream, upstream];
    for (const socket of pair) {
      this.#sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        this.#sockets.delete(socket);
        for (const other of pair) other.destroy();
      });
    }
    let pending = Buffer.alloc(0);
    let started = false;
    let cutOnAnswer: (() => void) | undefined;
    downstream.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        const header = started ? 5 : 4;
        if (pending.length < header) break;
        const length = started ? pending.readInt32BE(1) + 1 : pending.readInt32BE(0);
        if (pending.length < length) break;
        const message = pending.subarray(0, length);
        pending = pending.subarray(length);
        if (!started) started = true;
        else if (this.#armed && message[0] === 0x51 && /^commit\0?$/i.test(message.subarray(5).toString('utf8').trim())) {
          cutOnAnswer = this.#armed;
          this.#armed = undefined;
        }
        upstream.write(message);
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      if (cutOnAnswer) {
        const done = cutOnAnswer;
        cutOnAnswer = undefined;
        this.cuts++;
        for (const socket of pair) socket.destroy();
        done();
        return;
      }
      downstream.write(chunk);
    });
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
