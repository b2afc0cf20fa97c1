/**
 * The node protocol between an engine and a cluster manager: one WebSocket per engine per manager, opened by the
 * engine, JSON text messages. Engine → manager: `hello`, then a full `containers` snapshot, then `heartbeat`s and
 * container `event`s. Manager → engine: `welcome` (or a close with a reason). The manager never polls an engine:
 * what it knows of a node's containers is what the node last reported.
 */
import type { StatusFacts } from './container-status.js';
import type { ContainerSummary } from './docker-types.js';

export const NODE_PROTOCOL_VERSION = 1;
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

/** A container changed (`summary`), or is gone (no summary: destroy). */
export interface ContainerEventMessage {
  type: 'event';
  action: string;
  id: string;
  summary?: ReportedContainer;
}

export type EngineMessage = HelloMessage | ContainersMessage | HeartbeatMessage | ContainerEventMessage;

export interface WelcomeMessage {
  type: 'welcome';
  nodeId: string;
  heartbeatMs: number;
}

export type ManagerMessage = WelcomeMessage;

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
