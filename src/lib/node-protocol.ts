/**
 * The node protocol between an engine and a cluster manager: one WebSocket per engine per manager, opened by the
 * engine, JSON text messages. Engine → manager: `hello`, then a full `containers` snapshot, then `heartbeat`s,
 * container `event`s and its `images` whenever they changed. Manager → engine: `welcome` (or a close with a
 * reason), then `command`s, each answered by a `result` carrying the container as it is after the command. The
 * manager never polls an engine: what it knows of a node's containers is what the node last reported, and it drives
 * them over this same connection (no request, no connection per command: the streams — logs, attach, exec — alone
 * go over the engine's Docker API).
 */
import type { StatusFacts } from './container-status.js';
import type { ContainerInspect, ContainerSummary } from './docker-types.js';
import type { ErrorCode } from './errors.js';

export const NODE_PROTOCOL_VERSION = 2;
/** WebSocket close codes of the protocol (4000-4999 are the application's). */
export const CLOSE_BAD_TOKEN = 4001;
export const CLOSE_REFUSED = 4002;
export const CLOSE_SHUTDOWN = 4003;

export interface NodeCapacity {
  ncpu: number;
  memTotal: number;
}

export interface HelloMessage {
  type: 'hello';
  protocol: number;
  token: string;
  nodeName: string;
  labels: Record<string, string>;
  /** The engine's persistent id (its info's ID): a node that rejoins is the same node. */
  engineId: string;
  /** Where the manager reaches the engine's Docker API (unix:///… or tcp://…). */
  api: string;
  /** The host's IP. */
  addr: string;
  capacity: NodeCapacity;
  version: string;
}

/** What a container reserves of its node: memory in bytes, CPUs in billionths. */
export interface Reservation {
  memory: number;
  nanoCpus: number;
}

/**
 * A container as a node reports it: its summary, the facts its status text is made of (the manager words it when
 * listed) and what it reserves (the scheduler's capacity filter).
 */
export type ReportedContainer = ContainerSummary & { Facts: StatusFacts; Reserved: Reservation };

export interface ContainersMessage {
  type: 'containers';
  containers: ReportedContainer[];
}

export interface HeartbeatMessage {
  type: 'heartbeat';
  /** Images on the engine (the cluster's info sums them). */
  images: number;
}

/** An image on a node: what image affinities match. */
export interface NodeImage {
  Id: string;
  RepoTags: string[];
}

/** The node's images, in full: after each welcome, then only when they changed (the scheduler's image affinity). */
export interface ImagesMessage {
  type: 'images';
  images: NodeImage[];
}

/** A container changed (`summary`), or is gone (no summary: destroy). */
export interface ContainerEventMessage {
  type: 'event';
  action: string;
  id: string;
  summary?: ReportedContainer;
}

/** A command's answer: `container` is the container after the command (null: it is gone), `error` a typed error. */
export interface ResultMessage {
  type: 'result';
  seq: number;
  value?: unknown;
  container?: ReportedContainer | null;
  error?: { code: ErrorCode; message: string };
}

/**
 * A cluster network as every engine sees it (the manager's record in etcd). Its subnet is cut into blocks that hosts
 * lease; in each block the first address is the block's own (the holding host's VTEP with vxlan), the second the
 * host's gateway on the network's bridge, the last is not used, and
 * the manager hands out the others to containers.
 */
export interface ClusterNetworkSpec {
  id: string;
  name: string;
  subnet: string;
  routing: 'host-gw' | 'vxlan';
  /** The VXLAN id (vxlan routing), unique per network. */
  vni: number;
  /** The containers' MTU (the underlay's less VXLAN's 50 bytes with vxlan). */
  mtu: number;
  internal: boolean;
  labels: Record<string, string>;
}

/** One host's part of a cluster network: its blocks and where they are reached. */
export interface NetworkPeer {
  node: string;
  network: string;
  /** The host's address: host-gw's next hop, vxlan's underlay destination. */
  addr: string;
  blocks: string[];
  /** Its VXLAN device's MAC, once it reported it (vxlan routing). */
  vtepMac?: string;
}

/**
 * After (re)setting up a cluster network on this host: its VTEP's MAC (vxlan), or why it failed (the node is then
 * `degraded` for that network; the others are unaffected).
 */
export interface NetworkStateMessage {
  type: 'netstate';
  network: string;
  vtepMac?: string;
  error?: string;
}

