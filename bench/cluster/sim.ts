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
 * For the release benchmark (bench/release/onsim.sh), additive flags: a start may take a long-tailed time
 * (`--start-dist lognormal`: `--start-latency` is the median, `--start-sigma` the body's sigma, `--slow-hosts` of the
 * engines `--slow-factor` × slower, `--fail-once` of the slots' first start of an image failing; `--seed`), and
 * `--images A,B` the engines hold and report (the scheduler's and the pre-puller's `images`), `--pull-ms` a pull of
 * another image takes (× the P2P benchmark's stretch for the pulls under way), served by a minimal Docker API
 * (`POST /images/create`, one listener for all engines: which engine is the address the manager dialed) on
 * `--docker-api` (a port, 0 for any). A pull the manager's task start asks for (`fromImage` without `tag`: a
 * replacement waiting for its image) is counted as on the critical path; a pre-pull (`fromImage` and `tag`) is not.
 * `POST /track?service=S&image=I&instances=N` starts tracking a release of S to I (`GET /track`: time to 50/99/100 %
 * of N running I, the most unavailable at once, pulls).
 *
 * A control API on --ctl (a unix socket) serves the counts (`GET /count?prefix=P`: replicas on the engines, the
 * names held twice; `GET /names?prefix=P`: those names, for counting over several simulators) and churn (`POST /churn?fraction=F&downMs=MS`: that share of the engines hang up and rejoin).
 *
 * Usage: node dist/bench/cluster/sim.js --join unix:///PATH --token T --engines N [--first K] --containers C --start-latency MS --ctl PATH
 *        [--start-dist fixed|lognormal --start-sigma S --slow-hosts F --slow-factor K --fail-once F --seed N]
 *        [--images IMG,IMG --pull-ms MS --docker-api PORT]
 */
import http from 'node:http';
import { promises as fs } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import {
  NODE_PROTOCOL_VERSION, nodeDialUrl, parseMessage, type CommandMessage, type EngineMessage, type ManagerMessage, type ReportedContainer, type ResultMessage,
} from '../../src/lib/node-protocol.js';
import { p2pStretch } from '../release/sim.js';

const { values: o } = parseArgs({
  options: {
    join: { type: 'string' },
    token: { type: 'string' },
    engines: { type: 'string', default: '1000' },
    first: { type: 'string', default: '0' },
    containers: { type: 'string', default: '0' },
    'start-latency': { type: 'string', default: '50' },
    ctl: { type: 'string' },
    'start-dist': { type: 'string', default: 'fixed' },
    'start-sigma': { type: 'string', default: '0.5' },
    'slow-hosts': { type: 'string', default: '0' },
    'slow-factor': { type: 'string', default: '10' },
    'fail-once': { type: 'string', default: '0' },
    seed: { type: 'string', default: '19' },
    images: { type: 'string', default: '' },
    'pull-ms': { type: 'string', default: '0' },
    'docker-api': { type: 'string' },
  },
});
if (!o.join || !o.token || !o.ctl) throw new Error('--join, --token and --ctl are required');
const ENGINES = Number(o.engines);
const START_LATENCY_MS = Number(o['start-latency']);
const url = nodeDialUrl(o.join);
let apiPort = 2375;
const BACKOFF_MIN_MS = 200;
const BACKOFF_MAX_MS = 10_000;
const IMAGE_ID = `sha256:${'0'.repeat(64)}`;
const LOGNORMAL = o['start-dist'] === 'lognormal';
if (!LOGNORMAL && o['start-dist'] !== 'fixed') throw new Error('--start-dist: fixed or lognormal');
const START_SIGMA = Number(o['start-sigma']);
const SLOW_HOSTS = Number(o['slow-hosts']);
const SLOW_FACTOR = Number(o['slow-factor']);
const FAIL_ONCE = Number(o['fail-once']);
const PULL_MS = Number(o['pull-ms']);
const INITIAL_IMAGES = o.images ? o.images.split(',').map((i) => withTag(i)) : [];

/** `busybox` is `busybox:latest`, as an engine's tags say. */
function withTag(image: string): string {
  const slash = image.lastIndexOf('/');
  return image.includes('@') || image.slice(slash + 1).includes(':') ? image : `${image}:latest`;
}

/** mulberry32, as bench/release/sim.ts: the slow hosts and the failing slots are the same in every run of a seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = rng(Number(o.seed));
/** A hash of a string to [0, 1) under the seed: whether a slot fails its first start is a property of the slot. */
function unit(key: string): number {
  let h = Number(o.seed) ^ 0x9e3779b9;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return rng(h)();
}
function normal(): number {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** A release being tracked (POST /track): counts kept as containers change, so that the most unavailable at once is exact. */
interface Track {
  service: string;
  image: string;
  instances: number;
  t0: number;
  runningAll: number;
  runningNew: number;
  maxUnavailable: number;
  at: Record<'50' | '99' | '100', number | undefined>;
  pulls: number;
  criticalPulls: number;
  startFailures: number;
}
let track: Track | undefined;
const pullsUnderWay = { n: 0 };
const pullStats = { pulls: 0, criticalPulls: 0 };
/** The slots (service.slot) whose first start of an image failed already. */
const failedOnce = new Set<string>();

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
    this.slow = random() < SLOW_HOSTS;
    for (const i of INITIAL_IMAGES) this.images.set(i, true);
    if (sampled) this.known = new Map();
    for (let k = 0; k < initial; k++) this.add(`sim${index}-c${k}`, 'busybox', {}, 0, 0).state = 'running';
  }

  /** Image (tagged) → its pull under way or done. */
  readonly images = new Map<string, Promise<void> | true>();
  readonly slow: boolean;

  add(name: string, image: string, labels: Record<string, string>, memory: number, nanoCpus: number, id = randomBytes(32).toString('hex')): SimContainer {
    const c: SimContainer = { id, name, image, created: Math.floor(Date.now() / 1000), state: 'created', startedAt: '0001-01-01T00:00:00Z', labels, memory, nanoCpus };
    this.containers.set(c.id, c);
    return c;
  }

  reportImages(): void {
    const done = [...this.images].filter(([, v]) => v === true).map(([k]) => k);
    this.send({ type: 'images', images: done.map((t) => ({ Id: `sha256:${createHash('sha256').update(t).digest('hex')}`, RepoTags: [t] })) });
  }

  /** A pull of `image` (tagged): joins one under way; `critical` when a task's start waits for it. */
  pull(image: string, critical: boolean): Promise<void> {
    const have = this.images.get(image);
    if (have === true) return Promise.resolve();
    if (critical) {
      pullStats.criticalPulls++;
      if (track && image === withTag(track.image)) track.criticalPulls++;
    }
    if (have) return have;
    pullStats.pulls++;
    if (track && image === withTag(track.image)) track.pulls++;
    pullsUnderWay.n++;
    const ms = PULL_MS * p2pStretch(pullsUnderWay.n);
    const p = new Promise<void>((r) => setTimeout(r, ms)).then(() => {
      pullsUnderWay.n--;
      this.images.set(image, true);
      this.reportImages();
    });
    this.images.set(image, p);
    return p;
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
      api: `tcp://${addrOf(this.index)}:${apiPort}`, addr: addrOf(this.index), capacity: { ncpu: 2, memTotal: 8 * 2 ** 30 }, version: 'sim',
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
      if (this.images.size) this.reportImages();
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
      await new Promise((r) => setTimeout(r, this.startMs()));
      // a task's name is SERVICE.SLOT.ID: the slot's first start of an image may fail (once; its retry does not)
      const slot = `${c.name.split('.').slice(0, 2).join('.')}\0${c.image}`;
      if (FAIL_ONCE > 0 && !failedOnce.has(slot) && unit(slot) < FAIL_ONCE) {
        failedOnce.add(slot);
        if (track) track.startFailures++;
        return { type: 'result', seq: m.seq, error: { code: 'INTERNAL', message: 'simulated: the container failed to start' } };
      }
      setState(c, 'running');
      c.startedAt = new Date().toISOString();
    } else if (m.op === 'stop' || m.op === 'kill') {
      setState(c, 'exited');
    } else if (m.op === 'remove') {
      setState(c, 'exited');
      this.containers.delete(c.id);
      return { type: 'result', seq: m.seq, container: null };
    } else if (m.op === 'inspect') value = inspect(c);
    else if (m.op !== 'create') return fail('NOT_IMPLEMENTED', `the simulator does not do ${m.op}`);
    return { type: 'result', seq: m.seq, value, container: summary(c) };
  }

  /** A start's time: fixed, or lognormal around the median (× the slow factor on a slow host). */
  private startMs(): number {
    if (!LOGNORMAL) return START_LATENCY_MS;
    return START_LATENCY_MS * Math.exp(START_SIGMA * normal()) * (this.slow ? SLOW_FACTOR : 1);
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

/** A container's state, the tracked release's counts with it. */
function setState(c: SimContainer, state: SimContainer['state']): void {
  const was = c.state;
  c.state = state;
  const t = track;
  if (!t || was === state || !c.name.startsWith(`${t.service}.`)) return;
  const d = state === 'running' ? 1 : was === 'running' ? -1 : 0;
  if (!d) return;
  t.runningAll += d;
  if (c.image === t.image || withTag(c.image) === withTag(t.image)) t.runningNew += d;
  t.maxUnavailable = Math.max(t.maxUnavailable, t.instances - t.runningAll);
  const now = Date.now() - t.t0;
  for (const [k, share] of [['50', 0.5], ['99', 0.99], ['100', 1]] as const) if (t.at[k] === undefined && t.runningNew >= Math.ceil(t.instances * share)) t.at[k] = now;
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
  if (u.pathname === '/track') {
    if (req.method === 'POST') {
      const service = u.searchParams.get('service') ?? '';
      const image = u.searchParams.get('image') ?? '';
      let runningAll = 0;
      let runningNew = 0;
      for (const e of engines) for (const c of e.containers.values()) {
        if (!c.name.startsWith(`${service}.`) || c.state !== 'running') continue;
        runningAll++;
        if (withTag(c.image) === withTag(image)) runningNew++;
      }
      const instances = Number(u.searchParams.get('instances') ?? runningAll);
      track = { service, image, instances, t0: Date.now(), runningAll, runningNew, maxUnavailable: instances - runningAll, at: { 50: undefined, 99: undefined, 100: undefined }, pulls: 0, criticalPulls: 0, startFailures: 0 };
    }
    return reply(res, track ? 200 : 404, track ?? { message: 'no release tracked: POST /track?service=S&image=I&instances=N' });
  }
  if (req.method === 'POST' && u.pathname === '/churn') {
    const n = Math.round(ENGINES * Number(u.searchParams.get('fraction') ?? 0.1));
    const start = Math.floor(Math.random() * ENGINES);
    for (let k = 0; k < n; k++) engines[(start + k) % ENGINES]!.bounce(Number(u.searchParams.get('downMs') ?? 5000));
    return reply(res, 200, { dropped: n });
  }
  reply(res, 404, { message: 'GET /count?prefix=P | GET /names?prefix=P | POST /churn?fraction=F&downMs=MS | GET|POST /track' });
}

/** The engines' Docker API, as far as the benchmark needs it: pulls. The engine is the address the manager dialed. */
function dockerApi(req: http.IncomingMessage, res: http.ServerResponse): void {
  const u = new URL(req.url ?? '/', 'http://x');
  const e = byAddr.get(req.socket.localAddress?.replace(/^::ffff:/, '') ?? '');
  if (!e) return reply(res, 404, { message: `no simulated engine at ${req.socket.localAddress}` });
  if (req.method === 'POST' && /^(\/v[\d.]+)?\/images\/create$/.test(u.pathname)) {
    const from = u.searchParams.get('fromImage') ?? '';
    const tag = u.searchParams.get('tag');
    const image = withTag(tag ? `${from}${tag.startsWith('sha256:') ? '@' : ':'}${tag}` : from);
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.write(`${JSON.stringify({ status: `Pulling from ${from}`, id: tag ?? 'latest' })}\n`);
    void e.pull(image, !tag).then(() => res.end(`${JSON.stringify({ status: `Status: Downloaded newer image for ${image}` })}\n`));
    return;
  }
  reply(res, 404, { message: `the simulator's engines serve POST /images/create only, not ${req.method} ${u.pathname}` });
}
const byAddr = new Map(engines.map((e) => [addrOf(e.index), e]));

if (o['docker-api'] !== undefined) {
  const api = http.createServer({ keepAlive: true }, dockerApi);
  await new Promise<void>((r) => api.listen(Number(o['docker-api']), '0.0.0.0', r));
  apiPort = (api.address() as { port: number }).port;
}
await fs.rm(o.ctl, { force: true });
const ctl = http.createServer(control);
await new Promise<void>((r) => ctl.listen(o.ctl, r));
// all engines dial at once, as engines do when a manager comes up; a refused dial retries with the agent's backoff
for (const e of engines) e.connect();
process.stderr.write(`sim: ${ENGINES} engines dialing ${o.join}, control on ${o.ctl}${o['docker-api'] !== undefined ? `, Docker API on port ${apiPort}` : ''}\n`);
const stop = () => process.exit(0);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
