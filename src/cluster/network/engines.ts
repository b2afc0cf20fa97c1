/**
 * What the engines are told of the cluster networks, and what they tell back. `networks` (the full set) goes to
 * every engine at each change and after each welcome, then `peers {full}` with the hosts of every network where
 * that node holds a block. When nodes lease blocks, the holders of those networks get the changed entries, and a
 * node holding its first block of a network gets that network's whole list; changes are gathered over a tick, so
 * a thousand nodes joining a network at once cost one message per holder, not one per pair. `netstate`: a VTEP's
 * MAC (passed on in `peers`) or an error (the node is degraded for that network, the others are not). Also node
 * removal, which frees what the node held.
 */
import { conflict } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import type { ManagerMessage, NetworkPeer, NetworkStateMessage, PeersMessage } from '../../lib/node-protocol.js';
import type { ClusterState, NodeEntry } from '../state.js';
import type { ClusterStore } from '../store.js';
import type { ClusterNetwork, ClusterNetworking } from './networks.js';

export interface EngineLink {
  send(nodeId: string, m: ManagerMessage): void;
  broadcast(m: ManagerMessage): void;
  drop(nodeId: string): void;
}

export class NetworkSync {
  /** `NET/NODE` → the VTEP MAC the node reported for that network. */
  private readonly vteps = new Map<string, string>();
  /** Node → network name → why its setup failed. */
  readonly degraded = new Map<string, Record<string, string>>();
  /** Network id → nodes that have its whole list (since their last welcome). */
  private readonly told = new Map<string, Set<string>>();
  /** Gathered until the end of the tick: network id → nodes whose entry changed. */
  private dirty = new Map<string, Set<string>>();
  private removed: Array<{ node: string; network: string; to: string[] }> = [];
  /** The address each node's entries were last sent with: a host that rejoins from a new address is announced again. */
  private readonly sentAddr = new Map<string, string>();
  private flushing = false;

  constructor(
    private readonly nets: ClusterNetworking,
    private readonly state: ClusterState,
    private readonly store: ClusterStore,
    private readonly link: EngineLink,
    private readonly log: Logger,
  ) {
    nets.onLease = (net, node) => this.changed(net.spec.id, node);
    nets.onChange = () => link.broadcast({ type: 'networks', networks: nets.specs() });
  }

  private peer(net: ClusterNetwork, node: string): NetworkPeer {
    const mac = this.vteps.get(`${net.spec.id}/${node}`);
    return {
      node, network: net.spec.id, addr: this.state.nodes.get(node)?.rec.addr ?? '',
      blocks: (net.ipam.byNode.get(node) ?? []).map((b) => net.ipam.blockCidr(b)), ...(mac && { vtepMac: mac }),
    };
  }

  private peersOf(net: ClusterNetwork): NetworkPeer[] {
    return [...net.ipam.byNode.keys()].map((n) => this.peer(net, n));
  }

  private changed(network: string, node: string): void {
    let set = this.dirty.get(network);
    if (!set) this.dirty.set(network, (set = new Set()));
    set.add(node);
    this.flushSoon();
  }

  private flushSoon(): void {
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(() => {
      this.flushing = false;
      this.flush();
    });
  }

  /** One `peers` message per node that holds blocks of a changed network, with all that changed for it. */
  private flush(): void {
    const dirty = this.dirty;
    const removed = this.removed;
    this.dirty = new Map();
    this.removed = [];
    const out = new Map<string, PeersMessage>();
    const msg = (node: string) => {
      let m = out.get(node);
      if (!m) out.set(node, (m = { type: 'peers', full: false, set: [], remove: [] }));
      return m;
    };
    for (const [id, nodes] of dirty) {
      const net = this.nets.find(id);
      if (!net) continue;
      const changedPeers = [...nodes].filter((n) => net.ipam.byNode.has(n)).map((n) => this.peer(net, n));
      let told = this.told.get(id);
      if (!told) this.told.set(id, (told = new Set()));
      let all: NetworkPeer[] | undefined;
      for (const holder of net.ipam.byNode.keys()) {
        if (told.has(holder)) msg(holder).set.push(...changedPeers);
        else {
          msg(holder).set.push(...(all ??= this.peersOf(net)));
          told.add(holder);
        }
      }
    }
    for (const r of removed) for (const to of r.to) msg(to).remove.push({ node: r.node, network: r.network });
    for (const [node, m] of out) this.link.send(node, m);
  }

  /** After a welcome: the networks, then the peers of each network where the node holds a block. */
  welcome(node: NodeEntry): void {
    const id = node.rec.id;
    this.link.send(id, { type: 'networks', networks: this.nets.specs() });
    const set: NetworkPeer[] = [];
    const moved = this.sentAddr.has(id) && this.sentAddr.get(id) !== node.rec.addr;
    this.sentAddr.set(id, node.rec.addr);
    for (const net of this.nets.list()) {
      if (!net.ipam.byNode.has(id)) continue;
      set.push(...this.peersOf(net));
      let told = this.told.get(net.spec.id);
      if (!told) this.told.set(net.spec.id, (told = new Set()));
      told.add(id);
      if (moved) this.changed(net.spec.id, id);
    }
    this.link.send(id, { type: 'peers', full: true, set, remove: [] });
  }

  netstate(node: NodeEntry, m: NetworkStateMessage): void {
    const net = this.nets.find(m.network);
    if (!net) return;
    const id = node.rec.id;
    const deg = this.degraded.get(id) ?? {};
    if (m.error) {
      deg[net.spec.name] = m.error;
      this.log.warn({ node: node.rec.name, network: net.spec.name, err: m.error }, 'node degraded on a cluster network');
    } else delete deg[net.spec.name];
    if (Object.keys(deg).length) this.degraded.set(id, deg);
    else this.degraded.delete(id);
    const key = `${net.spec.id}/${id}`;
    if (m.vtepMac && this.vteps.get(key) !== m.vtepMac) {
      this.vteps.set(key, m.vtepMac);
      if (net.ipam.byNode.has(id)) this.changed(net.spec.id, id);
    }
  }

  /**
   * `sampan node rm`: its record, placements (with their addresses) and blocks leave etcd, then memory; the
   * holders of its networks are told. A node that is up is refused unless forced (as `docker node rm`).
   */
  async removeNode(ref: string, force: boolean): Promise<void> {
    const node = this.state.getNode(ref);
    const id = node.rec.id;
    if (node.rec.state === 'up' && !force) throw conflict(`node ${node.rec.name} is not down and can't be removed (use --force)`);
    const placed = [...this.state.placed].filter(([, n]) => n === id).map(([c]) => c);
    await this.store.write([...this.nets.unplaceOps(placed), ...this.nets.blockOps(id), { del: `nodes/${id}` }]);
    this.nets.released(placed);
    for (const c of placed) this.state.placed.delete(c);
    for (const net of this.nets.forgetNode(id)) {
      this.told.get(net.spec.id)?.delete(id);
      this.vteps.delete(`${net.spec.id}/${id}`);
      this.removed.push({ node: id, network: net.spec.id, to: [...net.ipam.byNode.keys()] });
    }
    this.flushSoon();
    this.degraded.delete(id);
    this.sentAddr.delete(id);
    this.link.drop(id);
    this.state.dropNode(node);
    this.log.info({ node: node.rec.name, id, placements: placed.length, force }, 'node removed from the cluster');
  }
}
