/**
 * N simulated engines in one process, for bench/cluster/run.sh: each speaks the real node protocol over its own
 * WebSocket to a real manager (hello, snapshot, heartbeats at the interval the manager asks, container events) and
 * answers the Engine API calls the manager makes of it (create, start, list, inspect, delete), with a configurable
 * start latency. One HTTP server serves every engine's API: engine i is reached at tcp://127.X.Y.Z:PORT (its own
 * loopback address, all of 127.0.0.0/8 being local on Linux), and the request's local address says which engine it
 * is; so N engines cost N node connections, not N listeners.
 *
 * A control API on --ctl (a unix socket) serves the counts (`GET /count?prefix=P`: replicas on the engines, the
 * names held twice) and churn (`POST /churn?fraction=F&downMs=MS`: that share of the engines hang up and rejoin).
 *
 * Usage: node dist/bench/cluster/sim.js --join unix:///PATH --token T --engines N --containers C --start-latency MS --port P --ctl PATH
 */
import http from 'node:http';
import { promises as fs } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { NODE_PROTOCOL_VERSION, nodeDialUrl, parseMessage, type EngineMessage, type ManagerMessage, type ReportedContainer } from '../../src/lib/node-protocol.js';
import type net from 'node:net';

const { values: o } = parseArgs({
  options: {
    join: { type: 'string' },
    token: { type: 'string' },
    engines: { type: 'string', default: '1000' },
    containers: { type: 'string', default: '0' },
    'start-latency': { type: 'string', default: '50' },
    port: { type: 'string', default: '23750' },
    ctl: { type: 'string' },
  },
});
if (!o.join || !o.token || !o.ctl) throw new Error('--join, --token and --ctl are required');
const ENGINES = Number(o.engines);
const START_LATENCY_MS = Number(o['start-latency']);
const PORT = Number(o.port);
const url = nodeDialUrl(o.join);
const BACKOFF_MIN_MS = 200;
const BACKOFF_MAX_MS = 10_000;
const IMAGE_ID = `sha256:${'0'.repeat(64)}`;

interface SimContainer {
  id: string;
  name: string;
  image: string;
  created: number;
  state: 'created' | 'running';
  startedAt: string;
  labels: Record<string, string>;
  memory: number;
  nanoCpus: number;
}

