/**
 * What the manager knows in memory, indexed so that no query walks the cluster: nodes by id and name; containers
 * by full id, id prefix (buckets by the first PREFIX_LEN hex digits), name, node, label and published host port;
 * placements (which node owns a container the manager created); each node's images by ref. Containers and images
 * come from the nodes' reports (a snapshot replaces a node's set: O(that node)); names being created are held so
 * that a name stays unique cluster-wide while its create is in flight.
 */
import type { NodeImage, ReportedContainer, Reservation } from '../lib/node-protocol.js';
import { conflict, invalid, notFound } from '../lib/errors.js';
import { isPattern, matcher, type HostPort, type Holders, type Rule } from './scheduler.js';
import type { NodeRecord } from './store.js';

export interface NodeEntry {
  rec: NodeRecord;
  lastSeen: number;
  containers: Set<string>;
  /** Images on the node, as its last heartbeat said. */
  images: number;
  /** The refs its images answer to (ids, short ids, tags, `NAME` for `NAME:latest`), as it last reported them. */
  imageRefs: Set<string>;
  /** What its containers reserve, summed. */
  reserved: Reservation;
  /** Creates placed on it whose answer has not come yet: the scheduler counts them as containers. */
  pending: number;
}

/** A container to create where the scheduler put it, with the id the manager chose (its placement in etcd). */
export interface NewPlacement {
  id: string;
  node: NodeEntry;
  name?: string;
  batch?: string;
  /** Its cluster network (id), the address asked for (`--ip`), and the one it got once placed. */
  net?: { network: string; want?: string; ip?: string };
}

export interface ContainerEntry {
  summary: ReportedContainer;
  node: NodeEntry;
}

