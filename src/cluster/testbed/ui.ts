/**
 * The testbed's dashboard: each manager serves it on a loopback port of its own (--ui-listen); the testbed's
 * port (testbed.json's "ui") passes each connection to the first manager that takes it, as DIR/cluster.sock does
 * for the API, so the page works while any manager lives (a standby passes requests to the leader). Two browser
 * tokens are made in etcd: an admin one (`ui.token`) and a read-only one (`ui.readToken`, for tests).
 */
import net from 'node:net';
import { ClusterStore } from '../store.js';
import { issueUiToken } from '../ui-tokens.js';
import { freePorts } from '../proc.js';
import type { StartedComponent, TestbedComponent, UiInfo } from './testbed.js';


/** Connects to the first of `ports` that accepts, starting from the last that did. */
function dialAny(ports: number[], from: number): Promise<{ sock: net.Socket; at: number } | undefined> {
  return new Promise((resolve) => {
    const attempt = (k: number) => {
      if (k === ports.length) return resolve(undefined);
      const at = (from + k) % ports.length;
      const sock = net.connect({ host: '127.0.0.1', port: ports[at]!, allowHalfOpen: true });
      sock.once('connect', () => {
        sock.removeAllListeners('error');
        resolve({ sock, at });
      });
      sock.once('error', () => attempt(k + 1));
    };
    attempt(0);
  });
}

/** The component that makes the tokens and the forwarder, once the managers (whose --ui-listen are `ports`) run. */
export function uiComponent(cluster: string, ports: number[]): TestbedComponent {
  return async (tb): Promise<StartedComponent> => {
    const store = ClusterStore.connect(tb.etcdEndpoints, cluster);
    let token: string;
    let readToken: string;
    try {
      token = (await issueUiToken(store, 'admin')).token;
      readToken = (await issueUiToken(store, 'read')).token;
    } finally {
      store.close();
    }
    let last = 0;
    const open = new Set<net.Socket>();
    const server = net.createServer({ allowHalfOpen: true }, (client) => {
      open.add(client);
      client.once('close', () => open.delete(client));
      client.pause();
      client.on('error', () => client.destroy());
      void dialAny(ports, last).then((m) => {
        if (!m) return client.destroy();
        last = m.at;
        m.sock.on('error', () => client.destroy());
        client.on('close', () => m.sock.destroy());
        m.sock.pipe(client);
        client.pipe(m.sock);
        client.resume();
      });
    });
    const [port] = await freePorts(1);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    const ui: UiInfo = { url: `http://127.0.0.1:${port}/ui/`, token, readToken };
    tb.log.info({ url: ui.url }, 'dashboard forwarder listening');
    return {
      ui,
      stop: async () => {
        const closed = new Promise<void>((r) => server.close(() => r()));
        for (const c of open) c.destroy();
        await closed;
      },
    };
  };
}
