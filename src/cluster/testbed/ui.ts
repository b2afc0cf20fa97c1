/**
 * The testbed's dashboard: each manager serves it on a loopback port of its own (--ui-listen); the testbed's
 * port (testbed.json's "ui") passes each connection to the first manager that takes it, as DIR/cluster.sock does
 * for the API, so the page works while any manager lives (a standby passes requests to the leader). Two browser
 * tokens are made in etcd: an admin one (`ui.token`) and a read-only one (`ui.readToken`, for tests).
 */
import { ClusterStore } from '../store.js';
import { issueUiToken } from '../ui-tokens.js';
import { freePorts } from '../../lib/ports.js';
import { forwardToAny } from './forwarder.js';
import type { StartedComponent, TestbedComponent, UiInfo } from './testbed.js';

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
    const [port] = await freePorts(1);
    const fwd = await forwardToAny({ port: port! }, ports.map((p) => ({ host: '127.0.0.1', port: p })));
    const ui: UiInfo = { url: `http://127.0.0.1:${port}/ui/`, token, readToken };
    tb.log.info({ url: ui.url }, 'dashboard forwarder listening');
    return {
      ui,
      stop: () => fwd.stop(),
    };
  };
}
