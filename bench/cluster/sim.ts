/**
 * N simulated engines in one process, for bench/cluster/run.sh: each speaks the real node protocol over its own
 * WebSocket to a real manager (hello, snapshot, heartbeats at the interval the manager asks, container events) and
 * answers the manager's commands (create, start, inspect, stop, kill, remove) like an engine, with a configurable
 * start latency. (The streams — logs, attach, exec — that the manager asks over an engine's Docker API are not
 * simulated: the benchmark does not use them.)
 *
 * A process holds at most as many engines as it may open files (20,000 here): more run as several simulators, each
 * with its `--first` engine number, usually each joined through its own node relay (`sampan cluster relay`).
 *
 * The cluster networks' `peers` (each holder's routes to the others) are not applied, but counted: messages, bytes
 * and when the last arrived; the first PEER_SAMPLE engines parse them (their entries counted) and keep what they were told, so /count shows
 * whether each ended up knowing every holder (the route fan-out's cost and its time to settle).
 *
 * A control API on --ctl (a unix socket) serves the counts (`GET /count?prefix=P`: replicas on the engines, the
 * names held twice; `GET /names?prefix=P`: those names, for counting over several simulators) and churn (`POST /churn?fraction=F&downMs=MS`: that share of the engines hang up and rejoin).
 *
 * Usage: node dist/bench/cluster/sim.js --join unix:///PATH --token T --engines N [--first K] --containers C --start-latency MS --ctl PATH
 */
import http from 'node:http';
import { promises as fs } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import {
  NODE_PROTOCOL_VERSION, nodeDialUrl, parseMessage, type CommandMessage, type EngineMessage, type ManagerMessage, type ReportedContainer, type ResultMessage,
} from '../../src/lib/node-protocol.js';

const { values: o } = parseArgs({
  options: {
    join: { type: 'string' },
    token: { type: 'string' },
    engines: { type: 'string', default: '1000' },
    first: { type: 'string', default: '0' },
    containers: { type: 'string', default: '0' },
    'start-latency': { type: 'string', default: '50' },
    ctl: { type: 'string' },
  },
});
if (!o.join || !o.token || !o.ctl) throw new Error('--join, --token and --ctl are required');
const ENGINES = Number(o.engines);
const START_LATENCY_MS = Number(o['start-latency']);
const url = nodeDialUrl(o.join);
const BACKOFF_MIN_MS = 200;
const BACKOFF_MAX_MS = 10_000;
const IMAGE_ID = `sha256:${'0'.repeat(64)}`;

interface SimContainer {
  id: string;
  name: string;
  image: string;
  created: number;
  state: 'created' | 'running' | 'exited';
  startedAt: string;
  labels: Record<string, string>;
  memory: number;
  nanoCpus: number;
}

