/**
 * Cluster networks on this engine, the data plane of docs/networking.md ("Cluster networks"): a record per network
 * from the manager's `networks`, a bridge `spc<id8>` holding the gateway of each block this host holds, and the
 * kernel's routes to the other hosts' blocks from its `peers` — `host-gw` (a route via the host) or `vxlan` (a
 * device `spvx<vni>` with a route, a neighbour and an FDB entry per other host, as flannel does). Containers get
 * the manager's address through CNI (bridge + static IPAM). Routes carry protocol number ROUTE_PROTO, so an engine
 * that was killed finds its own again and drops those no longer wanted.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { promisify } from 'node:util';
import { errorMessage, invalid } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import type { ClusterNetworkSpec, NetworkPeer, NetworkStateMessage, NetworksMessage, PeersMessage } from '../../lib/node-protocol.js';
import type { PluginConf } from './cni.js';
import { cidrString, contains, intToIp, parseCidr } from './ipnet.js';
import { isolate } from './isolation.js';
import { isCluster, type NetworkRecord } from './model.js';

const run = promisify(execFile);
const ip = (args: string[]) => run('ip', args).then((r) => r.stdout);

/** The `proto` of the engine's cluster routes (any number iproute2 and the kernel leave alone). */
const ROUTE_PROTO = '77';
const VXLAN_PORT = '4789';
const VXLAN_OVERHEAD = 50;
/** How long a container's start waits for the block of its address to reach this host (the manager sends it with the create). */
const BLOCK_WAIT_MS = 10_000;

const clusterBridge = (id: string): string => `spc${id.slice(0, 8)}`;
const vxlanDevice = (vni: number): string => `spvx${vni}`;
const norm = (cidr: string): string => cidrString(parseCidr(cidr));
/** A block's first address: the host's gateway on the bridge. */
const blockGateway = (block: string): string => intToIp(parseCidr(block).base + 1);
/** A block's network address: with vxlan, the address of the VTEP of the host holding it. */
const blockAddress = (block: string): string => intToIp(parseCidr(block).base);

/** The engine's record of a cluster network (its blocks kept from `prev`). */
export function clusterRecord(spec: ClusterNetworkSpec, prev?: NetworkRecord): NetworkRecord {
  const blocks = prev?.Cluster?.blocks ?? [];
  return {
    Name: spec.name,
    Id: spec.id,
    Created: prev?.Created ?? new Date().toISOString(),
    Scope: 'swarm',
    Driver: 'overlay',
    EnableIPv6: false,
    IPAM: { Driver: 'default', Options: null, Config: [{ Subnet: norm(spec.subnet), Gateway: blockGateway(blocks[0] ?? spec.subnet) }] },
    Internal: spec.internal,
    Attachable: true,
    Ingress: false,
    Options: {
      'com.sampan.cluster.routing': spec.routing,
      ...(spec.routing === 'vxlan' ? { 'com.docker.network.driver.overlay.vxlanid_list': String(spec.vni) } : {}),
      ...(spec.mtu ? { 'com.docker.network.driver.mtu': String(spec.mtu) } : {}),
    },
    Labels: spec.labels,
    BridgeName: clusterBridge(spec.id),
    Cluster: { routing: spec.routing, vni: spec.vni, mtu: spec.mtu, blocks },
  };
}

/** The containers' MTU: the manager's, else the underlay's less what VXLAN adds. */
const containerMtu = (n: NetworkRecord): number => n.Cluster!.mtu || (n.Cluster!.routing === 'vxlan' ? 1500 - VXLAN_OVERHEAD : 1500);

/** The block of this host that holds `addr`. */
export function blockOf(n: NetworkRecord, addr: string): string | undefined {
  return n.Cluster?.blocks.find((b) => contains(parseCidr(b), addr));
}

