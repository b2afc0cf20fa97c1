/**
 * The testbed: a real etcd, N emulated hosts (network namespaces, each with its own engine) and whatever
 * components the caller adds on top (the managers), described in DIR/testbed.json, and torn down to nothing.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { atomicWriteJson } from '../../lib/fsutil.js';
import { invalid, errorMessage } from '../../lib/errors.js';
import { silentLogger, type Logger } from '../../lib/log.js';
import { EtcdCluster, type EtcdMemberInfo } from '../etcd.js';
import { procStat, run, sleep } from '../proc.js';
import type { TlsPaths } from '../../lib/tls.js';
import { makeCa, makeCert } from './certs.js';
import { EmulatedHost, type HostInfo } from './host.js';
import { MAX_HOSTS, addHostNet, bridgeName, claimSlot, gateway, hostNet, hostsSubnet, removeBridge, removeHostNet, setUpBridge } from './net.js';

export interface ManagerInfo {
  name: string;
  /** The cluster it manages (its --name). */
  cluster: string;
  pid: number;
  /** Its Docker API, as DOCKER_HOST takes it: unix://DIR/managers/mI/api.sock, or tcp://10.222.K.1:PORT with --tls. */
  host: string;
  /** The API's unix socket (without --tls). */
  socket?: string;
  /** Its node endpoint, as engines --join it: unix://…/node.sock, or wss://10.222.K.1:PORT with --tls. */
  join: string;
}

/** With --tls: one CA, and a certificate of it (server and client) for the user (docker CLI), the managers and each host. */
export interface TestbedTls {
  ca: string;
  /** A directory for DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem). */
  certPath: string;
  client: TlsPaths;
  managers: TlsPaths;
}

/** What a component started on the testbed sees: etcd and the hosts are up. */
export interface TestbedContext {
  dir: string;
  etcdEndpoints: string[];
  hosts: HostInfo[];
  /** The hosts' gateway (the bridge's address in the root namespace). */
  gateway: string;
  tls?: TestbedTls;
  log: Logger;
  /** True once the testbed is being stopped: a long start should give up. */
  aborted(): boolean;
}

export interface StartedComponent {
  /** Listed in testbed.json's "managers" when given. */
  manager?: ManagerInfo;
  /** testbed.json's "proxy" when given. */
  proxy?: ProxyInfo;
  /** testbed.json's "registry" and "p2p" (--registry). */
  registry?: RegistryInfo;
  p2p?: P2pInfo;
  /** testbed.json's "ui" (the dashboard) when given. */
  ui?: UiInfo;
  stop(): Promise<void>;
}

/** The seam for what runs on top of etcd and the hosts (the managers): started in order, stopped in reverse. */
export type TestbedComponent = (tb: TestbedContext) => Promise<StartedComponent>;

export interface TestbedOptions {
  dir: string;
  hosts: number;
  etcdMembers?: 1 | 3;
  components?: TestbedComponent[];
  /** More flags for each host's engine (the managers' --join); `gateway` is where the root namespace is from the host. */
  engineArgs?: (host: string, gateway: string) => string[];
  /** Mutual TLS over TCP: certificates in DIR/tls/, each engine's API also on tcp://ITS_IP:2376. */
  tls?: boolean;
  log?: Logger;
}

/** The dashboard (testbed/ui.ts): the testbed's loopback port in front of the managers' --ui-listen, and two browser tokens. */
export interface UiInfo {
  /** http://127.0.0.1:PORT/ui/ */
  url: string;
  /** An admin browser token: open `${url}#token=${token}`. */
  token: string;
  /** A read-only one. */
  readToken: string;
}

/** The SwarmProxy in front of the clusters (--clusters C > 1), and a client certificate for each cluster. */
export interface ProxyInfo {
  pid: number;
  /** tcp://127.0.0.1:PORT, as DOCKER_HOST takes it (with DOCKER_TLS_VERIFY=1). */
  host: string;
  /** Per cluster name: a certificate of the proxy's CA whose CN is that name, in a directory for DOCKER_CERT_PATH. */
  clients: Record<string, TlsPaths>;
}

export interface RegistryInfo {
  /** IP:PORT of the registry (plain HTTP), as image references name it: `IP:PORT/app:v1`. */
  addr: string;
  pid: number;
}

export interface P2pPeerInfo {
  host: string;
  /** The peer's piece API (`sampan p2p status --peer`), and its metrics at /metrics. */
  api: string;
  /** The mirror its host's engine pulls through (inside the host's namespace). */
  mirror: string;
  pid: number;
}

