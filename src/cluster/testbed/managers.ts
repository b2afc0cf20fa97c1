/**
 * The testbed's managers: M `sampan cluster manager` processes over the testbed's etcd, each with its API and node
 * sockets under DIR/managers/mI/ (with --tls: tcp:// and wss:// on the hosts' gateway, mutual TLS); every host's
 * engine joins each of them (one --join per manager). A manager is ready once every host has joined it (and it
 * knows the leader). DIR/cluster.sock (without --tls) is the testbed's own forwarder: each connection goes to a
 * manager that answers (a standby passes requests to the leader), so it works while any manager lives. With
 * --clusters C, C clusters (c1…cC) share the etcd, the hosts going round among them, each with its M managers and
 * its forwarder at DIR/cK.sock.
 */
import { spawn } from 'node:child_process';
import { promises as fs, openSync, closeSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { newToken } from '../store.js';
import { EngineClient } from '../../lib/engine-client.js';
import { terminate, waitReady } from '../proc.js';
import { freePorts } from '../../lib/ports.js';
import { forwardToAny } from './forwarder.js';
import { proxyComponent } from './proxy.js';
import { uiComponent } from './ui.js';
import type { TestbedComponent } from './testbed.js';

const SAMPAN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../bin/sampan');
const JOIN_TIMEOUT_MS = 120_000;
/** Short, so that a test sees a killed host go down within seconds. */
const TESTBED_HEARTBEAT_MS = 1000;

/** Testbed clusters' names: `testbed` alone, c1…cC side by side (--clusters C). */
const clusterNames = (clusters: number): string[] => (clusters === 1 ? ['testbed'] : Array.from({ length: clusters }, (_, k) => `c${k + 1}`));

/** With C clusters, hosts go round: host1 to the first, host2 to the second, … */
const clusterOf = (host: string, clusters: number): number => (Number(host.replace(/^host/, '')) - 1) % clusters;

export async function managerComponents(dir: string, count: number, tls = false, clusters = 1, extraArgs?: (gateway: string) => string[]): Promise<{ components: TestbedComponent[]; engineArgs: (host: string, gateway: string) => string[] }> {
  const names = clusterNames(clusters);
  const tokens = names.map(() => newToken());
  // with --tls, each manager's API and node endpoint listen on the gateway: its ports are picked now, the hosts' --join names them
  const ports = tls ? await freePorts(2 * count * clusters) : [];
  // the dashboard: each manager of the first cluster on a loopback port, the testbed's forwarder in front
  const uiPorts = count ? await freePorts(count) : [];
  const paths = names.map((cluster, k) => Array.from({ length: count }, (_, i) => {
    const name = clusters === 1 ? `m${i + 1}` : `${cluster}-m${i + 1}`;
    const d = path.join(dir, 'managers', name);
    const at = 2 * (k * count + i);
    const api = (gw: string) => (tls ? `tcp://${gw}:${ports[at]}` : `unix://${path.join(d, 'api.sock')}`);
    const node = (gw: string) => (tls ? `wss://${gw}:${ports[at + 1]}` : `unix://${path.join(d, 'node.sock')}`);
    return { name, cluster, k, dir: d, socket: path.join(d, 'api.sock'), api, node, ui: k === 0 ? uiPorts[i] : undefined };
  }));
  const engineArgs = (host: string, gw: string) => {
    const k = clusterOf(host, clusters);
    return count ? [...paths[k]!.flatMap((p) => ['--join', p.node(gw)]), '--join-token', tokens[k]!, '--node-name', host] : [];
  };
  const components = paths.flat().map((p): TestbedComponent => async (tb) => {
    await fs.mkdir(p.dir, { recursive: true });
    const host = p.api(tb.gateway);
    const certs = tb.tls ? ['--tlscacert', tb.tls.managers.ca, '--tlscert', tb.tls.managers.cert, '--tlskey', tb.tls.managers.key] : [];
    const logFile = path.join(p.dir, 'manager.log');
    const fd = openSync(logFile, 'a');
    const proc = (() => {
      try {
        return spawn(SAMPAN, [
          'cluster', 'manager', '--etcd', tb.etcdEndpoints.join(','), '--listen', host, '--node-listen', p.node(tb.gateway), ...certs,
          '--name', p.cluster, '--join-token', tokens[p.k]!, '--heartbeat', String(TESTBED_HEARTBEAT_MS),
          ...(extraArgs?.(tb.gateway) ?? []),
          ...(p.ui ? ['--ui-listen', `127.0.0.1:${p.ui}`] : []),
        ], { stdio: ['ignore', fd, fd], detached: true });
      } finally {
        closeSync(fd);
      }
    })();
    const stop = () => terminate(proc, 10_000);
    const client = new EngineClient({ host, ...(tb.tls && { tls: tb.tls.client }) });
    const hosts = tb.hosts.filter((h) => clusterOf(h.name, clusters) === p.k).length;
    try {
      await waitReady(`manager ${p.name}`, proc, async () => {
        const m = await client.json<{ joined: number; leader?: string }>('GET', '/sampan/v1/manager');
        return m.joined === hosts && !!m.leader;
      }, JOIN_TIMEOUT_MS, tb.aborted, logFile);
    } catch (err) {
      await stop();
      throw err;
    }
    tb.log.info({ manager: p.name, cluster: p.cluster, host, hosts }, 'manager ready: every host of its cluster joined');
    return { manager: { name: p.name, cluster: p.cluster, pid: proc.pid ?? 0, host, ...(!tls && { socket: p.socket }), join: p.node(tb.gateway) }, stop };
  });
  if (count && !tls) {
    for (const ps of paths) components.push(() => forwardToAny({ path: path.join(dir, clusters === 1 ? 'cluster.sock' : `${ps[0]!.cluster}.sock`) }, ps.map((p) => ({ path: p.socket }))));
  }
  if (count) components.push(uiComponent(names[0]!, uiPorts));
  if (count && clusters > 1) components.push(proxyComponent(dir, names));
  return { components, engineArgs };
}

