/**
 * Cluster networks and their addresses, kept in etcd: `networks/ID` (the spec engines get), `blocks/NET/START` (the
 * node that leased a block), `ips/NET/IP` (the container holding an address; also in its placement). Blocks and
 * addresses are written only if their key is absent, in transactions of their own, so two managers racing can never
 * both hand one out; a container's address lands in the same transaction as its placement. What is used is held in
 * memory (NetworkIpam per network), rebuilt from etcd at start.
 */
import { conflict, invalid, notFound, unavailable } from '../../lib/errors.js';
import { newId } from '../../lib/ids.js';
import type { ClusterNetworkSpec } from '../../lib/node-protocol.js';
import type { NewPlacement } from '../state.js';
import type { ClusterStore, Op, Placement } from '../store.js';
import { cidrSize, cidrText, contains, intToIp, ipToInt, NetworkIpam, overlaps, parseCidr, type Cidr } from './ipam.js';

export interface NetworkConfig {
  pool: string;
  networkSize: number;
  blockSize: number;
  routing: 'host-gw' | 'vxlan';
}

/** The pool, checked with the sizes of networks and blocks cut from it. */
export function checkNetworkConfig(cfg: NetworkConfig): Cidr {
  const pool = parseCidr(cfg.pool, 'pool');
  if (cfg.networkSize < pool.prefix || cfg.networkSize > cfg.blockSize) throw invalid(`network size /${cfg.networkSize}: must be within the pool (/${pool.prefix}) and hold a block (/${cfg.blockSize})`);
  if (cfg.blockSize > 29) throw invalid(`block size /${cfg.blockSize}: at most /29 (the block's address, a gateway, containers, an unused last address)`);
  return pool;
}

export const DEFAULT_NETWORK = 'cluster';

/**
 * The default network's prefix length: at least half the pool, so the network every container lands on without
 * `--network` holds a block for thousands of hosts (the default /12 pool: a /13 of 2,048 /24 blocks; a /8 pool: a
 * /9 of 32,768), the other half left for networks made by name; never smaller than those (`networkSize`) nor than a
 * block.
 */
export function defaultNetworkPrefix(cfg: NetworkConfig): number {
  const pool = parseCidr(cfg.pool, 'pool');
  return Math.min(cfg.networkSize, pool.prefix + 1, cfg.blockSize);
}
/** Docker's overlay driver numbers its VXLANs from 4096 up. */
const FIRST_VNI = 4096;
const UNDERLAY_MTU = 1500;
const VXLAN_OVERHEAD = 50;
/** Placements with addresses per transaction: two puts and a compare each, within etcd's 128 operations. */
const PLACE_CHUNK = 40;
/** Blocks leased in one transaction: a compare and a put each, within etcd's 128 operations. */
const LEASE_CHUNK = 64;
/** Guarded transactions in flight at once: thousands at once would outrun etcd's deadline. */
const GUARDED_IN_FLIGHT = 8;
/** How often a placement is re-planned after losing a race to another manager before it gives up (503). */
const MAX_RACES = 5;

export interface ClusterNetwork {
  spec: ClusterNetworkSpec;
  created: string;
  ipam: NetworkIpam;
}

/** A container's address on a cluster network. */
export interface Address {
  network: string;
  ip: string;
}

/** What a create asks of the cluster networks: the network, and a fixed address (`--ip`) if any. */
export interface AddressRequest {
  network: ClusterNetwork;
  ip?: string;
}

const blockKey = (net: string, start: number) => `blocks/${net}/${intToIp(start)}`;
const ipKey = (net: string, ip: string) => `ips/${net}/${ip}`;
const placementKey = (id: string) => `placements/${id}`;

/** Addresses chosen in memory, and the blocks leased for them (in memory until `lease` wrote them). */
interface Plan {
  picked: NewPlacement[];
  blocks: Array<{ net: ClusterNetwork; start: number; node: string }>;
}

export class ClusterNetworking {
  readonly pool: Cidr;
  private readonly byId = new Map<string, ClusterNetwork>();
  /** Container id → its address (from the placements). */
  readonly addrs = new Map<string, Address>();
  /** Told when a node leased blocks (peers to send). */
  onLease?: (network: ClusterNetwork, node: string) => void;
  /** Told when the set of networks changed (the `networks` message to send). */
  onChange?: () => void;