export interface P2pInfo {
  /** The scheduler's base URL (`sampan preheat --scheduler`). */
  scheduler: string;
  pid: number;
  peers: P2pPeerInfo[];
}

export interface TestbedDescription {
  etcd: { endpoints: string[]; pid: number; members: EtcdMemberInfo[] };
  managers: ManagerInfo[];
  proxy?: ProxyInfo;
  /** With --registry: the registry every host and this machine reach (plain HTTP), and the P2P network in front of it. */
  registry?: RegistryInfo;
  p2p?: P2pInfo;
  ui?: UiInfo;
  hosts: HostInfo[];
  network: { bridge: string; subnet: string; gateway: string };
  tls?: TestbedTls;
}

export class Testbed {
  readonly dir: string;
  private readonly log: Logger;
  private slot?: number;
  private etcd?: EtcdCluster;
  /** Hosts whose namespace was (being) made: each is torn down. */
  private readonly hosts: EmulatedHost[] = [];
  private readonly started: StartedComponent[] = [];
  private tls?: TestbedTls;
  private stopping = false;
  private starting?: Promise<void>;
  private teardownDone?: Promise<void>;

  constructor(private readonly opts: TestbedOptions) {
    if (!Number.isInteger(opts.hosts) || opts.hosts < 1 || opts.hosts > MAX_HOSTS) throw invalid(`--hosts ${opts.hosts}: use 1 to ${MAX_HOSTS}`);
    this.dir = path.resolve(opts.dir);
    this.log = opts.log ?? silentLogger;
  }

  get description(): TestbedDescription {
    const members = this.etcd?.info ?? [];
    const proxy = this.started.find((c) => c.proxy)?.proxy;
    const registry = this.started.find((c) => c.registry);
    const ui = this.started.find((c) => c.ui)?.ui;
    return {
      etcd: { endpoints: this.etcd?.endpoints ?? [], pid: members[0]?.pid ?? 0, members },
      managers: this.started.flatMap((c) => (c.manager ? [c.manager] : [])),
      ...(proxy && { proxy }),
      ...(registry?.registry && { registry: registry.registry }),
      ...(registry?.p2p && { p2p: registry.p2p }),
      ...(ui && { ui }),
      hosts: this.hosts.map((h) => h.info),
      network: { bridge: bridgeName(this.slot ?? 0), subnet: hostsSubnet(this.slot ?? 0), gateway: gateway(this.slot ?? 0) },
      ...(this.tls && { tls: this.tls }),
    };
  }

  /** Starts everything and writes DIR/testbed.json; on failure (or a stop meanwhile) tears down what it made and throws. */
  start(): Promise<void> {
    this.starting ??= this.doStart().catch(async (err: unknown) => {
      await this.teardown();
      throw err;
    });
    return this.starting;
  }

  private async doStart(): Promise<void> {
    const aborted = () => this.stopping;
    const step = () => {
      if (this.stopping) throw new Error('testbed start aborted: stopping');
    };
    await fs.mkdir(this.dir, { recursive: true });
    this.slot = await claimSlot();
    const slot = this.slot;
    await setUpBridge(slot);
    this.log.info({ bridge: bridgeName(slot), subnet: hostsSubnet(slot) }, 'testbed bridge up');
    step();
    this.etcd = await EtcdCluster.start({ dir: path.join(this.dir, 'etcd'), members: this.opts.etcdMembers ?? 1, log: this.log, abort: aborted });
    step();
    const nets = Array.from({ length: this.opts.hosts }, (_, i) => hostNet(slot, i + 1));
    const certs = this.opts.tls ? await testbedCerts(path.join(this.dir, 'tls'), gateway(slot), nets.map((n) => n.ip)) : undefined;
    this.tls = certs?.testbed;
    nets.forEach((net, i) => this.hosts.push(new EmulatedHost(`host${i + 1}`, this.dir, net, this.log, this.opts.engineArgs?.(`host${i + 1}`, gateway(slot)), certs?.hosts[i])));
    // all namespaces settle before any fails the start: the teardown then finds each one whole or absent
    const made = await Promise.allSettled(this.hosts.map(async (h) => {
      await addHostNet(slot, h.net);
      await h.start(aborted);
    }));
    const failed = made.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    for (const component of this.opts.components ?? []) {
      step();
      this.started.push(await component({
        dir: this.dir, etcdEndpoints: this.etcd.endpoints, hosts: this.hosts.map((h) => h.info), gateway: gateway(slot), ...(this.tls && { tls: this.tls }), log: this.log, aborted,
      }));
    }
    step();
    await atomicWriteJson(path.join(this.dir, 'testbed.json'), this.description);
  }