const nameOf = (s: ReportedContainer) => (s.Names[0] ?? '').replace(/^\//, '');

/** 4,096 buckets: about 25 ids each at 100,000 containers; a shorter prefix (rare) reads the buckets it spans. */
const PREFIX_LEN = 3;

function addTo(index: Map<string, Set<string>>, key: string, id: string): void {
  let set = index.get(key);
  if (!set) index.set(key, (set = new Set()));
  set.add(id);
}

function deleteFrom(index: Map<string, Set<string>>, key: string, id: string): void {
  const set = index.get(key);
  set?.delete(id);
  if (set?.size === 0) index.delete(key);
}

const portKey = (port: number, proto: string) => `${port}/${proto}`;
/** The host ports a container publishes, as keys of the port index. */
const published = (s: ReportedContainer) => (s.Ports ?? []).flatMap((p) => (p.PublicPort ? [portKey(p.PublicPort, p.Type)] : []));
/** Two bindings of one port clash unless both name an address, and different ones. */
const clash = (a: string | undefined, b: string) => !a || a === '0.0.0.0' || a === '::' || !b || a === b;

/** The scheduler's view of what the nodes hold (Holders), answered from the indexes. */
export class ClusterState implements Holders {
  readonly nodes = new Map<string, NodeEntry>();
  private readonly nodesByName = new Map<string, NodeEntry>();
  private readonly containers = new Map<string, ContainerEntry>();
  private readonly buckets = new Map<string, Set<string>>();
  /** Container id → the node id its placement names (the containers the manager created, as etcd has them). */
  readonly placed = new Map<string, string>();
  private readonly byName = new Map<string, string>();
  private readonly byLabel = new Map<string, Set<string>>();
  private readonly byPort = new Map<string, Set<string>>();
  /** Names whose create is in flight, to the node chosen. */
  private readonly pending = new Set<string>();
  /** Told of each container change, as it was and as it is (undefined: absent): the service registry's feed. O(1). */
  onChange?: (before: ContainerEntry | undefined, after: ContainerEntry | undefined) => void;
  /** Told when a node joins, goes down or up, is edited (availability, labels) or is removed: global services follow. */
  onNodeChange?: (node: NodeEntry) => void;

  get containerCount(): number {
    return this.containers.size;
  }

  node(ref: string): NodeEntry | undefined {
    return this.nodes.get(ref) ?? this.nodesByName.get(ref);
  }

  /** A node by id or name; unknown is a 404 naming it. */
  getNode(ref: string): NodeEntry {
    const n = this.node(ref);
    if (!n) throw notFound(`No such node: ${ref}`);
    return n;
  }

  /** A node (re)joins or changes state: its entry keeps its containers. */
  upsertNode(rec: NodeRecord, now = Date.now()): NodeEntry {
    let e = this.nodes.get(rec.id);
    if (e) {
      if (e.rec.name !== rec.name) this.nodesByName.delete(e.rec.name);
      e.rec = rec;
      e.lastSeen = now;
    } else {
      e = { rec, lastSeen: now, containers: new Set(), images: 0, imageRefs: new Set(), reserved: { memory: 0, nanoCpus: 0 }, pending: 0 };
      this.nodes.set(rec.id, e);
    }
    this.nodesByName.set(rec.name, e);
    this.onNodeChange?.(e);
    return e;
  }

  /** A node removed from the cluster, with what it reported. */
  dropNode(node: NodeEntry): void {
    for (const id of [...node.containers]) this.remove(id, node);
    this.nodes.delete(node.rec.id);
    if (this.nodesByName.get(node.rec.name) === node) this.nodesByName.delete(node.rec.name);
    this.onNodeChange?.(node);
  }

  /** A node's full report: what it no longer has goes, the rest is replaced. */
  setNodeContainers(node: NodeEntry, list: ReportedContainer[]): void {
    const keep = new Set(list.map((s) => s.Id));
    for (const id of [...node.containers]) if (!keep.has(id)) this.remove(id);
    for (const s of list) this.upsert(node, s);
  }

  /** A node's images as it reported them: its refs replaced, O(its images). */
  setNodeImages(node: NodeEntry, images: NodeImage[]): void {
    node.imageRefs = new Set();
    for (const img of images) {
      const hex = img.Id.replace(/^sha256:/, '');
      for (const r of [img.Id, hex, hex.slice(0, 12)]) node.imageRefs.add(r);
      for (const t of img.RepoTags ?? []) {
        node.imageRefs.add(t);
        if (t.endsWith(':latest')) node.imageRefs.add(t.slice(0, -7));
      }
    }
  }

  upsert(node: NodeEntry, s: ReportedContainer): void {
    const old = this.containers.get(s.Id);
    if (old) this.unindex(old);
    // a container that moved (a node re-reported what another had) leaves the other's set
    if (old && old.node !== node) old.node.containers.delete(s.Id);
    if (!old) {
      const b = s.Id.slice(0, PREFIX_LEN);
      let set = this.buckets.get(b);
      if (!set) this.buckets.set(b, (set = new Set()));
      set.add(s.Id);
    }
    const e = { summary: s, node };
    this.containers.set(s.Id, e);
    node.containers.add(s.Id);
    node.reserved.memory += s.Reserved.memory;
    node.reserved.nanoCpus += s.Reserved.nanoCpus;
    this.byName.set(nameOf(s), s.Id);
    for (const [k, v] of Object.entries(s.Labels ?? {})) for (const key of [k, `${k}=${v}`]) addTo(this.byLabel, key, s.Id);
    for (const key of published(s)) addTo(this.byPort, key, s.Id);
    this.onChange?.(old, e);
  }

  /** A node went down or came back: each of its containers is a change to those told (O(that node)). */
  nodeChanged(node: NodeEntry): void {
    for (const id of node.containers) {
      const e = this.containers.get(id)!;
      this.onChange?.(e, e);
    }
    this.onNodeChange?.(node);
  }

  /** A node's availability or labels were edited: no container changed, what may run there did. */
  nodeEdited(node: NodeEntry): void {
    this.onNodeChange?.(node);
  }

  /** With `from`, only that node's copy: a replica retried elsewhere keeps its id, and its orphan goes alone. */
  remove(id: string, from?: NodeEntry): void {
    const e = this.containers.get(id);
    if (!e || (from && e.node !== from)) return;
    this.unindex(e);
    this.containers.delete(id);
    e.node.containers.delete(id);
    const b = this.buckets.get(id.slice(0, PREFIX_LEN));
    b?.delete(id);
    if (b?.size === 0) this.buckets.delete(id.slice(0, PREFIX_LEN));
    this.onChange?.(e, undefined);
  }

  private unindex(e: ContainerEntry): void {
    const id = e.summary.Id;
    e.node.reserved.memory -= e.summary.Reserved.memory;
    e.node.reserved.nanoCpus -= e.summary.Reserved.nanoCpus;
    const name = nameOf(e.summary);
    if (this.byName.get(name) === id) this.byName.delete(name);
    for (const [k, v] of Object.entries(e.summary.Labels ?? {})) for (const key of [k, `${k}=${v}`]) deleteFrom(this.byLabel, key, id);
    for (const key of published(e.summary)) deleteFrom(this.byPort, key, id);
  }

  /** Ids starting with `prefix`, in order. */
  withPrefix(prefix: string): string[] {
    const out: string[] = [];
    const head = prefix.slice(0, PREFIX_LEN);
    for (const [b, ids] of head.length === PREFIX_LEN ? [[head, this.buckets.get(head) ?? new Set<string>()] as const] : this.buckets) {
      if (b.startsWith(head)) for (const id of ids) if (id.startsWith(prefix)) out.push(id);
    }
    return out.sort();
  }

  /**
   * Whether a node may hold a container it reports: not when the manager placed that container on another node
   * (a replica retried elsewhere while this node was out of reach; the node's copy is an orphan to remove).
   */
  owns(node: NodeEntry, id: string): boolean {
    const p = this.placed.get(id);
    return p === undefined || p === node.rec.id;
  }

  /** Docker's lookup order: full id, name (also Swarm's NODE/NAME), then a unique id prefix. */
  find(ref: string): ContainerEntry | undefined {
    const direct = this.containers.get(ref);
    if (direct) return direct;
    const name = ref.replace(/^\//, '');
    const byName = this.byName.get(name);
    if (byName) return this.containers.get(byName);
    const slash = name.indexOf('/');
    if (slash > 0) {
      const e = this.containers.get(this.byName.get(name.slice(slash + 1)) ?? '');
      if (e && e.node.rec.name === name.slice(0, slash)) return e;
    }
    if (/^[a-f0-9]+$/.test(ref)) {
      const hits = this.withPrefix(ref);
      if (hits.length > 1) throw invalid(`multiple IDs found with provided prefix: ${ref}`);
      if (hits.length === 1) return this.containers.get(hits[0]!);
    }
    return undefined;
  }

  get(ref: string): ContainerEntry {
    const e = this.find(ref);
    if (!e) throw notFound(`No such container: ${ref}`);
    return e;
  }

  all(): IterableIterator<ContainerEntry> {
    return this.containers.values();
  }

  /** Containers carrying a label (`k` or `k=v`). */
  withLabel(key: string): Set<string> {
    return this.byLabel.get(key) ?? new Set();
  }

  affinity(a: Rule): Set<string> {
    const out = new Set<string>();
    const match = matcher(a.value);
    const addNodeOf = (ids: Iterable<string>, test: (e: ContainerEntry) => boolean = () => true) => {
      for (const id of ids) {
        const e = this.containers.get(id);
        if (e && test(e)) out.add(e.node.rec.id);
      }
    };
    if (a.key === 'image') {
      for (const n of this.nodes.values()) if (isPattern(a.value) ? [...n.imageRefs].some(match) : n.imageRefs.has(a.value)) out.add(n.rec.id);
    } else if (a.key === 'container') {
      // a plain value is Docker's lookup (id, name, unique id prefix); a pattern is tried on every name and id
      if (!isPattern(a.value)) addNodeOf([this.find(a.value)?.summary.Id ?? '']);
      else addNodeOf(this.containers.keys(), (e) => match(e.summary.Id) || match(nameOf(e.summary)));
    } else if (!isPattern(a.value)) addNodeOf(this.withLabel(`${a.key}=${a.value}`));
    else addNodeOf(this.withLabel(a.key), (e) => match(e.summary.Labels[a.key]));
    return out;
  }

  port(p: HostPort): Set<string> {
    const out = new Set<string>();
    for (const id of this.byPort.get(portKey(p.port, p.proto)) ?? []) {
      const e = this.containers.get(id)!;
      if (e.summary.Ports.some((q) => q.PublicPort === p.port && q.Type === p.proto && clash(q.IP, p.ip))) out.add(e.node.rec.id);
    }
    return out;
  }

  entry(id: string): ContainerEntry | undefined {
    return this.containers.get(id);
  }

  /** Holds a name for a create in flight; a name in use or held is Docker's 409. */
  reserveName(name: string): void {
    const existing = this.byName.get(name);
    if (existing || this.pending.has(name)) {
      throw conflict(`Conflict. The container name "/${name}" is already in use by container "${existing ?? 'being created'}". You have to remove (or rename) that container to be able to reuse that name.`);
    }
    this.pending.add(name);
  }

  releaseName(name: string): void {
    this.pending.delete(name);
  }
}