/** The i-th engine's loopback address: 127.1.0.1 onwards (127.0.0.1 stays the manager's). */
const addrOf = (i: number) => `127.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
const indexOf = (addr: string): number => {
  const [, a, b, c] = addr.replace(/^::ffff:/, '').split('.').map(Number) as [number, number, number, number];
  return ((a - 1) << 16) | (b << 8) | c;
};

const summary = (c: SimContainer): ReportedContainer => ({
  Id: c.id, Names: [`/${c.name}`], Image: c.image, ImageID: IMAGE_ID, Command: 'sleep infinity', Created: c.created, Ports: [], Labels: c.labels,
  State: c.state, Status: '', HostConfig: { NetworkMode: 'bridge' }, NetworkSettings: { Networks: {} }, Mounts: [],
  Facts: { Status: c.state, StartedAt: c.startedAt, FinishedAt: '0001-01-01T00:00:00Z', ExitCode: 0, HasBeenStarted: c.state === 'running' },
  Reserved: { memory: c.memory, nanoCpus: c.nanoCpus },
});

class SimEngine {
  readonly containers = new Map<string, SimContainer>();
  readonly engineId = randomBytes(16).toString('hex');
  private ws?: WebSocket;
  welcomed = false;
  private down = false;
  private attempt = 0;
  private heartbeat?: NodeJS.Timeout;

  constructor(readonly index: number, initial: number) {
    for (let k = 0; k < initial; k++) this.add(`sim${index}-c${k}`, 'busybox', {}, 0, 0).state = 'running';
  }

  add(name: string, image: string, labels: Record<string, string>, memory: number, nanoCpus: number): SimContainer {
    const c: SimContainer = { id: randomBytes(32).toString('hex'), name, image, created: Math.floor(Date.now() / 1000), state: 'created', startedAt: '0001-01-01T00:00:00Z', labels, memory, nanoCpus };
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
      api: `tcp://${addrOf(this.index)}:${PORT}`, addr: addrOf(this.index), capacity: { ncpu: 2, memTotal: 8 << 30 }, version: 'sim',
    }));
    ws.on('message', (data) => {
      const m = parseMessage<ManagerMessage>(data, ['welcome']);
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

const engines = Array.from({ length: ENGINES }, (_, i) => new SimEngine(i, Number(o.containers)));

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

async function body(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of req) text += (chunk as Buffer).toString('utf8');
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

/** The Engine API as the manager calls it, for the engine the connection was made to. */
async function engineApi(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const e = engines[indexOf(req.socket.localAddress ?? '')];
  const u = new URL(req.url ?? '/', 'http://x');
  const p = u.pathname.replace(/^\/v[0-9.]+\//, '/');
  if (!e) return reply(res, 500, { message: `no simulated engine at ${req.socket.localAddress}` });
  if (p === '/_ping') return void res.writeHead(200, { 'Content-Type': 'text/plain' }).end('OK');
  if (req.method === 'POST' && p === '/containers/create') {
    const b = await body(req);
    const name = u.searchParams.get('name') ?? randomBytes(6).toString('hex');
    if (e.find(name)) return reply(res, 409, { message: `Conflict. The container name "/${name}" is already in use` });
    const hc = (b.HostConfig ?? {}) as { Memory?: number; NanoCpus?: number };
    const c = e.add(name, String(b.Image), (b.Labels ?? {}) as Record<string, string>, hc.Memory ?? 0, hc.NanoCpus ?? 0);
    e.send({ type: 'event', action: 'create', id: c.id, summary: summary(c) });
    return reply(res, 201, { Id: c.id, Warnings: [] });
  }
  if (req.method === 'GET' && p === '/containers/json') {
    // the manager lists by id only (its refresh)
    const f = JSON.parse(u.searchParams.get('filters') ?? '{}') as { id?: string[] };
    const all = u.searchParams.get('all') === 'true' || u.searchParams.get('all') === '1';
    const out = [...e.containers.values()].filter((c) => (all || c.state === 'running') && (!f.id || f.id.some((x) => c.id.startsWith(x))));
    return reply(res, 200, out.map(summary));
  }
  const m = /^\/containers\/([^/]+)(?:\/([a-z]+))?$/.exec(p);
  const c = m && e.find(decodeURIComponent(m[1]!));
  if (!m || !c) return reply(res, 404, { message: m ? `No such container: ${m[1]}` : `page not found: ${p}` });
  if (req.method === 'GET' && m[2] === 'json') return reply(res, 200, inspect(c));
  if (req.method === 'POST' && m[2] === 'start') {
    if (c.state === 'running') return reply(res, 304);
    await new Promise((r) => setTimeout(r, START_LATENCY_MS));
    c.state = 'running';
    c.startedAt = new Date().toISOString();
    e.send({ type: 'event', action: 'start', id: c.id, summary: summary(c) });
    return reply(res, 204);
  }
  if (req.method === 'DELETE' && !m[2]) {
    e.containers.delete(c.id);
    e.send({ type: 'event', action: 'destroy', id: c.id });
    return reply(res, 204);
  }
  return reply(res, 501, { message: `the simulator does not serve ${req.method} ${p}` });
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
  return { total, distinct: names.size, duplicated, running, joined: engines.filter((e) => e.welcomed).length, containers: engines.reduce((s, e) => s + e.containers.size, 0) };
}

function control(req: http.IncomingMessage, res: http.ServerResponse): void {
  const u = new URL(req.url ?? '/', 'http://x');
  if (u.pathname === '/count') return reply(res, 200, count(u.searchParams.get('prefix') ?? ''));
  if (req.method === 'POST' && u.pathname === '/churn') {
    const n = Math.round(ENGINES * Number(u.searchParams.get('fraction') ?? 0.1));
    const start = Math.floor(Math.random() * ENGINES);
    for (let k = 0; k < n; k++) engines[(start + k) % ENGINES]!.bounce(Number(u.searchParams.get('downMs') ?? 5000));
    return reply(res, 200, { dropped: n });
  }
  reply(res, 404, { message: 'GET /count?prefix=P | POST /churn?fraction=F&downMs=MS' });
}

const api = http.createServer((req, res) => void engineApi(req, res).catch((err: Error) => reply(res, 500, { message: err.message })));
api.keepAliveTimeout = 1000;
// one listener answers every 127.x address only when bound to all of them: whatever does not come from loopback
// is cut at once, so nothing but this machine ever reaches it
api.on('connection', (s: net.Socket) => {
  if (!/^(::ffff:)?127\./.test(s.remoteAddress ?? '')) s.destroy();
});
await new Promise<void>((r) => api.listen(PORT, '0.0.0.0', 511, r));
await fs.rm(o.ctl, { force: true });
const ctl = http.createServer(control);
await new Promise<void>((r) => ctl.listen(o.ctl, r));
// all engines dial at once, as engines do when a manager comes up; a refused dial retries with the agent's backoff
for (const e of engines) e.connect();
process.stderr.write(`sim: ${ENGINES} engines dialing ${o.join}, API on port ${PORT}, control on ${o.ctl}\n`);
const stop = () => process.exit(0);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
