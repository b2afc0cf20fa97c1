/**
 * What the cluster's backends share: the in-memory state, the store, commands to a node over its connection, a
 * client per node for streams, the scheduler's choice, placements, and the pass-through of streams (the engine's
 * response piped to the client as it comes, no re-framing).
 */
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Output } from '../../docker-api/index.js';
import { EngineClient, type RequestOptions, type TlsFiles } from '../../lib/engine-client.js';
import type { SwarmNode } from '../../lib/docker-types.js';
import type { CommandOp, Commands } from '../../lib/node-protocol.js';
import { notImplemented, unavailable } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import type { ExternalScheduler } from '../external.js';
import type { ClusterNetworking } from '../network/networks.js';
import { filterForBatch, place, type Candidate, type Request, type Strategy } from '../scheduler.js';
import type { ClusterState, ContainerEntry, NewPlacement, NodeEntry } from '../state.js';
import type { ClusterStore } from '../store.js';

/** Runs a command on a node over its node connection (the node registry). */
export interface NodeCommander {
  command<K extends CommandOp>(node: NodeEntry, op: K, args: Commands[K]['args']): Promise<Commands[K]['value']>;
  connected(node: NodeEntry): boolean;
}

export class Cluster {
  private readonly clients = new Map<string, EngineClient>();
  /** Single creates waiting for the next scheduling pass, by request. */
  private readonly waiting = new Map<string, { req: Request; strategy?: Strategy; asks: Array<{ resolve: (n: NodeEntry[]) => void; reject: (err: unknown) => void }> }>();
  /** Told each scheduling pass's duration (seconds) and how many it placed (the manager's metrics). */
  onSchedule?: (seconds: number, placed: number) => void;

  constructor(
    readonly state: ClusterState,
    readonly store: ClusterStore,
    readonly log: Logger,
    private readonly nodes: NodeCommander,
    readonly strategy: Strategy = 'spread',
    private readonly opts: {
      /** When set, it places what passed the filters, instead of the strategy. */
      external?: ExternalScheduler;
      /** The manager's certificate (and the engines' CA) for engines whose API is tcp://: they accept mutual TLS only. */
      engineTls?: TlsFiles;
    } = {},
    /** The cluster networks: placements on them get their addresses. */
    readonly net: ClusterNetworking,
  ) {}

  get external(): ExternalScheduler | undefined {
    return this.opts.external;
  }

  command<K extends CommandOp>(node: NodeEntry, op: K, args: Commands[K]['args']): Promise<Commands[K]['value']> {
    return this.nodes.command(node, op, args);
  }

  connected(node: NodeEntry): boolean {
    return this.nodes.connected(node);
  }

  /**
   * Placements go to etcd before any engine is told; from then on a copy on another node is an orphan. Those on a
   * cluster network get their address in the same transactions.
   */
  async place(ps: NewPlacement[]): Promise<void> {
    const plain = ps.filter((p) => !p.net);
    const addressed = ps.filter((p) => p.net);
    await Promise.all([
      this.store.putPlacements(plain.map((p) => ({ id: p.id, placement: { node: p.node.rec.id, ...(p.name && { name: p.name }), ...(p.batch && { batch: p.batch }) } }))),
      addressed.length ? this.net.place(addressed) : undefined,
    ]);
    for (const p of ps) this.state.placed.set(p.id, p.node.rec.id);
  }

  /** Placements and their addresses deleted together. */
  async unplace(ids: string[]): Promise<void> {
    await this.store.write(this.net.unplaceOps(ids));
    this.net.released(ids);
    for (const id of ids) this.state.placed.delete(id);
  }

  client(node: NodeEntry): EngineClient {
    let c = this.clients.get(node.rec.id);
    if (!c || c.host !== node.rec.api) this.clients.set(node.rec.id, (c = new EngineClient({ host: node.rec.api, tls: this.opts.engineTls })));
    return c;
  }

  /** The engine that owns a container; a down node's containers can be listed, not driven. */
  owner(ref: string): { entry: ContainerEntry; client: EngineClient } {
    const entry = this.state.get(ref);
    if (entry.node.rec.state !== 'up') throw unavailable(`the node ${entry.node.rec.name} of container ${ref} is down`);
    return { entry, client: this.client(entry.node) };
  }

  upNodes(): NodeEntry[] {
    return [...this.state.nodes.values()].filter((n) => n.rec.state === 'up');
  }

  /**
   * The nodes as the scheduler sees them: one that is up but has not reconnected (after a manager restart) takes
   * nothing. With `only`, that node alone (a task pinned to it: no pass over all).
   */
  candidates(only?: string): Candidate[] {
    const nodes = only === undefined ? this.state.nodes.values() : [this.state.nodes.get(only)].filter((n) => n !== undefined);
    return [...nodes].map((n) => ({
      id: n.rec.id, name: n.rec.name, labels: n.rec.labels, up: n.rec.state === 'up' && this.nodes.connected(n), drained: n.rec.availability === 'drain',
      capacity: n.rec.capacity, containers: n.containers.size + n.pending, reserved: n.reserved,
    }));
  }

