import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/** A graceful stop for an HTTP(S) server: requests in flight may finish (up to a timeout), then every connection goes. */
export class ServerDrain {
  private readonly sockets = new Set<Socket>();
  private inflight = 0;
  private idle?: () => void;
  closing = false;

  /** Listen on `port` at `host` with the server's connections tracked; the bound address. */
  async listen(server: Server, host: string | undefined, port: number): Promise<{ host: string; port: number }> {
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const a = server.address();
    return typeof a === 'object' && a ? { host: a.address, port: a.port } : { host: host ?? '', port };
  }

  /** A request starts; call the returned function when it is done. */
  begin(): () => void {
    this.inflight++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      if (--this.inflight === 0) this.idle?.();
    };
  }

  async close(server: Server, timeoutMs: number): Promise<void> {
    this.closing = true;
    const closed = new Promise<void>((r) => server.close(() => r()));
    server.closeIdleConnections();
    if (this.inflight > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, timeoutMs);
        this.idle = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    server.closeAllConnections();
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}