/** The i-th engine's loopback address: 127.1.0.1 onwards (127.0.0.1 stays the manager's). */
const addrOf = (i: number) => `127.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;

const summary = (c: SimContainer): ReportedContainer => ({
  Id: c.id, Names: [`/${c.name}`], Image: c.image, ImageID: IMAGE_ID, Command: 'sleep infinity', Created: c.created, Ports: [], Labels: c.labels,
  State: c.state, Status: '', HostConfig: { NetworkMode: 'bridge' }, NetworkSettings: { Networks: {} }, Mounts: [],
  Facts: { Status: c.state, StartedAt: c.startedAt, FinishedAt: '0001-01-01T00:00:00Z', ExitCode: 0, HasBeenStarted: c.state === 'running' },
  Reserved: { memory: c.memory, nanoCpus: c.nanoCpus },
});

/** What the engines were told in `peers`, all together. */
const peerStats = { messages: 0, entries: 0, bytes: 0, last: 0 };
const PEER_SAMPLE = 16;
const PEERS_HEAD = Buffer.from('{"type":"peers"');

class SimEngine {
  /** The first PEER_SAMPLE engines: network → the holders they were told of. */
  readonly known?: Map<string, Set<string>>;
  readonly containers = new Map<string, SimContainer>();
  readonly engineId = randomBytes(16).toString('hex');
  private ws?: WebSocket;
  welcomed = false;
  private down = false;
  private attempt = 0;
  private heartbeat?: NodeJS.Timeout;

  constructor(readonly index: number, initial: number, sampled = false) {
    if (sampled) this.known = new Map();
    for (let k = 0; k < initial; k++) this.add(`sim${index}-c${k}`, 'busybox', {}, 0, 0).state = 'running';
  }

  add(name: string, image: string, labels: Record<string, string>, memory: number, nanoCpus: number, id = randomBytes(32).toString('hex')): SimContainer {
    const c: SimContainer = { id, name, image, created: Math.floor(Date.now() / 1000), state: 'created', startedAt: '0001-01-01T00:00:00Z', labels, memory, nanoCpus };
    this.containers.set(c.id, c);
    return c;
  }

  find(ref: string): SimContainer | undefined {
    const byId = this.containers.get(ref);
    if (byId) return byId;
    for (const c of this.containers.values()) if (c.name === ref || c.id.startsWith(ref)) return c;
    return undefined;
  }

  send(m: EngineMessage): void {
    if (this.ws?.readyState === WebSocket.OPEN && (this.welcomed || m.type === 'hello')) this.ws.send(JSON.stringify(m));
  }

  connect(): void {
    if (this.down) return;
    const ws = new WebSocket(url);
    this.ws = ws;
    this.welcomed = false;
    ws.on('open', () => this.send({
      type: 'hello', protocol: NODE_PROTOCOL_VERSION, token: o.token!, nodeName: `sim${this.index}`, labels: {}, engineId: this.engineId,
      api: `tcp://${addrOf(this.index)}:2375`, addr: addrOf(this.index), capacity: { ncpu: 2, memTotal: 8 * 2 ** 30 }, version: 'sim',
    }));
    ws.on('message', (data) => {
      // `peers` are counted, and parsed only by the sampled engines: thousands of hosts' lists are gigabytes of
      // JSON that a real engine parses a megabyte of, and one process parsing them all would measure itself
      const raw = Buffer.isBuffer(data) ? data : undefined;
      if (raw && !this.known && raw.subarray(0, PEERS_HEAD.length).equals(PEERS_HEAD)) {
        peerStats.messages++;
        peerStats.bytes += raw.length;
        peerStats.last = Date.now();
        return;
      }
      const m = parseMessage<ManagerMessage>(data, ['welcome', 'command', 'networks', 'peers']);
      if (m.type === 'peers') {
        peerStats.messages++;
        peerStats.entries += m.set.length + m.remove.length;
        peerStats.bytes += raw?.length ?? 0;
        peerStats.last = Date.now();
        if (!this.known) return;
        if (m.full) this.known.clear();
        for (const r of m.remove) this.known.get(r.network)?.delete(r.node);
        for (const p of m.set) {
          if (!this.known.has(p.network)) this.known.set(p.network, new Set());
          this.known.get(p.network)!.add(p.node);
        }
        return;
      }
      if (m.type === 'command') {
        void this.run(m).then((r) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(r)));
        return;
      }
      if (m.type !== 'welcome') return; // a simulated host has no data plane: networks and peers are not applied
      this.attempt = 0;
      this.welcomed = true;
      this.send({ type: 'containers', containers: [...this.containers.values()].map(summary) });
      const beat = () => this.send({ type: 'heartbeat', images: 1 });
      beat();
      clearInterval(this.heartbeat);
      this.heartbeat = setInterval(beat, m.heartbeatMs);
    });
    ws.on('error', () => undefined);
    ws.on('close', () => {
      clearInterval(this.heartbeat);
      this.welcomed = false;
      if (this.down) return;
      // the agent's backoff: full jitter
      const ms = Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt++);
      setTimeout(() => this.connect(), ms);
    });
  }

  /** A manager's command, as the engine's agent answers it: no events for what the command changed, the result says it. */
  private async run(m: CommandMessage): Promise<ResultMessage> {
    const a = m.args as { id: string; name?: string; body?: Record<string, unknown>; start?: boolean };
    const fail = (code: 'NOT_FOUND' | 'CONFLICT' | 'NOT_IMPLEMENTED', message: string): ResultMessage => ({ type: 'result', seq: m.seq, error: { code, message } });
    let c = this.containers.get(a.id);
    let value: unknown;
    if (m.op === 'create' && !c) {
      const name = a.name ?? randomBytes(6).toString('hex');
      if (this.find(name)) return fail('CONFLICT', `Conflict. The container name "/${name}" is already in use`);
      const b = a.body ?? {};
      const hc = (b.HostConfig ?? {}) as { Memory?: number; NanoCpus?: number };
      c = this.add(name, String(b.Image), (b.Labels ?? {}) as Record<string, string>, hc.Memory ?? 0, hc.NanoCpus ?? 0, a.id);
      value = { Id: c.id, Warnings: [] };
    }
    if (!c) return fail('NOT_FOUND', `No such container: ${a.id}`);
    if ((m.op === 'create' && a.start) || m.op === 'start' || m.op === 'restart') {
      await new Promise((r) => setTimeout(r, START_LATENCY_MS));
      c.state = 'running';
      c.startedAt = new Date().toISOString();
    } else if (m.op === 'stop' || m.op === 'kill') {
      c.state = 'exited';
    } else if (m.op === 'remove') {
      this.containers.delete(c.id);
      return { type: 'result', seq: m.seq, container: null };
    } else if (m.op === 'inspect') value = inspect(c);
    else if (m.op !== 'create') return fail('NOT_IMPLEMENTED', `the simulator does not do ${m.op}`);
    return { type: 'result', seq: m.seq, value, container: summary(c) };
  }

  /** The host goes away (its connection dropped) and comes back after `ms`. */
  bounce(ms: number): void {
    this.down = true;
    this.ws?.terminate();
    setTimeout(() => {
      this.down = false;
      this.connect();
    }, ms);
  }
}