  /**
   * Nodes for `count` replicas, one scheduling pass: the strategy (the batch's, the request's, the cluster's) or the
   * external scheduler. Each placement counts on its node until `settled`: concurrent creates see each other.
   * Single creates that arrive together share a pass (one per identical request): a pass reads every node, and
   * thousands of creates at once must not read them thousands of times.
   */
  schedule(req: Request, count: number, opts: { exclude?: Set<string>; only?: string; strategy?: Strategy } = {}): Promise<NodeEntry[]> {
    if (count !== 1 || opts.exclude || opts.only !== undefined || this.external) return this.pass(req, count, opts.strategy, opts.exclude, opts.only);
    return new Promise((resolve, reject) => {
      const key = `${opts.strategy ?? ''} ${JSON.stringify(req)}`;
      let group = this.waiting.get(key);
      if (!group) this.waiting.set(key, (group = { req, strategy: opts.strategy, asks: [] }));
      group.asks.push({ resolve, reject });
      if (this.waiting.size === 1 && group.asks.length === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const groups = [...this.waiting.values()];
    this.waiting.clear();
    for (const g of groups) {
      const settle = (nodes: NodeEntry[]) => g.asks.forEach((a, i) => a.resolve([nodes[i]!]));
      this.pass(g.req, g.asks.length, g.strategy).then(settle, () => {
        // the group as a whole did not fit: each create on its own, with its own answer
        for (const a of g.asks) this.pass(g.req, 1, g.strategy).then(a.resolve, a.reject);
      });
    }
  }

  private async pass(req: Request, count: number, strategy?: Strategy, exclude?: Set<string>, only?: string): Promise<NodeEntry[]> {
    const t0 = process.hrtime.bigint();
    const cands = this.candidates(only).filter((c) => !exclude?.has(c.id));
    const chosen = this.external
      ? await this.external.place(req, count, filterForBatch(cands, req, count, this.state))
      : place(cands, req, count, strategy ?? req.strategy ?? this.strategy, { holders: this.state });
    const placed = chosen.map((c) => this.state.nodes.get(c.id)!);
    for (const n of placed) n.pending++;
    this.onSchedule?.(Number(process.hrtime.bigint() - t0) / 1e9, placed.length);
    return placed;
  }

  /** A create placed by `schedule` has its answer (or failed): the container, if any, is in the node's set now. */
  settled(node: NodeEntry): void {
    node.pending = Math.max(0, node.pending - 1);
  }

  /** Swarm classic's `Node` of a container. */
  static swarmNode(n: NodeEntry): SwarmNode {
    return { ID: n.rec.id, Name: n.rec.name, Addr: n.rec.api, IP: n.rec.addr, Labels: n.rec.labels };
  }
}

/** The engine's streamed answer into the Output, with its content type, as it comes. */
export async function passStream(client: EngineClient, method: string, path: string, opts: RequestOptions, out: Output): Promise<void> {
  const res = await client.stream(method, path, opts);
  const onAbort = () => res.destroy();
  out.signal.addEventListener('abort', onAbort, { once: true });
  try {
    // `docker cp` reads the path's stat from a header of the archive's answer
    const stat = res.headers['x-docker-container-path-stat'];
    const w = out.open(String(res.headers['content-type'] ?? 'application/octet-stream'), typeof stat === 'string' ? { 'X-Docker-Container-Path-Stat': stat } : {});
    await pipeline(res, w).catch((err: NodeJS.ErrnoException) => {
      if (!out.signal.aborted && err.code !== 'ERR_STREAM_PREMATURE_CLOSE') throw err;
    });
  } finally {
    out.signal.removeEventListener('abort', onAbort);
  }
}

/** An upgraded connection to the engine joined to the client's both ways, until either side ends. */
export async function passHijack(client: EngineClient, path: string, opts: RequestOptions, out: Output): Promise<void> {
  const { socket, headers } = await client.upgrade('POST', path, opts);
  const down = out.hijack(String(headers['content-type'] ?? 'application/vnd.docker.raw-stream'));
  await new Promise<void>((resolve) => {
    const end = () => {
      socket.destroy();
      resolve();
    };
    socket.on('error', end);
    down.on('error', end);
    socket.once('close', () => {
      down.end();
      resolve();
    });
    down.once('close', end);
    out.signal.addEventListener('abort', end, { once: true });
    socket.pipe(down, { end: true });
    // a plain (not upgraded) answer is write-only: there is no client input to pass up
    if ((down as Duplex).readable) (down as Duplex).pipe(socket);
  });
}

export function notYet(what: string): never {
  throw notImplemented(`${what} is not implemented by the cluster manager yet`);
}