/** The bridge plugin's configuration for an endpoint at the manager's address (none for a DEL without the cache). */
export function clusterBridgeConf(n: NetworkRecord, addr: string | undefined): PluginConf {
  const block = addr ? blockOf(n, addr) : undefined;
  const gw = block ? blockGateway(block) : undefined;
  const subnet = n.IPAM.Config[0]!.Subnet;
  return {
    type: 'bridge',
    bridge: n.BridgeName,
    // the engine holds the gateways itself: the plugin takes one per bridge, the bridge has one per block
    isGateway: false,
    ipMasq: false,
    hairpinMode: true,
    mtu: containerMtu(n),
    ipam: {
      type: 'static',
      addresses: block ? [{ address: `${addr}/${parseCidr(block).prefix}`, gateway: gw }] : [],
      // the other hosts' blocks are reached through this host's gateway; an internal network reaches nothing else
      routes: gw ? [{ dst: n.Internal ? subnet : '0.0.0.0/0', gw }] : [],
    },
  };
}

export interface Route {
  dst: string;
  via: string;
  /** vxlan: the device, the next hop being on-link there. */
  dev?: string;
}

export interface Plan {
  routes: Route[];
  neigh: Array<{ ip: string; mac: string }>;
  fdb: Array<{ mac: string; dst: string }>;
}

/** What the kernel must hold for one network: a route per other host's block, and with vxlan its VTEP's neighbour and FDB entries. */
export function planRouting(spec: ClusterNetworkSpec, others: NetworkPeer[]): Plan {
  const out: Plan = { routes: [], neigh: [], fdb: [] };
  for (const p of others) {
    const blocks = p.blocks.map(norm);
    if (!blocks.length) continue;
    if (spec.routing === 'host-gw') {
      for (const b of blocks) out.routes.push({ dst: b, via: p.addr });
      continue;
    }
    // a host whose VTEP is not known yet cannot be reached: its routes come with its MAC
    if (!p.vtepMac) continue;
    const vtep = blockAddress(blocks[0]!);
    const dev = vxlanDevice(spec.vni);
    for (const b of blocks) out.routes.push({ dst: b, via: vtep, dev });
    out.neigh.push({ ip: vtep, mac: p.vtepMac.toLowerCase() });
    out.fdb.push({ mac: p.vtepMac.toLowerCase(), dst: p.addr });
  }
  return out;
}

/** What the engine's network service lends: its records, kept on disk. */
export interface ClusterHost {
  list(): NetworkRecord[];
  save(n: NetworkRecord): Promise<void>;
  /** The record goes (the manager removed the network). */
  forget(n: NetworkRecord): Promise<void>;
  /** Addresses of this engine's endpoints on the network. */
  addresses(n: NetworkRecord): string[];
  log: Logger;
}

interface RouteJson {
  dst: string;
  gateway?: string;
  dev?: string;
}

