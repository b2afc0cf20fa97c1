/**
 * The testbed's forwarders (DIR/cluster.sock for the API, the dashboard's loopback port): each connection is passed,
 * bytes as they are, to the first manager that takes it, starting from the last that did, so the address works while
 * any manager lives (a standby passes requests to the leader).
 */
import fs from 'node:fs/promises';
import net from 'node:net';

/** Connects to the first of `targets` that accepts, starting from the last that did. */
function dialAny(targets: net.NetConnectOpts[], from: number): Promise<{ sock: net.Socket; at: number } | undefined> {
  return new Promise((resolve) => {
    const attempt = (k: number) => {
      if (k === targets.length) return resolve(undefined);
      const at = (from + k) % targets.length;
      const sock = net.connect({ ...targets[at]!, allowHalfOpen: true });
      sock.once('connect', () => {
        sock.removeAllListeners('error');
        resolve({ sock, at });
      });
      sock.once('error', () => attempt(k + 1));
    };
    attempt(0);
  });
}

/** Listens at `at` (a unix socket, mode 0660, or a loopback port) and passes each connection to one of `targets`. */
export async function forwardToAny(at: { path: string } | { port: number }, targets: net.NetConnectOpts[]): Promise<{ stop(): Promise<void> }> {
  let last = 0;
  const open = new Set<net.Socket>();
  // half-closes pass through: `docker exec` ends its input and still reads the output
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    open.add(client);
    client.once('close', () => open.delete(client));
    client.pause();
    client.on('error', () => client.destroy());
    void dialAny(targets, last).then((m) => {
      if (!m) return client.destroy();
      last = m.at;
      m.sock.on('error', () => client.destroy());
      client.on('close', () => m.sock.destroy());
      m.sock.pipe(client);
      client.pipe(m.sock);
      client.resume();
    });
  });
  if ('path' in at) await fs.rm(at.path, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if ('path' in at) server.listen(at.path, resolve);
    else server.listen(at.port, '127.0.0.1', resolve);
  });
  if ('path' in at) await fs.chmod(at.path, 0o660);
  return {
    stop: async () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const c of open) c.destroy();
      await closed;
      if ('path' in at) await fs.rm(at.path, { force: true });
    },
  };
}
