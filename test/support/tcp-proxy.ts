import net from 'node:net';

/**
 * A TCP proxy on a free port: each connection made to it is joined to `target` as it is at that
 * moment. Moving `target` leaves the connections already made where they are, as a DNS name
 * moved to another host does (a managed Redis's endpoint after a failover).
 */
export class TcpProxy {
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  private constructor(
    public target: { host: string; port: number },
    private readonly server: net.Server,
  ) {}

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const server = net.createServer();
    const proxy = new TcpProxy(target, server);
    server.on('connection', (client) => proxy.join(client));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy.port = (server.address() as net.AddressInfo).port;
    return proxy;
  }

  private join(client: net.Socket): void {
    const upstream = net.connect(this.target.port, this.target.host);
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      this.sockets.add(a);
      a.on('error', () => b.destroy());
      a.on('close', () => {
        this.sockets.delete(a);
        b.destroy();
      });
      a.pipe(b);
    }
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