export class ClusterNetworks {
  private readonly specs = new Map<string, ClusterNetworkSpec>();
  /** By network (as the manager names it in `peers`), then node. */
  private readonly peers = new Map<string, Map<string, NetworkPeer>>();
  /** This node as `peers` name it (its id from the welcome, its name). */
  private readonly me = new Set<string>();
  /** Each network's last state: it goes to the managers when it changes, and in full after each welcome. */
  private readonly states = new Map<string, NetworkStateMessage>();
  private readonly listeners = new Set<(m: NetworkStateMessage) => void>();
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly host: ClusterHost) {}

  /** After a welcome: who this node is in `peers`. */
  identify(nodeId: string, nodeName: string): void {
    this.me.add(nodeId).add(nodeName);
  }

  /** Each network's state as it changes (a node agent passes them on); returns the unsubscribe. */
  subscribe(fn: (m: NetworkStateMessage) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** The networks' current states (what a manager that just welcomed the node is told). */
  current(): NetworkStateMessage[] {
    return [...this.states.values()];
  }

  /** The manager's `networks` and `peers`, applied one after the other. */
  receive(m: NetworksMessage | PeersMessage): Promise<void> {
    this.queue = this.queue
      .then(() => (m.type === 'networks' ? this.setNetworks(m.networks) : this.setPeers(m)))
      .catch((err) => this.host.log.warn({ err: errorMessage(err) }, `cluster networks: ${m.type} not applied`));
    return this.queue;
  }

  /** Once every message received so far is applied: a create that follows a new network's `networks` finds it. */
  settled(): Promise<void> {
    return this.queue;
  }

  private records(): NetworkRecord[] {
    return this.host.list().filter(isCluster);
  }

  private async setNetworks(specs: ClusterNetworkSpec[]): Promise<void> {
    this.specs.clear();
    for (const spec of specs) {
      const prev = this.host.list().find((n) => n.Id === spec.id);
      const clash = this.host.list().find((n) => n.Name === spec.name && n.Id !== spec.id);
      if (clash) {
        this.send({ type: 'netstate', network: spec.id, error: `a network of this engine is already named ${spec.name}` });
        continue;
      }
      this.specs.set(spec.id, spec);
      const next = clusterRecord(spec, prev);
      if (JSON.stringify(next) === JSON.stringify(prev)) continue;
      // changed in place: a start waiting for its block (ready) holds this record
      const rec = prev ? Object.assign(prev, next) : next;
      await this.host.save(rec);
      if (!prev) await isolate(rec, true);
    }
    for (const n of this.records()) {
      if (this.specs.has(n.Id)) continue;
      if (this.host.addresses(n).length) {
        this.host.log.warn({ network: n.Name }, 'cluster network removed by the manager while containers use it here: kept until they are gone');
        continue;
      }
      await removeClusterNetworking(n);
      await this.host.forget(n);
      this.states.delete(n.Id);
    }
    await this.syncAll();
  }

  private async setPeers(m: PeersMessage): Promise<void> {
    if (m.full) this.peers.clear();
    for (const r of m.remove) this.peers.get(r.network)?.delete(r.node);
    for (const p of m.set) {
      if (!this.peers.has(p.network)) this.peers.set(p.network, new Map());
      this.peers.get(p.network)!.set(p.node, p);
    }
    await this.syncAll();
  }

  private async syncAll(): Promise<void> {
    for (const n of this.records()) {
      const spec = this.specs.get(n.Id);
      if (!spec) continue;
      try {
        const vtepMac = await this.sync(n, spec);
        this.send({ type: 'netstate', network: spec.id, ...(vtepMac ? { vtepMac } : {}) });
      } catch (err) {
        this.host.log.warn({ network: n.Name, err: errorMessage(err) }, 'cluster network not set up');
        this.send({ type: 'netstate', network: spec.id, error: errorMessage(err) });
      }
    }
  }

  private send(m: NetworkStateMessage): void {
    if (JSON.stringify(this.states.get(m.network)) === JSON.stringify(m)) return;
    this.states.set(m.network, m);
    for (const fn of this.listeners) fn(m);
  }

  /** One network's bridge, VTEP and routes as the peers say; returns its VTEP's MAC (vxlan). */
  private async sync(n: NetworkRecord, spec: ClusterNetworkSpec): Promise<string | undefined> {
    const peers = [...(this.peers.get(spec.id) ?? this.peers.get(spec.name) ?? new Map<string, NetworkPeer>()).values()];
    const mine = peers.filter((p) => this.me.has(p.node));
    const own = mine.flatMap((p) => p.blocks.map(norm));
    // a block the manager took back stays while a container here still has an address in it
    const used = n.Cluster!.blocks.filter((b) => this.host.addresses(n).some((a) => contains(parseCidr(b), a)));
    const blocks = [...new Set([...own, ...used])];
    if (JSON.stringify(blocks) !== JSON.stringify(n.Cluster!.blocks)) {
      n.Cluster!.blocks = blocks;
      n.IPAM.Config[0]!.Gateway = blockGateway(blocks[0] ?? n.IPAM.Config[0]!.Subnet);
      await this.host.save(n);
    }
    if (!blocks.length) {
      await applyPlan(n, { routes: [], neigh: [], fdb: [] });
      return undefined;
    }
    await ensureBridge(n);
    const addr = mine[0]?.addr;
    let vtepMac: string | undefined;
    if (spec.routing === 'vxlan' && addr) vtepMac = await ensureVxlan(n, blocks[0]!, addr);
    await applyPlan(n, planRouting(spec, peers.filter((p) => !this.me.has(p.node))));
    return vtepMac;
  }

  /** Before a container's endpoint is set up: this host has the block of its address (and its bridge). */
  async ready(n: NetworkRecord, addr: string): Promise<void> {
    const deadline = Date.now() + BLOCK_WAIT_MS;
    while (!blockOf(n, addr)) {
      if (Date.now() > deadline) throw invalid(`no block of cluster network ${n.Name} on this host holds ${addr} (the manager has not sent it)`);
      await new Promise((r) => setTimeout(r, 100));
      await this.queue;
    }
    await ensureBridge(n);
  }
}