  constructor(
    private readonly store: ClusterStore,
    readonly cfg: NetworkConfig,
  ) {
    this.pool = checkNetworkConfig(cfg);
  }

  /** The networks, blocks and addresses as etcd has them (`placements`: as the manager read them), replacing what memory had. */
  async load(placements: Map<string, Placement>): Promise<void> {
    this.byId.clear();
    this.addrs.clear();
    for (const [id, rec] of await this.store.readAll<ClusterNetworkSpec & { created: string }>('networks/')) {
      const { created, ...spec } = rec;
      this.byId.set(id, { spec, created, ipam: new NetworkIpam(spec.subnet, this.blockPrefixFor(spec.subnet)) });
    }
    for (const [key, b] of await this.store.readAll<{ node: string }>('blocks/')) {
      const [net, start] = key.split('/');
      this.byId.get(net!)?.ipam.lease(ipToInt(start!), b.node);
    }
    // an address's key and its placement are written and deleted together: the placements say which are taken
    for (const [id, p] of placements) {
      if (!p.network || !p.ip) continue;
      this.addrs.set(id, { network: p.network, ip: p.ip });
      this.byId.get(p.network)?.ipam.take(ipToInt(p.ip));
    }
  }

  /** The default network, made by the first manager to lead. */
  async ensureDefault(): Promise<void> {
    if (!this.find(DEFAULT_NETWORK)) await this.create({ name: DEFAULT_NETWORK, size: defaultNetworkPrefix(this.cfg) });
  }

  /** A subnet smaller than the configured block is one block. */
  private blockPrefixFor(subnet: string): number {
    return Math.max(this.cfg.blockSize, parseCidr(subnet).prefix);
  }

  list(): ClusterNetwork[] {
    return [...this.byId.values()].sort((a, b) => a.spec.name.localeCompare(b.spec.name));
  }

  specs(): ClusterNetworkSpec[] {
    return this.list().map((n) => n.spec);
  }

  /** By id, name, or a unique id prefix (Docker's order). */
  find(ref: string): ClusterNetwork | undefined {
    const byId = this.byId.get(ref);
    if (byId) return byId;
    const byName = this.list().find((n) => n.spec.name === ref);
    if (byName) return byName;
    const hits = /^[a-f0-9]+$/.test(ref) ? [...this.byId.values()].filter((n) => n.spec.id.startsWith(ref)) : [];
    if (hits.length > 1) throw invalid(`network ${ref} is ambiguous (${hits.length} matches found based on ID prefix)`);
    return hits[0];
  }

  get(ref: string): ClusterNetwork {
    const n = this.find(ref);
    if (!n) throw notFound(`network ${ref} not found`);
    return n;
  }

  /** `size`: the prefix length of a network made without `subnet` (else the configured `networkSize`). */
  async create(o: { name: string; subnet?: string; size?: number; routing?: 'host-gw' | 'vxlan'; internal?: boolean; labels?: Record<string, string> }): Promise<ClusterNetwork> {
    if (this.list().some((n) => n.spec.name === o.name)) throw conflict(`network with name ${o.name} already exists`);
    const taken = [...this.byId.values()].map((n) => n.ipam.subnet);
    let subnet: Cidr;
    if (o.subnet) {
      subnet = parseCidr(o.subnet);
      if (!contains(this.pool, subnet)) throw invalid(`subnet ${o.subnet} is not within the cluster pool ${cidrText(this.pool)}`);
      const other = [...this.byId.values()].find((n) => overlaps(n.ipam.subnet, subnet));
      if (other) throw invalid(`subnet ${o.subnet} overlaps network ${other.spec.name} (${other.spec.subnet})`);
      if (subnet.prefix > 30) throw invalid(`subnet ${o.subnet} is too small: at most /30`);
    } else {
      const prefix = o.size ?? this.cfg.networkSize;
      const size = 2 ** (32 - prefix);
      let found: Cidr | undefined;
      for (let s = this.pool.start; s + size <= this.pool.start + cidrSize(this.pool) && !found; s += size) {
        const c = { start: s, prefix };
        if (!taken.some((t) => overlaps(t, c))) found = c;
      }
      if (!found) throw conflict(`the cluster pool ${cidrText(this.pool)} is exhausted: no /${prefix} left for network ${o.name} (remove a network, or pass --subnet)`);
      subnet = found;
    }
    const vnis = new Set([...this.byId.values()].map((n) => n.spec.vni));
    let vni = FIRST_VNI;
    while (vnis.has(vni)) vni++;
    const routing = o.routing ?? this.cfg.routing;
    const spec: ClusterNetworkSpec = {
      id: newId(), name: o.name, subnet: cidrText(subnet), routing, vni, mtu: routing === 'vxlan' ? UNDERLAY_MTU - VXLAN_OVERHEAD : UNDERLAY_MTU,
      internal: !!o.internal, labels: o.labels ?? {},
    };
    const created = new Date().toISOString();
    const net: ClusterNetwork = { spec, created, ipam: new NetworkIpam(spec.subnet, this.blockPrefixFor(spec.subnet)) };
    // the name is checked in memory: one manager writes at a time (the leader's guard)
    this.byId.set(spec.id, net);
    try {
      await this.store.write([{ put: `networks/${spec.id}`, value: { ...spec, created } }]);
    } catch (err) {
      this.byId.delete(spec.id);
      throw err;
    }
    this.onChange?.();
    return net;
  }

