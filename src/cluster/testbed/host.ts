/**
 * An emulated host: a `sampan engine` of its own inside the host's network namespace, with its own root,
 * exec root, cgroup parent and container subnets, its API on a unix socket under the testbed's dir (a file
 * system object: the root namespace reaches it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs, openSync, closeSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../lib/log.js';
import type { TlsPaths } from '../../lib/tls.js';
import { alive, run, terminate, waitReady } from '../proc.js';
import { pidsIn, type HostNet } from './net.js';

/** bin/sampan of this checkout (this file is dist/src/cluster/testbed/host.js). */
const SAMPAN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../bin/sampan');
const START_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 20_000;
const CGROUP_ROOT = '/sys/fs/cgroup';

export interface HostInfo {
  name: string;
  netns: string;
  ip: string;
  socket: string;
  /** Its engine's API as the managers reach it: tcp://IP:2376 with --tls (mutual TLS), else the unix socket. */
  api: string;
  /** With --tls: the engine's certificate (server, and client towards the managers). */
  tls?: TlsPaths;
  pid: number;
}

/** Docker's TLS port. */
const TLS_PORT = 2376;

export function api(socket: string, method: string, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, method, path: p, timeout: 30_000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${p}: no answer within 30 s`)));
    req.on('error', reject);
    req.end();
  });
}

export class EmulatedHost {
  private proc?: ChildProcess;
  /** The engine answered: it has containers to remove at the stop. */
  private ready = false;
  readonly dir: string;
  readonly socket: string;

  constructor(
    readonly name: string,
    testbedDir: string,
    readonly net: HostNet,
    private readonly log: Logger,
    /** More `sampan engine` flags (--join … for the managers). */
    private readonly extraArgs: string[] = [],
    private readonly tls?: TlsPaths,
  ) {
    this.dir = path.join(testbedDir, 'hosts', name);
    this.socket = path.join(this.dir, 'engine.sock');
  }

  /** The engines' cgroups are machine-wide: one parent per host, named as its namespace. */
  private get cgroupParent(): string {
    return this.net.netns;
  }

  get info(): HostInfo {
    return {
      name: this.name, netns: this.net.netns, ip: this.net.ip, socket: this.socket, api: this.tls ? `tcp://${this.net.ip}:${TLS_PORT}` : `unix://${this.socket}`,
      ...(this.tls && { tls: this.tls }), pid: this.proc?.pid ?? 0,
    };
  }

  async start(abort: () => boolean): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true });
    const args = [
      `--net=/run/netns/${this.net.netns}`, SAMPAN, 'engine',
      '--root', path.join(this.dir, 'root'), '--exec-root', path.join(this.dir, 'run'),
      // the first --host is the API the engine tells the managers; the unix socket stays for the testbed's own calls
      ...(this.tls ? ['--host', `tcp://${this.net.ip}:${TLS_PORT}`, '--tlscacert', this.tls.ca, '--tlscert', this.tls.cert, '--tlskey', this.tls.key] : []),
      '--host', `unix://${this.socket}`, '--cgroup-parent', `/${this.cgroupParent}`,
      '--default-address-pool', this.net.addressPool,
      // an engine that finds no lxcfs starts one, detached, in its namespace: the teardown would kill it under
      // every other engine of the machine that binds its files
      '--lxcfs', 'false',
      ...this.extraArgs,
    ];
    const fd = openSync(path.join(this.dir, 'engine.log'), 'a');
    try {
      // nsenter joins the network namespace only: `ip netns exec` would also remount /sys, and the engine's
      // runc needs /sys/fs/cgroup. Its own process group keeps a terminal's ^C from stopping it before the
      // testbed has removed its containers; nsenter execs the engine, so the pid is the engine's.
      this.proc = spawn('nsenter', args, {
        stdio: ['ignore', fd, fd],
        detached: true,
        env: { ...process.env, SAMPAN_BRIDGE_SUBNET: this.net.bridgeSubnet },
      });
    } finally {
      closeSync(fd);
    }
    this.proc.on('error', (err) => this.log.error({ host: this.name, err: err.message }, 'engine did not start'));
    await waitReady(`engine of ${this.name}`, this.proc, async () => (await api(this.socket, 'GET', '/_ping')).status === 200, START_TIMEOUT_MS, abort, path.join(this.dir, 'engine.log'));
    this.ready = true;
    this.log.info({ host: this.name, netns: this.net.netns, ip: this.net.ip, pid: this.proc.pid }, 'host ready');
  }

  /** Removes every container (force, with anonymous volumes) and stops the engine. */
  async stop(): Promise<void> {
    if (!this.proc || !alive(this.proc)) return;
    if (this.ready) await this.removeContainers().catch((err: Error) => this.log.warn({ host: this.name, err: err.message }, 'could not remove the containers'));
    await terminate(this.proc, STOP_GRACE_MS);
  }

  private async removeContainers(): Promise<void> {
    const ids = (JSON.parse((await api(this.socket, 'GET', '/containers/json?all=1')).body) as Array<{ Id: string }>).map((c) => c.Id);
    await Promise.all(ids.map((id) => api(this.socket, 'DELETE', `/containers/${id}?force=1&v=1`)));
  }

  /** Cgroups of the engine's containers: one parent per controller on cgroup v1, one in all on v2. */
  private async cgroupDirs(): Promise<string[]> {
    return ['', ...(await fs.readdir(CGROUP_ROOT).catch(() => [] as string[]))].map((ctl) => path.join(CGROUP_ROOT, ctl, this.cgroupParent));
  }

  /**
   * The processes an engine may leave (it does when killed): in the host's namespace, and in its containers'
   * cgroups (a container's processes are in namespaces of their own, their root is no path of ours, and conmon,
   * their parent, may be gone).
   */
  async leftoverPids(): Promise<number[]> {
    const pids = new Set(await pidsIn(this.net));
    for (const dir of await this.cgroupDirs()) for (const pid of await cgroupProcs(dir)) pids.add(pid);
    return [...pids];
  }

  /** What a stopped engine may have left besides processes: its containers' network namespaces (named after the container ids its root records) and cgroups. */
  async sweep(): Promise<void> {
    const ids = await fs.readdir(path.join(this.dir, 'root', 'containers')).catch(() => [] as string[]);
    for (const id of ids) {
      const ns = `sampan-${id.slice(0, 12)}`;
      if (await fs.stat(`/run/netns/${ns}`).then(() => true, () => false)) await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    }
    for (const dir of await this.cgroupDirs()) await rmdirTree(dir);
  }
}

/** The PIDs in a cgroup and its descendants. */
async function cgroupProcs(dir: string): Promise<number[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => undefined);
  if (!entries) return [];
  const own = (await fs.readFile(path.join(dir, 'cgroup.procs'), 'utf8').catch(() => '')).split('\n').filter(Boolean).map(Number);
  const children = await Promise.all(entries.filter((e) => e.isDirectory()).map((e) => cgroupProcs(path.join(dir, e.name))));
  return [...own, ...children.flat()];
}

/** Removes a cgroup and its children, deepest first (a cgroup goes with rmdir once it has no tasks). */
async function rmdirTree(dir: string): Promise<void> {
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => undefined);
  if (!entries) return;
  for (const e of entries) if (e.isDirectory()) await rmdirTree(path.join(dir, e.name));
  await fs.rmdir(dir).catch(() => undefined);
}