/** The device, if it exists (asked of the kernel: an engine in a namespace of its own may see another's /sys). */
async function link(dev: string): Promise<{ address: string } | undefined> {
  return ip(['-j', 'link', 'show', 'dev', dev]).then((out) => (JSON.parse(out) as Array<{ address: string }>)[0], () => undefined);
}

/** The bridge, up, with the gateway of each of the host's blocks; the host forwards between it and the others. */
async function ensureBridge(n: NetworkRecord): Promise<void> {
  const br = n.BridgeName;
  if (!(await link(br))) await ip(['link', 'add', br, 'mtu', String(containerMtu(n)), 'type', 'bridge']).catch(async (err) => {
    if (!(await link(br))) throw err;
  });
  for (const b of n.Cluster!.blocks) await ip(['addr', 'replace', `${blockGateway(b)}/${parseCidr(b).prefix}`, 'dev', br]);
  await ip(['link', 'set', br, 'up']);
  await fs.writeFile('/proc/sys/net/ipv4/ip_forward', '1');
}

/** The interface holding the host's address, and its MTU. */
async function uplink(addr: string): Promise<{ name: string; mtu: number }> {
  const links = JSON.parse(await ip(['-j', '-4', 'addr', 'show'])) as Array<{ ifname: string; mtu: number; addr_info?: Array<{ local: string }> }>;
  const l = links.find((x) => x.addr_info?.some((a) => a.local === addr));
  if (!l) throw new Error(`no interface of this host has the address ${addr} the cluster knows it by`);
  return { name: l.ifname, mtu: l.mtu };
}

/** The VXLAN device (flannel's way: no learning, the host's first block's network address as /32); returns its MAC. */
async function ensureVxlan(n: NetworkRecord, block: string, addr: string): Promise<string> {
  const dev = vxlanDevice(n.Cluster!.vni);
  if (!(await link(dev))) {
    const up = await uplink(addr);
    await ip(['link', 'add', dev, 'type', 'vxlan', 'id', String(n.Cluster!.vni), 'local', addr, 'dev', up.name, 'dstport', VXLAN_PORT, 'nolearning']);
    await ip(['link', 'set', dev, 'mtu', String(up.mtu - VXLAN_OVERHEAD)]);
  }
  await ip(['addr', 'replace', `${blockAddress(block)}/32`, 'dev', dev]);
  await ip(['link', 'set', dev, 'up']);
  return (await link(dev))!.address;
}

/** The engine's routes into the network's subnet (the protocol number marks them). */
async function ownRoutes(n: NetworkRecord): Promise<RouteJson[]> {
  const subnet = parseCidr(n.IPAM.Config[0]!.Subnet);
  const routes = JSON.parse((await ip(['-j', '-4', 'route', 'show', 'proto', ROUTE_PROTO])) || '[]') as RouteJson[];
  return routes.filter((r) => contains(subnet, r.dst.split('/')[0]!));
}

