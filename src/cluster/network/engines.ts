/**
 * What the engines are told of the cluster networks, and what they tell back. `networks` (the full set) goes to
 * every engine at each change and after each welcome, then `peers {full}` with the hosts of every network where
 * that node holds a block. When nodes lease blocks, the holders of those networks get the changed entries, and a
 * node holding its first block of a network gets that network's whole list. `netstate`: a VTEP's MAC (passed on in
 * `peers`) or an error (the node is degraded for that network, the others are not). Also node removal, which frees
 * what the node held.
 *
 * Every holder needs every other holder's blocks (a route each), so what crosses the wire grows as N² when N hosts
 * join a network at once; what the manager holds must not. Changes are gathered over FLUSH_MS, and each payload is
 * serialized once and the same bytes handed to every engine that gets it (the changed entries to the holders that
 * have the list, the whole list to those that do not), so a flush holds two payloads per network, not one per
 * holder; the whole list a welcome sends is kept serialized until the network changes. An engine that reads slower
 * than it is told (more than BEHIND_BYTES queued on its connection) gets no more changes: it is sent the whole list
 * once it has caught up, so what waits for it is bounded and the changes it missed are not sent one by one. And whole
 * lists go out paced, WHOLE_BYTES_PER_FLUSH a flush: the holders past it wait for the next flush, as if behind.
 */
import { conflict } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import type { ManagerMessage, NetworkPeer, NetworkStateMessage, PeersMessage } from '../../lib/node-protocol.js';
import type { ClusterState, NodeEntry } from '../state.js';
import type { ClusterStore } from '../store.js';
import type { ClusterNetwork, ClusterNetworking } from './networks.js';

/** How long changes are gathered before the holders are told: well within the second routes may take to appear. */
export const FLUSH_MS = 50;
/** Queued on an engine's connection past this, it is behind: changes wait, and it gets the whole list when it drained. */
const BEHIND_BYTES = 1 << 20;
/**
 * Whole lists sent in one flush, at most (bytes; at least one list): N hosts new to a network at once are N lists of
 * N entries, so they go out paced (32 MiB every FLUSH_MS is 640 MB/s, more than a 1 Gbit/s link), the others told
 * at the next flushes, rather than gigabytes queued at once.
 */
export const WHOLE_BYTES_PER_FLUSH = 32 << 20;

export interface EngineLink {
  send(nodeId: string, m: ManagerMessage): void;
  /** A message serialized once: the same bytes go to many engines (not a copy each). */
  sendEncoded(nodeId: string, data: Buffer): void;
  /** Bytes queued on the node's connection, not yet written (0 when it has none). */
  buffered(nodeId: string): number;
  broadcast(m: ManagerMessage): void;
  drop(nodeId: string): void;
}

const encode = (m: PeersMessage): Buffer => Buffer.from(JSON.stringify(m));
const EMPTY_FULL = encode({ type: 'peers', full: true, set: [], remove: [] });

export class NetworkSync {
  /** `NET/NODE` → the VTEP MAC the node reported for that network. */
  private readonly vteps = new Map<string, string>();
  /** Node → network name → why its setup failed. */
  readonly degraded = new Map<string, Record<string, string>>();
  /** Network id → nodes that have its whole list (since their last welcome). */
  private readonly told = new Map<string, Set<string>>();
  /** Gathered until the flush: network id → nodes whose entry changed. */
  private dirty = new Map<string, Set<string>>();
  /** Gathered until the flush: network id → nodes removed from the cluster. */
  private removed = new Map<string, Set<string>>();
  /** Network id → holders that were behind at a flush: they get the whole list once they caught up. */
  private behind = new Map<string, Set<string>>();
  /** Network id → its whole list as a welcome sends it (`full`), serialized; dropped when the network changes. */
  private readonly fullCache = new Map<string, Buffer>();
  /** The address each node's entries were last sent with: a host that rejoins from a new address is announced again. */
  private readonly sentAddr = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private waiters: Array<() => void> = [];

  constructor(
    private readonly nets: ClusterNetworking,
    private readonly state: ClusterState,
    private readonly store: ClusterStore,
    private readonly link: EngineLink,
    private readonly log: Logger,
    private readonly wholeBytesPerFlush = WHOLE_BYTES_PER_FLUSH,
  ) {
    nets.onLease = (net, node) => this.changed(net.spec.id, node);
    nets.onChange = () => {
      this.fullCache.clear();
      link.broadcast({ type: 'networks', networks: nets.specs() });
    };
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
    this.fullCache.delete(network);
    let set = this.dirty.get(network);
    if (!set) this.dirty.set(network, (set = new Set()));
    set.add(node);
    this.flushSoon();
  }

