/**
 * The manager's node endpoint: engines connect (WebSocket over a unix socket, or loopback TCP), say hello with the
 * join token, report their containers and heartbeat, and take commands on the same connection. A node is `down`
 * once it missed 3 heartbeats; its containers stay listed. Only state transitions reach etcd, never heartbeats.
 * Joins and leaves cost O(that node).
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { WebSocketServer } from 'ws';
import { errorMessage, invalid, SampanError, unavailable } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { mtlsServerOptions, type TlsPaths } from '../lib/tls.js';
import {
  CLOSE_BAD_TOKEN, CLOSE_REFUSED, CLOSE_SHUTDOWN, NODE_PROTOCOL_VERSION, parseMessage,
  type CommandMessage, type CommandOp, type Commands, type EngineMessage, type HelloMessage, type ManagerMessage, type NetworkStateMessage, type ReportedContainer, type ResolvedMessage, type ResultMessage, type WelcomeMessage,
} from '../lib/node-protocol.js';
import { RELAY_PATH, serveRelayLink, type NodeSocket } from './relay-link.js';
import type { ClusterState, NodeEntry } from './state.js';
import { UNREACHABLE } from './store-health.js';
import type { Availability, ClusterStore, NodeRecord } from './store.js';

export interface NodeUpdate {
  labelAdd?: Record<string, string>;
  labelRm?: string[];
  availability?: Availability;
}

/** Labels with `sampan node update`'s edits applied (null removes). */
export function withEdits(labels: Record<string, string>, edits: Record<string, string | null> | undefined): Record<string, string> {
  const out = { ...labels };
  for (const [k, v] of Object.entries(edits ?? {})) {
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return out;
}

/** `PATCH /sampan/v1/nodes/{id}`'s body. */
export function validateNodeUpdate(b: unknown): NodeUpdate {
  const u = (b ?? {}) as Record<string, unknown>;
  const unknownKeys = Object.keys(u).filter((k) => !['labelAdd', 'labelRm', 'availability'].includes(k));
  if (unknownKeys.length) throw invalid(`node update: unknown field ${unknownKeys.join(', ')}`);
  if (u.labelAdd !== undefined && (typeof u.labelAdd !== 'object' || u.labelAdd === null || Object.values(u.labelAdd).some((v) => typeof v !== 'string'))) {
    throw invalid('node update: "labelAdd" must be an object of string labels');
  }
  if (u.labelRm !== undefined && (!Array.isArray(u.labelRm) || u.labelRm.some((k) => typeof k !== 'string'))) throw invalid('node update: "labelRm" must be an array of label keys');
  if (u.availability !== undefined && u.availability !== 'active' && u.availability !== 'drain') throw invalid('node update: "availability" must be active or drain');
  return u as NodeUpdate;
}

interface Pending {
  id: string;
  op: CommandOp;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/** A node's live connection and the commands it has not answered yet. */
interface Conn {
  ws: NodeSocket;
  pending: Map<number, Pending>;
}

const HELLO_TIMEOUT_MS = 10_000;
const MISSED_HEARTBEATS = 3;
const CLOSE_GRACE_MS = 2000;

export class NodeRegistry {
  private server?: http.Server;
  private wss?: WebSocketServer;
  private sweeper?: NodeJS.Timeout;
  /** The live connection of each node, by node id. */
  private readonly conns = new Map<string, Conn>();
  /** Command numbers are unique over the manager's life: an answer cannot be taken for another command's. */
  private seq = 0;
  /** Nodes whose latest record etcd did not take (unreachable): written by `recordPending` once it answers. */
  private readonly unrecorded = new Set<string>();
  /** Whether this manager leads: a standby indexes what engines report and writes or commands nothing. */
  leading: () => boolean = () => true;
  /** Answers an engine's `resolve` (its embedded DNS asking for a name of a cluster network): the service registry. */
  resolve?: (network: string, name: string) => string[];
  /** After each welcome (the cluster networks and peers to send), and at each `netstate` of a node. */
  onWelcome?: (node: NodeEntry) => void;
  onNetState?: (node: NodeEntry, m: NetworkStateMessage) => void;

  constructor(
    private readonly state: ClusterState,
    private readonly store: ClusterStore,
    private readonly log: Logger,
    private readonly heartbeatMs: number,
  ) {}

  /** `unix:///PATH`, `ws://127.0.0.1:PORT`, or `wss://HOST:PORT` (with `tls`: an engine without a certificate of its CA is refused at the handshake). */
  async listen(addr: string, tls?: TlsPaths): Promise<void> {
    const answer = (_req: http.IncomingMessage, res: http.ServerResponse) => res.writeHead(426).end('the node endpoint speaks WebSocket\n');
    const server = addr.startsWith('wss://') && tls ? https.createServer(await mtlsServerOptions(tls), answer) : http.createServer(answer);
    server.on('tlsClientError', (err: Error, s: Socket) => this.log.warn({ engine: s.remoteAddress, err: err.message.trim() }, 'node endpoint: TLS handshake refused'));
    this.server = server;
    this.wss = new WebSocketServer({ server, maxPayload: 64 << 20 });
    // a relay's link carries many engines' connections, each accepted as an engine's own
    this.wss.on('connection', (ws, req) => {
      if (req.url === RELAY_PATH) {
        this.log.info('node relay connected');
        ws.on('close', () => this.log.info('node relay disconnected'));
        serveRelayLink(ws, (s) => this.accept(s), (err) => this.log.warn({ err: err.message }, 'node relay link error'));
      } else this.accept(ws);
    });
    const listening = new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.once('listening', resolve);
    });
    if (addr.startsWith('unix://')) {
      const p = addr.slice(7);
      await fs.mkdir(path.dirname(p), { recursive: true });
      await fs.rm(p, { force: true });
      server.listen(p);
    } else {
      // plain ws:// is loopback only (the config's check): the join token crosses a network inside TLS only
      const u = new URL(addr);
      server.listen(Number(u.port), u.hostname.replace(/^\[(.*)\]$/, '$1'));
    }
    await listening;
    // past the start, a failing accept (out of file descriptors) is logged; it must not take the manager down
    server.on('error', (err) => this.log.error({ err: err.message }, 'node endpoint error'));
    if (addr.startsWith('unix://')) await fs.chmod(addr.slice(7), 0o660);
    this.sweeper = setInterval(() => void this.sweep(), Math.min(1000, this.heartbeatMs));
    this.log.info({ addr, heartbeatMs: this.heartbeatMs }, 'node endpoint listening');
  }

  private accept(ws: NodeSocket): void {
    let node: NodeEntry | undefined;
    const conn: Conn = { ws, pending: new Map() };
    const helloTimer = setTimeout(() => ws.close(CLOSE_REFUSED, 'no hello'), HELLO_TIMEOUT_MS);
    ws.on('error', (err) => this.log.debug({ err: err.message }, 'node connection error'));
    ws.on('close', () => {
      clearTimeout(helloTimer);
      // a node whose connection is gone misses its heartbeats: the sweep marks it down
      if (node && this.conns.get(node.rec.id) === conn) this.conns.delete(node.rec.id);
      // whether the engine ran them is unknown: the caller decides (a create is repeated under the same id)
      for (const p of conn.pending.values()) p.reject(unavailable(`lost the connection to node ${node?.rec.name ?? '?'} during ${p.op} of ${p.id}`));
      conn.pending.clear();
    });
    ws.on('message', (data) => {
      let m: EngineMessage;
      try {
        m = parseMessage<EngineMessage>(data, ['hello', 'containers', 'heartbeat', 'images', 'event', 'result', 'resolve', 'netstate']);
      } catch (err) {
        this.log.warn({ node: node?.rec.name, err: errorMessage(err) }, 'node protocol error');
        ws.close(CLOSE_REFUSED, 'protocol error');
        return;
      }
      if (!node) {
        if (m.type !== 'hello') {
          ws.close(CLOSE_REFUSED, 'hello first');
          return;
        }
        clearTimeout(helloTimer);
        void this.hello(conn, m).then((n) => (node = n), (err: unknown) => {
          this.log.warn({ node: m.nodeName, err: errorMessage(err) }, 'join failed');
          ws.close(CLOSE_REFUSED, errorMessage(err).slice(0, 120));
        });
        return;
      }
      if (this.state.nodes.get(node.rec.id) !== node) return; // removed from the cluster: its last words are not heard
      node.lastSeen = Date.now();
      if (node.rec.state === 'down') void this.transition(node, 'up');
      if (m.type === 'heartbeat') node.images = m.images;
      else if (m.type === 'images') this.state.setNodeImages(node, m.images);
      else if (m.type === 'containers') this.state.setNodeContainers(node, this.owned(node, m.containers));
      else if (m.type === 'event') {
        if (!m.summary) this.state.remove(m.id, node);
        else if (this.owned(node, [m.summary]).length) this.state.upsert(node, m.summary);
      } else if (m.type === 'result') this.settle(node, conn, m);
      else if (m.type === 'resolve') {
        const ips = typeof m.network === 'string' && typeof m.name === 'string' ? this.resolve?.(m.network, m.name) ?? [] : [];
        ws.send(JSON.stringify({ type: 'resolved', seq: m.seq, ips } satisfies ResolvedMessage));
      }
      else if (m.type === 'netstate') this.onNetState?.(node, m);
    });
  }

  /** What a node reports that is its own; another node's replica (an orphan of a retry) is removed from it. */
  private owned(node: NodeEntry, list: ReportedContainer[]): ReportedContainer[] {
    const out = list.filter((s) => this.state.owns(node, s.Id));
    if (out.length === list.length || !this.leading()) return out;
    for (const s of list) {
      if (this.state.owns(node, s.Id)) continue;
      this.log.warn({ node: node.rec.name, container: s.Id, name: s.Names[0] }, 'removing a replica placed on another node since');
      this.command(node, 'remove', { id: s.Id, force: true, volumes: true }).catch((err: unknown) => this.log.warn({ node: node.rec.name, container: s.Id, err: errorMessage(err) }, 'could not remove an orphaned replica'));
    }
    return out;
  }

  private settle(node: NodeEntry, conn: Conn, m: ResultMessage): void {
    const p = conn.pending.get(m.seq);
    if (!p) return;
    conn.pending.delete(m.seq);
    if (m.error) {
      p.reject(new SampanError(m.error.code, m.error.message));
      return;
    }
    // the container as the command left it: what a `docker ps` right after must see
    if (m.container === null) this.state.remove(p.id, node);
    else if (m.container && this.state.owns(node, m.container.Id)) this.state.upsert(node, m.container);
    p.resolve(m.value);
  }

  connected(node: NodeEntry): boolean {
    return this.conns.get(node.rec.id)?.ws.readyState === 1;
  }

  /** Runs a command on a node over its connection; the container as it left it is in the indexes when this resolves. */
  command<K extends CommandOp>(node: NodeEntry, op: K, args: Commands[K]['args']): Promise<Commands[K]['value']> {
    const conn = this.conns.get(node.rec.id);
    if (!conn || !this.connected(node)) return Promise.reject(unavailable(`node ${node.rec.name} is not connected`));
    const seq = ++this.seq;
    const msg: CommandMessage<K> = { type: 'command', seq, op, args };
    return new Promise((resolve, reject) => {
      conn.pending.set(seq, { id: args.id, op, resolve: resolve as (v: unknown) => void, reject });
      conn.ws.send(JSON.stringify(msg));
    });
  }

  private async hello(conn: Conn, m: HelloMessage): Promise<NodeEntry | undefined> {
    const ws = conn.ws;
    if (!(await this.store.checkToken(m.token))) {
      this.log.warn({ node: m.nodeName, api: m.api }, 'join refused: wrong join token');
      ws.close(CLOSE_BAD_TOKEN, 'wrong join token');
      return undefined;
    }
    if (m.protocol !== NODE_PROTOCOL_VERSION) throw new Error(`node protocol ${m.protocol}: this manager speaks ${NODE_PROTOCOL_VERSION}`);
    const id = m.engineId;
    const same = this.state.node(m.nodeName);
    if (same && same.rec.id !== id && same.rec.state === 'up') throw new Error(`a node named ${m.nodeName} is already in the cluster`);
    const old = this.state.nodes.get(id);
    const rec: NodeRecord = {
      id, name: m.nodeName, labels: withEdits(m.labels, old?.rec.labelEdits), api: m.api, addr: m.addr, capacity: m.capacity, version: m.version,
      joinedAt: old?.rec.joinedAt ?? new Date().toISOString(), state: 'up',
      ...(old?.rec.availability && { availability: old.rec.availability }),
      ...(old?.rec.labelEdits && { labelEdits: old.rec.labelEdits }),
    };
    // written only when something a second manager must know changed, not at every reconnect
    if (!old || JSON.stringify({ ...old.rec, joinedAt: '' }) !== JSON.stringify({ ...rec, joinedAt: '' })) await this.record(rec);
    if (ws.readyState !== 1) return undefined; // the engine left while etcd answered
    const node = this.state.upsertNode(rec);
    this.conns.get(id)?.ws.close(CLOSE_REFUSED, 'replaced by a new connection of the same node');
    this.conns.set(id, conn);
    const welcome: WelcomeMessage = { type: 'welcome', nodeId: id, heartbeatMs: this.heartbeatMs };
    ws.send(JSON.stringify(welcome));
    this.log.info({ node: rec.name, id, api: rec.api, addr: rec.addr, rejoin: !!old }, 'node joined');
    this.onWelcome?.(node);
    return node;
  }

  /** Network state to an engine: from the leader only, a standby's view may be behind (the new leader resends it). */
  send(nodeId: string, m: ManagerMessage): void {
    if (!this.leading()) return;
    const c = this.conns.get(nodeId);
    if (c?.ws.readyState === 1) c.ws.send(JSON.stringify(m));
  }

  /** Serialized once by the caller: the same bytes queue on every connection (a text frame, as `send`'s). */
  sendEncoded(nodeId: string, data: Buffer): void {
    if (!this.leading()) return;
    const c = this.conns.get(nodeId);
    if (c?.ws.readyState === 1) c.ws.send(data, { binary: false });
  }

  buffered(nodeId: string): number {
    const ws = this.conns.get(nodeId)?.ws as { bufferedAmount?: number } | undefined;
    return ws?.bufferedAmount ?? 0;
  }

  broadcast(m: ManagerMessage): void {
    if (!this.leading()) return;
    const text = JSON.stringify(m);
    for (const c of this.conns.values()) if (c.ws.readyState === 1) c.ws.send(text);
  }

  /** A node removed from the cluster: its connection closed (it joins anew if its engine comes back). */
  drop(nodeId: string): void {
    this.conns.get(nodeId)?.ws.close(CLOSE_REFUSED, 'removed from the cluster');
    this.conns.delete(nodeId);
  }

  /** `sampan node update`: written to etcd first, then what the scheduler sees. */
  async update(ref: string, u: NodeUpdate): Promise<NodeEntry> {
    const node = this.state.getNode(ref);
    const edits: Record<string, string | null> = { ...node.rec.labelEdits, ...u.labelAdd };
    for (const k of u.labelRm ?? []) edits[k] = null;
    const change = { labels: withEdits(node.rec.labels, edits), availability: u.availability ?? node.rec.availability ?? 'active', labelEdits: edits };
    const rec: NodeRecord = { ...node.rec, ...change };
    await this.store.putNode(rec);
    // the record may have changed while etcd answered (a state transition): keep that, take the edit
    node.rec = { ...node.rec, ...change };
    this.state.nodeEdited(node);
    this.log.info({ node: rec.name, availability: rec.availability, labels: rec.labels }, 'node updated');
    return node;
  }

  private async transition(node: NodeEntry, state: 'up' | 'down'): Promise<void> {
    if (node.rec.state === state) return;
    const rec = { ...node.rec, state };
    node.rec = rec;
    this.state.nodeChanged(node);
    this.log.info({ node: rec.name, state }, `node ${state}`);
    await this.record(rec).catch((err: unknown) => this.log.warn({ node: rec.name, err: errorMessage(err) }, 'could not record the node state'));
  }

  /**
   * A node's record to etcd; while etcd is unreachable, later (`recordPending`): nodes still join, leave and
   * come back meanwhile. Another failure (a refused guard) is thrown.
   */
  private async record(rec: NodeRecord): Promise<void> {
    // a standby's view of its own connections: written if it becomes the leader (with etcd away, as below)
    if (!this.leading() && this.store.health.up) {
      this.unrecorded.add(rec.id);
      return;
    }
    try {
      // with etcd known away, not even tried: a write to an etcd that hangs holds its caller, and may land later
      if (!this.store.health.up) throw unavailable(UNREACHABLE);
      await this.store.putNode(rec);
    } catch (err) {
      if (this.store.health.up) throw err;
      this.unrecorded.add(rec.id);
      this.log.warn({ node: rec.name, state: rec.state, err: errorMessage(err) }, 'could not record the node state: it is written once etcd answers');
    }
  }

  /** Writes the node states that etcd could not take when they changed, as they are now in memory. */
  async recordPending(): Promise<void> {
    for (const id of [...this.unrecorded]) {
      this.unrecorded.delete(id);
      const n = this.state.nodes.get(id);
      if (!n) continue;
      try {
        await this.record(n.rec);
        if (!this.unrecorded.has(id)) this.log.info({ node: n.rec.name, state: n.rec.state }, 'node state recorded');
      } catch (err) {
        this.log.warn({ node: n.rec.name, err: errorMessage(err) }, 'could not record the node state');
      }
    }
  }

  private async sweep(): Promise<void> {
    const limit = Date.now() - MISSED_HEARTBEATS * this.heartbeatMs;
    for (const n of this.state.nodes.values()) {
      if (n.rec.state !== 'up' || n.lastSeen >= limit) continue;
      this.conns.get(n.rec.id)?.ws.terminate();
      await this.transition(n, 'down');
    }
  }

  get joined(): number {
    return this.conns.size;
  }

  /** Tells every engine (they reconnect to whoever serves next); one that does not hang up in time is cut off. */
  async close(): Promise<void> {
    clearInterval(this.sweeper);
    const clients = [...(this.wss?.clients ?? [])];
    for (const ws of clients) ws.close(CLOSE_SHUTDOWN, 'manager shutting down');
    this.wss?.close();
    const server = this.server;
    if (!server) return;
    const cutOff = setTimeout(() => {
      for (const ws of clients) ws.terminate();
      server.closeAllConnections();
    }, CLOSE_GRACE_MS);
    await new Promise<void>((r) => server.close(() => r()));
    clearTimeout(cutOff);
  }
}
