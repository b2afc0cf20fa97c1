/**
 * The testbed's registry and P2P (`--registry`): a `sampan registry` on the hosts' gateway (10.222.K.1:PORT,
 * plain HTTP, reached from this machine and from every host), a `sampan p2p scheduler` beside it, and one
 * `sampan p2p peer` in each host's network namespace that is that host's engine's mirror for the registry, so
 * pulls on the hosts go through P2P as in production.
 *
 * The registry runs with authentication off (mode none, the registry's default, as Distribution's without an
 * auth section): anyone on the testbed's bridge may push and pull, which the bridge's private subnet confines to
 * this machine and its emulated hosts. It is a test fixture, never a production registry.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { terminate, waitReady } from '../proc.js';
import { freePorts } from '../../lib/ports.js';
import type { HostInfo } from './host.js';
import type { P2pPeerInfo, TestbedComponent } from './testbed.js';

const SAMPAN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../bin/sampan');
const START_TIMEOUT_MS = 60_000;
/** Inside each host's own namespace: every peer can use the same ports. */
const MIRROR_PORT = 65001;
const PIECE_PORT = 65002;

async function get(url: string): Promise<number> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  await res.arrayBuffer();
  return res.status;
}

/** One daemon of ours, logging to `log`, in the root namespace or (nsenter --net) a host's. */
function daemon(args: string[], log: string, netns?: string): ChildProcess {
  const fd = openSync(log, 'a');
  try {
    // its own process group: a terminal's ^C stops the testbed, which stops it in order
    return netns
      ? spawn('nsenter', [`--net=/run/netns/${netns}`, SAMPAN, ...args], { stdio: ['ignore', fd, fd], detached: true })
      : spawn(SAMPAN, args, { stdio: ['ignore', fd, fd], detached: true });
  } finally {
    closeSync(fd);
  }
}

/**
 * The component, the flags each host's engine needs for it (the registry trusted over plain HTTP, its peer as the
 * registry's mirror) and the managers': the ports are picked now, since the engines
 * start before any component.
 */
export async function registryComponent(dir: string): Promise<{ component: TestbedComponent; engineArgs: (host: string, gateway: string) => string[]; managerArgs: (gateway: string) => string[] }> {
  const [registryPort, schedulerPort] = await freePorts(2);
  const addr = (gw: string) => `${gw}:${registryPort}`;
  const engineArgs = (_host: string, gw: string) => ['--insecure-registry', addr(gw), '--registry-mirror', `${addr(gw)}=http://127.0.0.1:${MIRROR_PORT}`];
  // the scheduler to preheat at and plot the traffic of; the registry whose caches the dashboard shows
  const managerArgs = (gw: string) => ['--p2p-scheduler', `http://${gw}:${schedulerPort}`, '--registry-url', `http://${addr(gw)}`];
  const component: TestbedComponent = async (tb) => {
    const running: ChildProcess[] = [];
    const stop = async () => {
      // peers first, the registry last: nothing is left pulling from what is gone
      for (const p of [...running].reverse()) await terminate(p, 10_000);
    };
    try {
      const reg = path.join(dir, 'registry');
      await fs.mkdir(path.join(reg, 'data'), { recursive: true });
      const registry = daemon(['registry', '--root', path.join(reg, 'data'), '--addr', addr(tb.gateway), '--auth', 'none'], path.join(reg, 'registry.log'));
      running.push(registry);
      await waitReady('testbed registry', registry, async () => (await get(`http://${addr(tb.gateway)}/v2/`)) === 200, START_TIMEOUT_MS, tb.aborted);

      const p2pDir = path.join(dir, 'p2p');
      await fs.mkdir(p2pDir, { recursive: true });
      const scheduler = `http://${tb.gateway}:${schedulerPort}`;
      const sched = daemon(['p2p', 'scheduler', '--listen', `${tb.gateway}:${schedulerPort}`, '--insecure-registry', addr(tb.gateway)], path.join(p2pDir, 'scheduler.log'));
      running.push(sched);
      await waitReady('testbed P2P scheduler', sched, async () => (await get(`${scheduler}/healthz`)) === 200, START_TIMEOUT_MS, tb.aborted);

      const peers = await Promise.all(tb.hosts.map(async (h: HostInfo): Promise<P2pPeerInfo> => {
        const hostDir = path.join(dir, 'hosts', h.name);
        const api = `http://${h.ip}:${PIECE_PORT}`;
        const peer = daemon([
          'p2p', 'peer', '--root', path.join(hostDir, 'p2p'), '--listen', `127.0.0.1:${MIRROR_PORT}`, '--peer-listen', `${h.ip}:${PIECE_PORT}`,
          '--scheduler', scheduler, '--upstream', `http://${addr(tb.gateway)}`, '--peer-id', h.name,
        ], path.join(hostDir, 'p2p-peer.log'), h.netns);
        running.push(peer);
        await waitReady(`P2P peer of ${h.name}`, peer, async () => (await get(`${api}/healthz`)) === 200, START_TIMEOUT_MS, tb.aborted);
        return { host: h.name, api, mirror: `http://127.0.0.1:${MIRROR_PORT}`, pid: peer.pid ?? 0 };
      }));
      tb.log.info({ registry: addr(tb.gateway), scheduler, peers: peers.length }, 'testbed registry and P2P ready');
      return { registry: { addr: addr(tb.gateway), pid: registry.pid ?? 0 }, p2p: { scheduler, pid: sched.pid ?? 0, peers }, stop };
    } catch (err) {
      await stop();
      throw err;
    }
  };
  return { component, engineArgs, managerArgs };
}