  private flushSoon(): void {
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, FLUSH_MS);
  }

  /** Resolves once what was gathered so far has been sent. */
  settled(): Promise<void> {
    if (!this.timer) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * Per changed network (or with holders behind): one payload of the changes to the holders that have its list, one
   * of the whole list to the others; holders behind get neither until they caught up.
   */
  private flush(): void {
    const dirty = this.dirty;
    const removed = this.removed;
    const behind = this.behind;
    this.dirty = new Map();
    this.removed = new Map();
    this.behind = new Map();
    let wholeBytes = 0;
    const defer = (id: string, holder: string) => {
      let b = this.behind.get(id);
      if (!b) this.behind.set(id, (b = new Set()));
      b.add(holder);
    };
    for (const id of new Set([...dirty.keys(), ...removed.keys(), ...behind.keys()])) {
      const net = this.nets.find(id);
      if (!net) continue;
      const gone = [...(removed.get(id) ?? [])].map((node) => ({ node, network: id }));
      const changedPeers = [...(dirty.get(id) ?? [])].filter((n) => net.ipam.byNode.has(n)).map((n) => this.peer(net, n));
      let told = this.told.get(id);
      if (!told) this.told.set(id, (told = new Set()));
      let delta: Buffer | undefined;
      let whole: Buffer | undefined;
      const late = behind.get(id);
      const holders = dirty.has(id) || removed.has(id) ? net.ipam.byNode.keys() : (late ?? new Set<string>()).values();
      for (const holder of holders) {
        if (!net.ipam.byNode.has(holder)) continue;
        if (this.link.buffered(holder) > BEHIND_BYTES) {
          told.delete(holder);
          defer(id, holder);
          continue;
        }
        if (told.has(holder)) {
          if (changedPeers.length || gone.length) this.link.sendEncoded(holder, (delta ??= encode({ type: 'peers', full: false, set: changedPeers, remove: gone })));
          continue;
        }
        if (wholeBytes >= this.wholeBytesPerFlush) {
          defer(id, holder);
          continue;
        }
        whole ??= encode({ type: 'peers', full: false, set: this.peersOf(net), remove: gone });
        this.link.sendEncoded(holder, whole);
        wholeBytes += whole.length;
        told.add(holder);
      }
    }
    // those behind are looked at again: what they missed is one whole list, whenever they drained
    if (this.behind.size) this.flushSoon();
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** After a welcome: the networks, then the peers of each network where the node holds a block. */
  welcome(node: NodeEntry): void {
    const id = node.rec.id;
    this.link.send(id, { type: 'networks', networks: this.nets.specs() });
    const moved = this.sentAddr.has(id) && this.sentAddr.get(id) !== node.rec.addr;
    this.sentAddr.set(id, node.rec.addr);
    const held = this.nets.list().filter((net) => net.ipam.byNode.has(id));
    for (const net of held) {
      let told = this.told.get(net.spec.id);
      if (!told) this.told.set(net.spec.id, (told = new Set()));
      told.add(id);
      if (moved) this.changed(net.spec.id, id);
    }
    if (!held.length) return this.link.sendEncoded(id, EMPTY_FULL);
    // most hosts are on one network: its list, serialized once for all the hosts that (re)join
    if (held.length === 1) {
      const net = held[0]!;
      let data = this.fullCache.get(net.spec.id);
      if (!data) this.fullCache.set(net.spec.id, (data = encode({ type: 'peers', full: true, set: this.peersOf(net), remove: [] })));
      return this.link.sendEncoded(id, data);
    }
    this.link.sendEncoded(id, encode({ type: 'peers', full: true, set: held.flatMap((net) => this.peersOf(net)), remove: [] }));
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
      this.fullCache.delete(net.spec.id);
      let gone = this.removed.get(net.spec.id);
      if (!gone) this.removed.set(net.spec.id, (gone = new Set()));
      gone.add(id);
    }
    this.flushSoon();
    this.degraded.delete(id);
    this.sentAddr.delete(id);
    this.link.drop(id);
    this.state.dropNode(node);
    this.log.info({ node: node.rec.name, id, placements: placed.length, force }, 'node removed from the cluster');
  }
}