/** Commands for `ip` or `bridge` in one process (`-batch -`): thousands of routes cost one exec, not one each. */
async function batch(cmd: 'ip' | 'bridge', lines: string[], force: boolean): Promise<void> {
  if (!lines.length) return;
  await new Promise<void>((resolve, reject) => {
    const child = execFile(cmd, [...(force ? ['-force'] : []), '-batch', '-'], (err) => (err ? reject(err) : resolve()));
    // a batch that stops at an error may close its input early: that is the command's failure, not a second one
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(lines.join('\n') + '\n');
  });
}

/**
 * The kernel made to hold the plan: what it lacks added, what is no longer wanted (a peer or block gone) deleted;
 * what it holds already is left alone, so a change of one peer among thousands costs a command, not thousands.
 */
async function applyPlan(n: NetworkRecord, plan: Plan): Promise<void> {
  const key = (r: Route) => `${r.dst} ${r.via} ${r.dev ?? ''}`;
  const wanted = new Set(plan.routes.map(key));
  const have = new Set<string>();
  const dels: string[] = [];
  for (const r of await ownRoutes(n)) {
    const k = key({ dst: r.dst.includes('/') ? r.dst : `${r.dst}/32`, via: r.gateway ?? '', dev: r.dev?.startsWith('spvx') ? r.dev : undefined });
    if (wanted.has(k)) have.add(k);
    else dels.push(`route del ${r.dst} proto ${ROUTE_PROTO}`);
  }
  await batch('ip', dels, true).catch(() => undefined);
  const dev = vxlanDevice(n.Cluster!.vni);
  if (n.Cluster!.routing === 'vxlan' && (await link(dev))) {
    const neigh = JSON.parse((await ip(['-j', 'neigh', 'show', 'dev', dev])) || '[]') as Array<{ dst: string; lladdr?: string }>;
    const fdb = JSON.parse((await run('bridge', ['-j', 'fdb', 'show', 'dev', dev])).stdout || '[]') as Array<{ mac: string; dst?: string }>;
    await batch('ip', neigh.filter((e) => !plan.neigh.some((x) => x.ip === e.dst && x.mac === e.lladdr)).map((e) => `neigh del ${e.dst} dev ${dev}`), true).catch(() => undefined);
    await batch('bridge', fdb.filter((e) => e.dst && !plan.fdb.some((x) => x.mac === e.mac && x.dst === e.dst)).map((e) => `fdb del ${e.mac} dev ${dev} dst ${e.dst}`), true).catch(() => undefined);
    // the FDB and neighbour entries first: a route is usable the moment it exists
    await batch('bridge', plan.fdb.filter((f) => !fdb.some((e) => e.mac === f.mac && e.dst === f.dst)).map((f) => `fdb replace ${f.mac} dev ${dev} dst ${f.dst} self permanent`), false);
    await batch('ip', plan.neigh.filter((x) => !neigh.some((e) => e.dst === x.ip && e.lladdr === x.mac)).map((x) => `neigh replace ${x.ip} lladdr ${x.mac} dev ${dev} nud permanent`), false);
  }
  await batch('ip', plan.routes.filter((r) => !have.has(key(r))).map((r) => `route replace ${r.dst} via ${r.via}${r.dev ? ` dev ${r.dev} onlink` : ''} proto ${ROUTE_PROTO}`), false);
}

/** What the network has on the host besides its bridge and rules: its routes and its VXLAN device (the network is gone, or `sampan engine cleanup`). */
export async function removeClusterNetworking(n: NetworkRecord): Promise<void> {
  for (const r of await ownRoutes(n).catch(() => [])) await ip(['route', 'del', r.dst, 'proto', ROUTE_PROTO]).catch(() => undefined);
  if (n.Cluster?.routing === 'vxlan') await ip(['link', 'del', vxlanDevice(n.Cluster.vni)]).catch(() => undefined);
}
