/**
 * A stand-in for the manager's node endpoint (src/cluster/nodes.ts) for the engines' data-plane tests: it welcomes
 * every engine, sends it the cluster networks and the peers it is told (again after each welcome, as the manager
 * does), fills in the VTEP MACs the engines report, and runs `command`s on a node. No etcd, no IPAM: the test says
 * which block each host holds and which address each container gets.
 */
import http from 'node:http';
import { promises as fs } from 'node:fs';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  parseMessage, type ClusterNetworkSpec, type CommandOp, type Commands, type EngineMessage, type ManagerMessage, type NetworkPeer, type NetworkStateMessage,
} from '../../src/lib/node-protocol.js';
import type { TestbedComponent } from '../../src/cluster/testbed/testbed.js';
import { until } from '../harness.js';

const TOKEN = 'fake-manager-token';

interface Node {
  ws: WebSocket;
  pending: Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>;
}

export class FakeManager {
  private readonly nodes = new Map<string, Node>();
  private networks: ClusterNetworkSpec[] = [];
  /** Blocks by `${node}|${network}`. */
  private readonly blocks = new Map<string, string[]>();
  private readonly macs = new Map<string, string>();
  /** Each host's address as it last joined: kept while it is away, as the manager keeps a down host's blocks. */
  private readonly addrs = new Map<string, string>();
  readonly netstates: NetworkStateMessage[] = [];
  private seq = 0;

  private constructor(
    readonly socket: string,
    private readonly server: http.Server,
  ) {
    const wss = new WebSocketServer({ server });
    wss.on('connection', (ws) => this.accept(ws));
  }

  static async start(socket: string): Promise<FakeManager> {
    await fs.rm(socket, { force: true });
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    return new FakeManager(socket, server);
  }

  /** The hosts' engines join this fake. */
  readonly engineArgs = (host: string): string[] => ['--join', `unix://${this.socket}`, '--join-token', TOKEN, '--node-name', host];

  /** A testbed component that is ready once every host has joined. */
  component(): TestbedComponent {
    return async (tb) => {
      await until(async () => tb.hosts.every((h) => this.nodes.get(h.name)?.ws.readyState === 1), 60_000, 100);
      return { stop: () => this.stop() };
    };
  }

  private accept(ws: WebSocket): void {
    let name: string | undefined;
    ws.on('message', (data) => {
      const m = parseMessage<EngineMessage>(data, ['hello', 'containers', 'heartbeat', 'images', 'event', 'result', 'netstate']);
      if (m.type === 'hello') {
        if (m.token !== TOKEN) return ws.close(4001, 'bad token');
        name = m.nodeName;
        this.nodes.set(name, { ws, pending: new Map() });
        this.addrs.set(name, m.addr);
        this.send(name, { type: 'welcome', nodeId: `id-${name}`, heartbeatMs: 1000 });
        this.send(name, { type: 'networks', networks: this.networks });
        this.send(name, { type: 'peers', full: true, set: this.peersOf(name), remove: [] });
      } else if (m.type === 'netstate' && name) {
        this.netstates.push(m);
        if (m.vtepMac && this.macs.get(`${name}|${m.network}`) !== m.vtepMac) {
          this.macs.set(`${name}|${m.network}`, m.vtepMac);
          const p = this.peer(name, m.network);
          if (p) for (const other of this.nodes.keys()) if (this.holds(other, m.network)) this.send(other, { type: 'peers', full: false, set: [p], remove: [] });
        }
      } else if (m.type === 'result' && name) {
        const p = this.nodes.get(name)?.pending.get(m.seq);
        if (!p) return;
        if (m.error) p.reject(new Error(`${m.error.code}: ${m.error.message}`));
        else p.resolve(m.value);
      }
    });
    ws.on('close', () => {
      if (name && this.nodes.get(name)?.ws === ws) this.nodes.delete(name);
    });
  }

  private send(node: string, m: ManagerMessage): void {
    const n = this.nodes.get(node);
    if (n?.ws.readyState === 1) n.ws.send(JSON.stringify(m));
  }

  private holds(node: string, network: string): boolean {
    return !!this.blocks.get(`${node}|${network}`)?.length;
  }

  private peer(node: string, network: string): NetworkPeer | undefined {
    const blocks = this.blocks.get(`${node}|${network}`);
    const addr = this.addrs.get(node);
    if (!blocks?.length || !addr) return undefined;
    const vtepMac = this.macs.get(`${node}|${network}`);
    return { node: `id-${node}`, network, addr, blocks, ...(vtepMac ? { vtepMac } : {}) };
  }

  /** What the manager sends a node: the entries of the networks it holds a block of. */
  private peersOf(node: string): NetworkPeer[] {
    const out: NetworkPeer[] = [];
    for (const key of this.blocks.keys()) {
      const [n, net] = key.split('|') as [string, string];
      if (!this.holds(node, net)) continue;
      const p = this.peer(n, net);
      if (p) out.push(p);
    }
    return out;
  }

  setNetworks(networks: ClusterNetworkSpec[]): void {
    this.networks = networks;
    for (const n of this.nodes.keys()) this.send(n, { type: 'networks', networks });
  }

  /** A host now holds these blocks of the network; every node gets its peers in full. */
  setBlocks(node: string, network: string, blocks: string[]): void {
    this.blocks.set(`${node}|${network}`, blocks);
    for (const n of this.nodes.keys()) this.send(n, { type: 'peers', full: true, set: this.peersOf(n), remove: [] });
  }

  /** A host leaves the network: the others are told to remove its entry. */
  removePeer(node: string, network: string): void {
    this.blocks.delete(`${node}|${network}`);
    for (const n of this.nodes.keys()) this.send(n, { type: 'peers', full: false, set: [], remove: [{ node: `id-${node}`, network }] });
  }

  joined(node: string): boolean {
    return this.nodes.get(node)?.ws.readyState === 1;
  }

  command<K extends CommandOp>(node: string, op: K, args: Commands[K]['args']): Promise<Commands[K]['value']> {
    const n = this.nodes.get(node);
    if (!n) return Promise.reject(new Error(`${node} has not joined`));
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      n.pending.set(seq, { resolve: resolve as (v: unknown) => void, reject });
      n.ws.send(JSON.stringify({ type: 'command', seq, op, args }));
    });
  }

  async stop(): Promise<void> {
    for (const n of this.nodes.values()) n.ws.close(4003, 'shutdown');
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await fs.rm(this.socket, { force: true });
  }
}
