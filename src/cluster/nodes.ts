/**
 * The manager's node endpoint: engines connect (WebSocket over a unix socket, or loopback TCP), say hello with the
 * join token, report their containers and heartbeat. A node is `down` once it missed 3 heartbeats; its containers
 * stay listed. Only state transitions reach etcd, never heartbeats. Joins and leaves cost O(that node).
 */
import http from 'node:http';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { errorMessage, invalid, unavailable } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import {
  CLOSE_BAD_TOKEN, CLOSE_REFUSED, CLOSE_SHUTDOWN, NODE_PROTOCOL_VERSION, parseMessage,
  type EngineMessage, type HelloMessage, type WelcomeMessage,
} from '../lib/node-protocol.js';
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

const HELLO_TIMEOUT_MS = 10_000;
const MISSED_HEARTBEATS = 3;
const CLOSE_GRACE_MS = 2000;

export class NodeRegistry {
  private server?: http.Server;
  private wss?: WebSocketServer;
  private sweeper?: NodeJS.Timeout;
  /** The live connection of each node, by node id. */
  private readonly conns = new Map<string, WebSocket>();
  /** Nodes whose latest record etcd did not take (unreachable): written by `recordPending` once it answers. */
  private readonly unrecorded = new Set<string>();

  constructor(
    private readonly state: ClusterState,
    private readonly store: ClusterStore,
    private readonly log: Logger,
    private readonly heartbeatMs: number,
  ) {}

  /** `unix:///PATH` or `ws://127.0.0.1:PORT`. */
  async listen(addr: string): Promise<void> {
    const server = http.createServer((_req, res) => res.writeHead(426).end('the node endpoint speaks WebSocket\n'));
    this.server = server;
    this.wss = new WebSocketServer({ server, maxPayload: 64 << 20 });
    this.wss.on('connection', (ws) => this.accept(ws));
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
      // the config allows loopback only: the join token must not cross a network in clear
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

  private accept(ws: WebSocket): void {
    let node: NodeEntry | undefined;
    const helloTimer = setTimeout(() => ws.close(CLOSE_REFUSED, 'no hello'), HELLO_TIMEOUT_MS);
    ws.on('error', (err) => this.log.debug({ err: err.message }, 'node connection error'));
    ws.on('close', () => {
      clearTimeout(helloTimer);
      // a node whose connection is gone misses its heartbeats: the sweep marks it down
      if (node && this.conns.get(node.rec.id) === ws) this.conns.delete(node.rec.id);
    });
    ws.on('message', (data) => {
      let m: EngineMessage;
      try {
        m = parseMessage<EngineMessage>(data, ['hello', 'containers', 'heartbeat', 'event']);
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
        void this.hello(ws, m).then((n) => (node = n), (err: unknown) => {
          this.log.warn({ node: m.nodeName, err: errorMessage(err) }, 'join failed');
          ws.close(CLOSE_REFUSED, errorMessage(err).slice(0, 120));
        });
        return;
      }
      node.lastSeen = Date.now();
      if (node.rec.state === 'down') void this.transition(node, 'up');
      if (m.type === 'heartbeat') node.images = m.images;
      else if (m.type === 'containers') this.state.setNodeContainers(node, m.containers);
      else if (m.type === 'event') {
        if (m.summary) this.state.upsert(node, m.summary);
        else this.state.remove(m.id);
      }
    });
  }

  private async hello(ws: WebSocket, m: HelloMessage): Promise<NodeEntry | undefined> {
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
    if (ws.readyState !== ws.OPEN) return undefined;
    const node = this.state.upsertNode(rec);
    this.conns.get(id)?.close(CLOSE_REFUSED, 'replaced by a new connection of the same node');
    this.conns.set(id, ws);
    const welcome: WelcomeMessage = { type: 'welcome', nodeId: id, heartbeatMs: this.heartbeatMs };
    ws.send(JSON.stringify(welcome));
    this.log.info({ node: rec.name, id, api: rec.api, addr: rec.addr, rejoin: !!old }, 'node joined');
    return node;
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
    this.log.info({ node: rec.name, availability: rec.availability, labels: rec.labels }, 'node updated');
    return node;
  }

  private async transition(node: NodeEntry, state: 'up' | 'down'): Promise<void> {
    if (node.rec.state === state) return;
    const rec = { ...node.rec, state };
    node.rec = rec;
    this.log.info({ node: rec.name, state }, `node ${state}`);
    await this.record(rec).catch((err: unknown) => this.log.warn({ node: rec.name, err: errorMessage(err) }, 'could not record the node state'));
  }

  /**
   * A node's record to etcd; while etcd is unreachable, later (`recordPending`): nodes still join, leave and
   * come back meanwhile. Another failure (a refused guard) is thrown.
   */
  private async record(rec: NodeRecord): Promise<void> {
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
      this.conns.get(n.rec.id)?.terminate();
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