/** The engine's embedded DNS asks for a name on a cluster network: the manager knows the whole network. */
export interface ResolveMessage {
  type: 'resolve';
  seq: number;
  network: string;
  name: string;
}

export type EngineMessage =
  | HelloMessage | ContainersMessage | HeartbeatMessage | ImagesMessage | ContainerEventMessage | ResultMessage | NetworkStateMessage | ResolveMessage;

export interface WelcomeMessage {
  type: 'welcome';
  nodeId: string;
  heartbeatMs: number;
}

type Query = { t?: number; signal?: string };
/**
 * What the manager asks of an engine, with the Docker API's meaning. `create` takes the id the manager chose (its
 * placement is in etcd before the engine is told); a create of an id the engine already has answers that container,
 * so a command repeated after a lost answer creates nothing twice.
 */
export interface Commands {
  create: { args: { id: string; name?: string; body: Record<string, unknown>; start?: boolean }; value: { Id: string; Warnings: string[] } };
  inspect: { args: { id: string; size?: boolean }; value: ContainerInspect };
  start: { args: { id: string }; value: undefined };
  stop: { args: { id: string } & Query; value: undefined };
  restart: { args: { id: string } & Query; value: undefined };
  kill: { args: { id: string; signal?: string }; value: undefined };
  pause: { args: { id: string }; value: undefined };
  unpause: { args: { id: string }; value: undefined };
  rename: { args: { id: string; name: string }; value: undefined };
  update: { args: { id: string; body: Record<string, unknown> }; value: { Warnings: string[] } };
  remove: { args: { id: string; force?: boolean; volumes?: boolean }; value: undefined };
}
export type CommandOp = keyof Commands;
export const COMMAND_OPS: readonly CommandOp[] = ['create', 'inspect', 'start', 'stop', 'restart', 'kill', 'pause', 'unpause', 'rename', 'update', 'remove'];

export interface CommandMessage<K extends CommandOp = CommandOp> {
  type: 'command';
  seq: number;
  op: K;
  args: Commands[K]['args'];
}

/** The cluster networks, in full: after each welcome, and whenever one is created or removed. */
export interface NetworksMessage {
  type: 'networks';
  networks: ClusterNetworkSpec[];
}

/**
 * Where the hosts' blocks are: `full` (after each welcome) replaces what the engine had; otherwise changes. It
 * includes the receiving node's own entries (its blocks). Sent only for networks on which the receiving node holds
 * a block, so a host with no container on a network carries none of its routes.
 */
export interface PeersMessage {
  type: 'peers';
  full: boolean;
  set: NetworkPeer[];
  remove: Array<{ node: string; network: string }>;
}

/** A `resolve`'s answer: the addresses of the running (and, with a health check, healthy) containers of that name. */
export interface ResolvedMessage {
  type: 'resolved';
  seq: number;
  ips: string[];
}

export type ManagerMessage = WelcomeMessage | CommandMessage | NetworksMessage | PeersMessage | ResolvedMessage;

/** A message as received: parsed, and its type checked; anything else is a protocol error. */
export function parseMessage<T extends { type: string }>(data: unknown, types: readonly T['type'][]): T {
  const text = Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data as Buffer[]).toString('utf8') : String(data);
  const m = JSON.parse(text) as { type?: unknown };
  if (!m || typeof m !== 'object' || typeof m.type !== 'string' || !types.includes(m.type)) throw new Error(`unexpected node protocol message: ${text.slice(0, 80)}`);
  return m as T;
}

/** A node endpoint's address: a unix socket, plain WebSocket on loopback only (the join token would cross a network in clear), or wss:// (mutual TLS). */
export const NODE_ENDPOINT = /^(unix:\/\/\/.+|ws:\/\/(127\.0\.0\.1|localhost|\[::1\]):\d+\/?|wss:\/\/[^/]+:\d+\/?)$/;

/** The address of a manager's node endpoint as `ws` dials it: `unix:///path` → `ws+unix:///path:/`, ws:// and wss:// as they are. */
export function nodeDialUrl(join: string): string {
  if (!NODE_ENDPOINT.test(join)) throw new Error(`--join ${join}: use unix:///PATH, ws://127.0.0.1:PORT, or wss://HOST:PORT (mutual TLS) for a manager off this host`);
  return join.startsWith('unix://') ? `ws+unix://${join.slice(7)}:/` : join;
}