  /** Containers on a network (their ids), from the placements. */
  containersOn(net: ClusterNetwork): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    for (const [id, a] of this.addrs) if (a.network === net.spec.id) out.push([id, a.ip]);
    return out;
  }

  async remove(ref: string): Promise<void> {
    const net = this.get(ref);
    if (this.containersOn(net).length) throw conflict(`error while removing network: network ${net.spec.name} id ${net.spec.id} has active endpoints`);
    const ops: Op[] = [...net.ipam.blocks.keys()].map((b) => ({ del: blockKey(net.spec.id, b) }));
    ops.push({ del: `networks/${net.spec.id}` });
    await this.store.write(ops);
    this.byId.delete(net.spec.id);
    this.onChange?.();
  }

  /**
   * The cluster network of a create (Docker's body), or none (host, none, bridge, an engine's own network): no
   * network or `default` is the default network; a fixed address from EndpointsConfig's IPAMConfig.
   */
  request(body: Record<string, unknown>): AddressRequest | undefined {
    const hc = (body.HostConfig ?? {}) as { NetworkMode?: string };
    const mode = hc.NetworkMode || 'default';
    const net = mode === 'default' ? this.find(DEFAULT_NETWORK) : this.findExact(mode);
    if (!net) return undefined;
    const ep = this.endpoint(body, net, mode);
    const ip = ep?.IPAMConfig?.IPv4Address;
    if (ip) net.ipam.checkAddress(ip);
    return { network: net, ...(ip && { ip }) };
  }

  /** A network mode names a cluster network by its name or full id only (an engine's network may share a prefix). */
  private findExact(ref: string): ClusterNetwork | undefined {
    return this.byId.get(ref) ?? this.list().find((n) => n.spec.name === ref);
  }

  private endpoint(body: Record<string, unknown>, net: ClusterNetwork, mode: string): { IPAMConfig?: { IPv4Address?: string } } | undefined {
    const eps = ((body.NetworkingConfig ?? {}) as { EndpointsConfig?: Record<string, { IPAMConfig?: { IPv4Address?: string } }> }).EndpointsConfig ?? {};
    return eps[net.spec.name] ?? eps[net.spec.id] ?? eps[mode];
  }

  /** The body the engine gets: the network by name and the manager's address for it. */
  engineBody(body: Record<string, unknown>, addr: Address): Record<string, unknown> {
    const net = this.byId.get(addr.network)!;
    const mode = ((body.HostConfig ?? {}) as { NetworkMode?: string }).NetworkMode || 'default';
    const ep = this.endpoint(body, net, mode) ?? {};
    return {
      ...body,
      HostConfig: { ...(body.HostConfig as object), NetworkMode: net.spec.name },
      NetworkingConfig: { EndpointsConfig: { [net.spec.name]: { ...ep, IPAMConfig: { ...ep.IPAMConfig, IPv4Address: addr.ip } } } },
    };
  }

  /** The node holding the block of a fixed address (taken anywhere is Docker's 409). */
  holderOf(r: AddressRequest): string | undefined {
    return r.ip ? r.network.ipam.holderOf(r.ip).node : undefined;
  }

  /**
   * Addresses for new placements (those with `net`), written with the placements: each chunk one transaction that
   * holds only if its addresses' keys are absent. Blocks a node needs are leased first, each in its own
   * transaction. An exhausted network is a 409 with nothing written; a lost race is planned again.
   */
  async place(ps: NewPlacement[], races = 0): Promise<void> {
    const plan = this.plan(ps);
    let raced: Array<{ net: ClusterNetwork; start: number; holder: string }>;
    try {
      raced = await this.lease(plan);
    } catch (err) {
      this.undo(plan);
      throw err;
    }
    if (raced.length) {
      this.undo(plan);
      for (const r of raced) r.net.ipam.lease(r.start, r.holder);
      if (races >= MAX_RACES) throw unavailable('cluster IPAM: lost the race for blocks to another manager too often; try again');
      return this.place(ps, races + 1);
    }
    const failed: NewPlacement[] = [];
    await eachLimited(chunked(ps, PLACE_CHUNK), GUARDED_IN_FLIGHT, async (chunk) => {
      const absent = chunk.map((p) => ipKey(p.net!.network, p.net!.ip!));
      const ops: Op[] = chunk.flatMap((p) => {
        const old = this.addrs.get(p.id);
        return [
          { put: placementKey(p.id), value: placementRecord(p) },
          { put: ipKey(p.net!.network, p.net!.ip!), value: { container: p.id } },
          ...(old ? [{ del: ipKey(old.network, old.ip) }] : []),
        ];
      });
      let ok: boolean;
      try {
        ok = await this.store.writeIfAbsent(absent, ops);
      } catch (err) {
        for (const p of chunk) this.unpick(p);
        throw err;
      }
      if (ok) {
        for (const p of chunk) {
          const old = this.addrs.get(p.id);
          if (old) this.byId.get(old.network)?.ipam.release(ipToInt(old.ip));
          this.addrs.set(p.id, { network: p.net!.network, ip: p.net!.ip! });
        }
        return;
      }
      // another manager took some of these addresses: they stay taken here, the others are chosen again
      const taken = await this.store.existing(absent);
      const lost = chunk.find((p) => p.net!.want && taken.has(ipKey(p.net!.network, p.net!.ip!)));
      for (const p of chunk) {
        if (!taken.has(ipKey(p.net!.network, p.net!.ip!))) this.unpick(p);
        delete p.net!.ip;
        failed.push(p);
      }
      if (lost) throw conflict(`Address already in use: ${lost.net!.want}`);
    });
    if (!failed.length) return;
    if (races >= MAX_RACES) throw unavailable('cluster IPAM: lost the race for addresses to another manager too often; try again');
    return this.place(failed, races + 1);
  }

  /** Chooses in memory: each placement's address, and the blocks nodes must lease for them (all or none). */
  private plan(ps: NewPlacement[]): Plan {
    const plan: Plan = { picked: [], blocks: [] };
    try {
      for (const p of ps) {
        const net = this.get(p.net!.network);
        const node = p.node.rec.id;
        if (p.net!.want) {
          const { addr, node: holder } = net.ipam.holderOf(p.net!.want);
          if (holder !== undefined && holder !== node) throw conflict(`Address already in use: ${p.net!.want} is in a block of another node`);
          if (holder === undefined) {
            net.ipam.lease(net.ipam.blockOf(addr), node);
            plan.blocks.push({ net, start: net.ipam.blockOf(addr), node });
          }
          net.ipam.take(addr);
          p.net!.ip = p.net!.want;
        } else {
          let addr = net.ipam.pick(node);
          if (addr === undefined) {
            const start = net.ipam.freeBlock();
            if (start === undefined) throw conflict(`no available IPv4 addresses on network ${net.spec.name} (${net.spec.subnet}): all its blocks are leased and full`);
            net.ipam.lease(start, node);
            plan.blocks.push({ net, start, node });
            addr = net.ipam.pick(node)!;
          }
          p.net!.ip = intToIp(addr);
        }
        plan.picked.push(p);
      }
    } catch (err) {
      this.undo(plan);
      throw err;
    }
    return plan;
  }

  private unpick(p: NewPlacement): void {
    if (p.net?.ip) this.byId.get(p.net.network)?.ipam.release(ipToInt(p.net.ip));
  }

  private undo(plan: Plan): void {
    for (const p of plan.picked) {
      this.unpick(p);
      delete p.net!.ip;
    }
    for (const b of plan.blocks) b.net.ipam.unlease(b.start);
  }

  /**
   * Leases the plan's blocks, each only if its key is absent. Those leased leave the plan (they stay the node's, it
   * will fill them); those another manager took meanwhile are returned with their holder.
   */
  private async lease(plan: Plan): Promise<Array<{ net: ClusterNetwork; start: number; holder: string }>> {
    const one = async (b: Plan['blocks'][number]): Promise<string | undefined> => {
      const key = blockKey(b.net.spec.id, b.start);
      if (await this.store.writeIfAbsent([key], [{ put: key, value: { node: b.node, cidr: b.net.ipam.blockCidr(b.start) } }])) return undefined;
      return (await this.store.readOne<{ node: string }>(key))?.node ?? '?';
    };
    // many blocks in a transaction (a batch over thousands of hosts leases thousands); a chunk that lost a race
    // is taken block by block, to learn which were taken and by whom
    const results: Array<PromiseSettledResult<string | undefined>> = [];
    await eachLimited(chunked(plan.blocks.map((b, i) => ({ b, i })), LEASE_CHUNK), GUARDED_IN_FLIGHT, async (chunk) => {
      try {
        const keys = chunk.map(({ b }) => blockKey(b.net.spec.id, b.start));
        const ok = await this.store.writeIfAbsent(keys, chunk.map(({ b }, k) => ({ put: keys[k]!, value: { node: b.node, cidr: b.net.ipam.blockCidr(b.start) } })));
        if (ok) {
          for (const { i } of chunk) results[i] = { status: 'fulfilled', value: undefined };
          return;
        }
      } catch (err) {
        for (const { i } of chunk) results[i] = { status: 'rejected', reason: err };
        return;
      }
      const each = await Promise.allSettled(chunk.map(({ b }) => one(b)));
      chunk.forEach(({ i }, k) => (results[i] = each[k]!));
    });
    const raced: Array<{ net: ClusterNetwork; start: number; holder: string }> = [];
    const announced = new Set<string>();
    const pending = plan.blocks;
    plan.blocks = [];
    results.forEach((r, i) => {
      const b = pending[i]!;
      if (r.status === 'fulfilled' && r.value === undefined) {
        if (!announced.has(`${b.net.spec.id}/${b.node}`)) this.onLease?.(b.net, b.node);
        announced.add(`${b.net.spec.id}/${b.node}`);
        return;
      }
      plan.blocks.push(b);
      if (r.status === 'fulfilled') raced.push({ net: b.net, start: b.start, holder: r.value! });
    });
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    return raced;
  }

  /** The ops deleting containers' placements and their address keys (one write: one transaction per 128). */
  unplaceOps(ids: string[]): Op[] {
    return ids.flatMap((id): Op[] => {
      const a = this.addrs.get(id);
      return [{ del: placementKey(id) }, ...(a ? [{ del: ipKey(a.network, a.ip) }] : [])];
    });
  }

  /** After those ops landed: the addresses are free. */
  released(ids: string[]): void {
    for (const id of ids) {
      const a = this.addrs.get(id);
      if (!a) continue;
      this.addrs.delete(id);
      this.byId.get(a.network)?.ipam.release(ipToInt(a.ip));
    }
  }

  /** A removed node's blocks: their keys (deleted with its placements) and, once deleted, gone from memory. */
  blockOps(node: string): Op[] {
    return [...this.byId.values()].flatMap((n) => (n.ipam.byNode.get(node) ?? []).map((b): Op => ({ del: blockKey(n.spec.id, b) })));
  }

  forgetNode(node: string): ClusterNetwork[] {
    const held: ClusterNetwork[] = [];
    for (const n of this.byId.values()) {
      const blocks = n.ipam.byNode.get(node);
      if (!blocks) continue;
      held.push(n);
      for (const b of [...blocks]) n.ipam.unlease(b);
    }
    return held;
  }
}

function placementRecord(p: NewPlacement): Placement {
  return { node: p.node.rec.id, ...(p.name && { name: p.name }), ...(p.batch && { batch: p.batch }), ...(p.net?.ip && { network: p.net.network, ip: p.net.ip }) };
}

/** `fn` over each item, at most `cap` at once. */
async function eachLimited<T>(items: T[], cap: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(cap, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

function chunked<T>(a: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < a.length; i += size) out.push(a.slice(i, i + size));
  return out;
}