  /** Stops and removes everything; safe to call at any time and any number of times. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.starting?.catch(() => undefined);
    await this.teardown();
  }

  private teardown(): Promise<void> {
    this.teardownDone ??= this.doTeardown();
    return this.teardownDone;
  }

  private async doTeardown(): Promise<void> {
    const attempt = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        this.log.warn({ err: errorMessage(err) }, `teardown: ${what}`);
      }
    };
    for (const c of [...this.started].reverse()) await attempt('stop a component', () => c.stop());
    await Promise.all(this.hosts.map((h) => attempt(`stop ${h.name}`, () => h.stop())));
    await attempt('stop etcd', async () => this.etcd?.stop());
    await attempt('kill leftover processes', () => this.killLeftovers());
    await attempt('unmount', () => unmountUnder(this.dir));
    for (const h of this.hosts) {
      await attempt(`sweep ${h.name}`, () => h.sweep());
      await attempt(`remove ${h.net.netns}`, () => removeHostNet(h.net));
    }
    if (this.slot !== undefined) await attempt('remove the bridge', () => removeBridge(this.slot!));
    this.log.info({ dir: this.dir }, 'testbed down');
  }

  /** Whatever still runs in a host's namespace, or from, in or on the testbed's dir (monitors, containers). */
  private async killLeftovers(): Promise<void> {
    const spare = await ancestors();
    const doomed = new Set<number>();
    for (const h of this.hosts) for (const pid of await h.leftoverPids()) doomed.add(pid);
    for (const pid of await pointingInto(this.dir)) doomed.add(pid);
    for (const pid of spare) doomed.delete(pid);
    for (const pid of doomed) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    // their cgroups and mounts go once they have exited; a zombie (not reaped yet) holds neither
    const running = async () => (await Promise.all([...doomed].map(procStat))).some((s) => s && s.state !== 'Z');
    for (let i = 0; i < 50 && (await running()); i++) await sleep(100);
  }
}

/** This process and its ancestors: their command lines may name the dir, and they are not leftovers. */
async function ancestors(): Promise<Set<number>> {
  const out = new Set<number>();
  for (let pid: number | undefined = process.pid; pid && pid > 1 && !out.has(pid); pid = (await procStat(pid))?.ppid) out.add(pid);
  return out;
}

/** PIDs whose cwd, root or command line points into dir (as the acceptance checks' cleanup finds them). */
async function pointingInto(dir: string): Promise<number[]> {
  const out: number[] = [];
  for (const p of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    const [cwd, root, cmd] = await Promise.all([
      fs.readlink(`/proc/${p}/cwd`).catch(() => ''),
      fs.readlink(`/proc/${p}/root`).catch(() => ''),
      fs.readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => ''),
    ]);
    const inDir = (x: string) => x === dir || x.startsWith(`${dir}/`);
    if (inDir(cwd) || inDir(root) || cmd.split('\0').some((arg) => arg === dir || arg.includes(`${dir}/`))) out.push(Number(p));
  }
  return out;
}

/** Mount points under dir in this mount namespace, unmounted deepest first. */
async function unmountUnder(dir: string): Promise<void> {
  const mounts = (await fs.readFile('/proc/self/mounts', 'utf8'))
    .split('\n')
    .map((l) => (l.split(' ')[1] ?? '').replace(/\\040/g, ' '))
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort()
    .reverse();
  for (const m of mounts) await run('umount', ['-l', m]).catch(() => undefined);
}

/** The testbed's CA and certificates: the user's (DIR/tls/client), the managers' (on the gateway), each host's (on its IP). */
async function testbedCerts(dir: string, gw: string, hostIps: string[]): Promise<{ testbed: TestbedTls; hosts: TlsPaths[] }> {
  const ca = await makeCa(dir, 'sampan testbed CA');
  const client = await makeCert(ca, path.join(dir, 'client'), 'client', []);
  const managers = await makeCert(ca, path.join(dir, 'managers'), 'manager', [gw, '127.0.0.1', 'localhost']);
  const hosts = await Promise.all(hostIps.map((ip, i) => makeCert(ca, path.join(dir, `host${i + 1}`), `host${i + 1}`, [ip, '127.0.0.1', 'localhost'])));
  return { testbed: { ca: ca.cert, certPath: path.dirname(client.cert), client, managers }, hosts };
}
