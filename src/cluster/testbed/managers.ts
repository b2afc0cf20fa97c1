/**
 * The testbed's managers: M `sampan cluster manager` processes over the testbed's etcd, each with its API and node
 * sockets under DIR/managers/mI/; every host's engine joins each of them (one --join per manager). A manager is
 * ready once every host has joined it; DIR/cluster.sock links to the first one's API.
 */
import { spawn } from 'node:child_process';
import { promises as fs, openSync, closeSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { newToken } from '../store.js';
import { terminate, waitReady } from '../proc.js';
import { api } from './host.js';
import type { TestbedComponent } from './testbed.js';

const SAMPAN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../bin/sampan');
const JOIN_TIMEOUT_MS = 120_000;
/** Short, so that a test sees a killed host go down within seconds. */
const TESTBED_HEARTBEAT_MS = 1000;

export function managerComponents(dir: string, count: number): { components: TestbedComponent[]; engineArgs: (host: string) => string[] } {
  const token = newToken();
  const paths = Array.from({ length: count }, (_, i) => {
    const d = path.join(dir, 'managers', `m${i + 1}`);
    return { name: `m${i + 1}`, dir: d, socket: path.join(d, 'api.sock'), node: path.join(d, 'node.sock') };
  });
  const engineArgs = (host: string) => (count ? [...paths.flatMap((p) => ['--join', `unix://${p.node}`]), '--join-token', token, '--node-name', host] : []);
  const components = paths.map((p, i): TestbedComponent => async (tb) => {
    await fs.mkdir(p.dir, { recursive: true });
    const fd = openSync(path.join(p.dir, 'manager.log'), 'a');
    const proc = (() => {
      try {
        return spawn(SAMPAN, [
          'cluster', 'manager', '--etcd', tb.etcdEndpoints.join(','), '--listen', `unix://${p.socket}`, '--node-listen', `unix://${p.node}`,
          '--name', 'testbed', '--join-token', token, '--heartbeat', String(TESTBED_HEARTBEAT_MS),
        ], { stdio: ['ignore', fd, fd], detached: true });
      } finally {
        closeSync(fd);
      }
    })();
    const stop = async () => {
      await terminate(proc, 10_000);
      if (i === 0) await fs.rm(path.join(dir, 'cluster.sock'), { force: true });
    };
    try {
      await waitReady(`manager ${p.name}`, proc, async () => {
        const r = await api(p.socket, 'GET', '/sampan/v1/nodes');
        const nodes = JSON.parse(r.body) as Array<{ state: string }>;
        return r.status === 200 && nodes.filter((n) => n.state === 'up').length === tb.hosts.length;
      }, JOIN_TIMEOUT_MS, tb.aborted);
      if (i === 0) {
        await fs.rm(path.join(dir, 'cluster.sock'), { force: true });
        await fs.symlink(p.socket, path.join(dir, 'cluster.sock'));
      }
    } catch (err) {
      await stop();
      throw err;
    }
    tb.log.info({ manager: p.name, socket: p.socket, hosts: tb.hosts.length }, 'manager ready: every host joined');
    return { manager: { name: p.name, pid: proc.pid ?? 0, socket: p.socket }, stop };
  });
  return { components, engineArgs };
}