const engines = Array.from({ length: ENGINES }, (_, i) => new SimEngine(Number(o.first) + i, Number(o.containers), i < PEER_SAMPLE));

function reply(res: http.ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) }).end(text);
}

function inspect(c: SimContainer): object {
  return {
    Id: c.id, Name: `/${c.name}`, Created: new Date(c.created * 1000).toISOString(), Path: 'sleep', Args: ['infinity'], Image: IMAGE_ID,
    State: { Status: c.state, Running: c.state === 'running', Paused: false, Restarting: false, OOMKilled: false, Dead: false, Pid: 0, ExitCode: 0, Error: '', StartedAt: c.startedAt, FinishedAt: '0001-01-01T00:00:00Z' },
    Config: { Image: c.image, Labels: c.labels, Cmd: ['sleep', 'infinity'] }, HostConfig: { Memory: c.memory, NanoCpus: c.nanoCpus, NetworkMode: 'bridge' },
    NetworkSettings: { Networks: {} }, Mounts: [],
  };
}

/** Replicas named PREFIX-n across the engines: how many, how many distinct names, how many running. */
function count(prefix: string): object {
  const names = new Map<string, number>();
  let running = 0;
  for (const e of engines) for (const c of e.containers.values()) {
    if (!c.name.startsWith(`${prefix}-`)) continue;
    names.set(c.name, (names.get(c.name) ?? 0) + 1);
    if (c.state === 'running') running++;
  }
  let total = 0;
  let duplicated = 0;
  for (const n of names.values()) {
    total += n;
    if (n > 1) duplicated++;
  }
  // the sampled engines that were told of any peer: the fewest and most holders one knows (equal once settled)
  const told = engines.filter((e) => e.known?.size).map((e) => [...e.known!.values()].reduce((k, set) => k + set.size, 0));
  return {
    total, distinct: names.size, duplicated, running, joined: engines.filter((e) => e.welcomed).length, containers: engines.reduce((s, e) => s + e.containers.size, 0),
    peerMsgs: peerStats.messages, peerEntries: peerStats.entries, peerBytes: peerStats.bytes, peerLast: peerStats.last,
    ...(told.length && { peerSampleMin: Math.min(...told), peerSampleMax: Math.max(...told) }),
  };
}

function control(req: http.IncomingMessage, res: http.ServerResponse): void {
  const u = new URL(req.url ?? '/', 'http://x');
  if (u.pathname === '/count') return reply(res, 200, count(u.searchParams.get('prefix') ?? ''));
  if (u.pathname === '/names') {
    const prefix = `${u.searchParams.get('prefix') ?? ''}-`;
    const out: Array<[string, boolean]> = [];
    for (const e of engines) for (const c of e.containers.values()) if (c.name.startsWith(prefix)) out.push([c.name, c.state === 'running']);
    return reply(res, 200, out);
  }
  if (req.method === 'POST' && u.pathname === '/churn') {
    const n = Math.round(ENGINES * Number(u.searchParams.get('fraction') ?? 0.1));
    const start = Math.floor(Math.random() * ENGINES);
    for (let k = 0; k < n; k++) engines[(start + k) % ENGINES]!.bounce(Number(u.searchParams.get('downMs') ?? 5000));
    return reply(res, 200, { dropped: n });
  }
  reply(res, 404, { message: 'GET /count?prefix=P | GET /names?prefix=P | POST /churn?fraction=F&downMs=MS' });
}

await fs.rm(o.ctl, { force: true });
const ctl = http.createServer(control);
await new Promise<void>((r) => ctl.listen(o.ctl, r));
// all engines dial at once, as engines do when a manager comes up; a refused dial retries with the agent's backoff
for (const e of engines) e.connect();
process.stderr.write(`sim: ${ENGINES} engines dialing ${o.join}, control on ${o.ctl}\n`);
const stop = () => process.exit(0);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
