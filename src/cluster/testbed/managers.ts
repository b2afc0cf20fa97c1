/**
 * The testbed's managers: M `sampan cluster manager` processes over the testbed's etcd, each with its API and node
 * sockets under DIR/managers/mI/ (with --tls: tcp:// and wss:// on the hosts' gateway, mutual TLS); every host's
 * engine joins each of them (one --join per manager). A manager is ready once every host has joined it;
 * DIR/cluster.sock links to the first one's API socket (without --tls).
 */
import { spawn } from 'node:child_process';
import { promises as fs, openSync, closeSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { newToken } from '../store.js';
import { EngineClient } from '../../lib/engine-client.js';
import { freePorts, terminate, waitReady } from '../proc.js';
import type { TestbedComponent } from './testbed.js';

const SAMPAN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../bin/sampan');
const JOIN_TIMEOUT_MS = 120_000;
/** Short, so that a test sees a killed host go down within seconds. */
const TESTBED_HEARTBEAT_MS = 1000;

export async function managerComponents(dir: string, count: number, tls = false): Promise<{ components: TestbedComponent[]; engineArgs: (host: string, gateway: string) => string[] }> {
  const token = newToken();
  // with --tls, each manager's API and node endpoint listen on the gateway: its ports are picked now, the hosts' --join names them
  const ports = tls ? await freePorts(2 * count) : [];
  const paths = Array.from({ length: count }, (_, i) => {
    const d = path.join(dir, 'managers', `m${i + 1}`);
    const api = (gw: string) => (tls ? `tcp://${gw}:${ports[2 * i]}` : `unix://${path.join(d, 'api.sock')}`);
    const node = (gw: string) => (tls ? `wss://${gw}:${ports[2 * i + 1]}` : `unix://${path.join(d, 'node.sock')}`);
    return { name: `m${i + 1}`, dir: d, socket: path.join(d, 'api.sock'), api, node };
  });
  const engineArgs = (host: string, gw: string) => (count ? [...paths.flatMap((p) => ['--join', p.node(gw)]), '--join-token', token, '--node-name', host] : []);
  const components = paths.map((p, i): TestbedComponent => async (tb) => {
    await fs.mkdir(p.dir, { recursive: true });
    const host = p.api(tb.gateway);
    const certs = tb.tls ? ['--tlscacert', tb.tls.managers.ca, '--tlscert', tb.tls.managers.cert, '--tlskey', tb.tls.managers.key] : [];
    const fd = openSync(path.join(p.dir, 'manager.log'), 'a');
    const proc = (() => {
      try {
        return spawn(SAMPAN, [
          'cluster', 'manager', '--etcd', tb.etcdEndpoints.join(','), '--listen', host, '--node-listen', p.node(tb.gateway), ...certs,
          '--name', 'testbed', '--join-token', token, '--heartbeat', String(TESTBED_HEARTBEAT_MS),
        ], { stdio: ['ignore', fd, fd], detached: true });
      } finally {
        closeSync(fd);
      }
    })();
    const stop = async () => {
      await terminate(proc, 10_000);
      if (i === 0 && !tls) await fs.rm(path.join(dir, 'cluster.sock'), { force: true });
    };
    const client = new EngineClient({ host, ...(tb.tls && { tls: tb.tls.client }) });
    try {
      await waitReady(`manager ${p.name}`, proc, async () => {
        const nodes = await client.json<Array<{ state: string }>>('GET', '/sampan/v1/nodes');
        return nodes.filter((n) => n.state === 'up').length === tb.hosts.length;
      }, JOIN_TIMEOUT_MS, tb.aborted);
      if (i === 0 && !tls) {
        await fs.rm(path.join(dir, 'cluster.sock'), { force: true });
        await fs.symlink(p.socket, path.join(dir, 'cluster.sock'));
      }
    } catch (err) {
      await stop();
      throw err;
    }
    tb.log.info({ manager: p.name, host, hosts: tb.hosts.length }, 'manager ready: every host joined');
    return { manager: { name: p.name, pid: proc.pid ?? 0, host, ...(!tls && { socket: p.socket }), join: p.node(tb.gateway) }, stop };
  });
  return { components, engineArgs };
}
