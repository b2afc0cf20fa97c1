/**
 * The node agent: an engine started with --join keeps one WebSocket open to the manager, says who it is, reports
 * its containers (a snapshot, then each change from its event bus), heartbeats, and runs the manager's commands
 * through the same backend as the engine's Docker API. A lost connection is retried with exponential backoff and
 * jitter, for as long as the engine runs; a refused token is not retried.
 */
import os from 'node:os';
import { WebSocket } from 'ws';
import { errorMessage, invalid, SampanError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { isTlsError, type TlsMaterial } from '../lib/tls.js';
import {
  CLOSE_BAD_TOKEN, COMMAND_OPS, NODE_PROTOCOL_VERSION, nodeDialUrl, parseMessage,
  type CommandMessage, type EngineMessage, type ManagerMessage, type ReportedContainer, type ResultMessage,
} from '../lib/node-protocol.js';
import { VERSION } from '../lib/version.js';
import { EngineContainers } from './backend/containers.js';
import { containerSummary, statusFacts } from './backend/views.js';
import type { ContainerRecord } from './containers/model.js';
import type { Engine } from './engine.js';

const BACKOFF_MIN_MS = 200;
const BACKOFF_MAX_MS = 10_000;

export interface JoinOptions {
  join: string;
  token: string;
  nodeName: string;
  labels: Record<string, string>;
  /** The engine's API address the manager uses (its first --host). */
  api: string;
  /** For a wss:// join: the CA the manager's certificate must chain to, and the certificate this engine presents. */
  tls?: TlsMaterial;
}

/** The host's first IPv4 address that is not loopback nor one of the engine's own bridges or veths. */
function hostAddr(): string {
  for (const [name, addrs] of Object.entries(os.networkInterfaces())) {
    if (/^(sampan|veth|cni)/.test(name)) continue;
    const a = addrs?.find((x) => x.family === 'IPv4' && !x.internal);
    if (a) return a.address;
  }
  return '127.0.0.1';
}

const report = (r: ContainerRecord): ReportedContainer => ({
  ...containerSummary(r, r.Config.Image), Facts: statusFacts(r), Reserved: { memory: r.HostConfig.Memory ?? 0, nanoCpus: r.HostConfig.NanoCpus ?? 0 },
});

export class NodeAgent {
  private ws?: WebSocket;
  private welcomed = false;
  private closed = false;
  private attempt = 0;
  private retryTimer?: NodeJS.Timeout;
  private heartbeat?: NodeJS.Timeout;
  private readonly unsubscribe: () => void;
  private readonly url: string;
  private readonly containers: EngineContainers;
  /** Containers a command of this manager is changing: their events are left out, the command's result says it all. */
  private readonly commanding = new Map<string, number>();

  constructor(
    private readonly engine: Engine,
    private readonly o: JoinOptions,
    private readonly log: Logger,
  ) {
    this.url = nodeDialUrl(o.join);
    this.containers = new EngineContainers(engine);
    this.unsubscribe = engine.events.subscribe((ev) => {
      if (ev.Type !== 'container' || !ev.Actor.ID || ev.Action.startsWith('exec_') || this.commanding.has(ev.Actor.ID)) return;
      const rec = engine.containers.find(ev.Actor.ID);
      this.send({ type: 'event', action: ev.Action, id: ev.Actor.ID, ...(rec ? { summary: report(rec) } : {}) });
    });
    this.connect();
  }

  /** Anything but the hello waits for the welcome: the snapshot that follows it covers what happened before. */
  private send(m: EngineMessage): void {
    if (this.ws?.readyState === WebSocket.OPEN && (this.welcomed || m.type === 'hello')) this.ws.send(JSON.stringify(m));
  }

  private connect(): void {
    if (this.closed) return;
    const ws = new WebSocket(this.url, this.o.tls);
    this.ws = ws;
    this.welcomed = false;
    ws.on('open', () => {
      const e = this.engine;
      this.send({
        type: 'hello', protocol: NODE_PROTOCOL_VERSION, token: this.o.token, nodeName: this.o.nodeName, labels: this.o.labels, engineId: e.engineId,
        api: this.o.api, addr: hostAddr(), capacity: { ncpu: os.cpus().length, memTotal: os.totalmem() }, version: VERSION,
      });
    });
    ws.on('message', (data) => {
      let m: ManagerMessage;
      try {
        m = parseMessage<ManagerMessage>(data, ['welcome', 'command']);
      } catch (err) {
        this.log.warn({ err: errorMessage(err) }, 'node agent: bad message from the manager');
        ws.close();
        return;
      }
      if (m.type === 'command') {
        // answered on the connection it came on: a manager that lost the connection has failed the command already
        void this.run(m).then((r) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(r)));
        return;
      }
      if (m.type !== 'welcome') return; // cluster networking: not built yet
      this.attempt = 0;
      this.welcomed = true;
      this.log.info({ manager: this.o.join, nodeId: m.nodeId }, 'joined the cluster');
      this.send({ type: 'containers', containers: this.engine.containers.list().map(report) });
      let sentImages = '';
      const beat = () => {
        const images = this.engine.images.store.list().map((i) => ({ Id: i.id, RepoTags: i.repoTags }));
        this.send({ type: 'heartbeat', images: images.length });
        // the list goes only when it changed: a heartbeat stays small however many images the node has
        const text = JSON.stringify(images);
        if (text !== sentImages) this.send({ type: 'images', images });
        sentImages = text;
      };
      beat();
      clearInterval(this.heartbeat);
      this.heartbeat = setInterval(beat, m.heartbeatMs);
    });
    ws.on('error', (err: NodeJS.ErrnoException) => {
      // a manager that is away is routine (it comes back); a certificate refused either way needs someone to act
      if (isTlsError(err)) this.log.warn({ manager: this.o.join, err: err.message }, 'node agent: refused the manager\'s certificate');
      // a Node TLS server drops a client certificate it does not trust without an alert: the hang-up is all there is to see
      else if (this.o.tls && (err.code === 'ECONNRESET' || err.message === 'socket hang up')) this.log.warn({ manager: this.o.join, err: err.message }, 'node agent: the manager hung up in the TLS handshake (does it trust this engine\'s certificate?)');
      else this.log.debug({ manager: this.o.join, err: err.message }, 'node agent: connection failed');
    });
    ws.on('close', (code, reason) => {
      clearInterval(this.heartbeat);
      if (this.closed) return;
      if (code === CLOSE_BAD_TOKEN) {
        this.log.error({ manager: this.o.join, reason: reason.toString() }, 'the manager refused the join token: not retrying');
        return;
      }
      // full jitter: engines that lost a manager together do not come back together
      const ms = Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt++);
      this.log.debug({ manager: this.o.join, code, reason: reason.toString(), retryMs: Math.round(ms) }, 'node agent: disconnected');
      this.retryTimer = setTimeout(() => this.connect(), ms);
    });
  }

  /** A manager's command, answered with the container as it is afterwards (or the typed error). */
  private async run(m: CommandMessage): Promise<ResultMessage> {
    const c = this.containers;
    // every op's args in one view: the switch reads those of its op
    const a = m.args as { id: string; size?: boolean; t?: number; signal?: string; name: string; body: Record<string, unknown>; force?: boolean; volumes?: boolean };
    this.commanding.set(a.id, (this.commanding.get(a.id) ?? 0) + 1);
    try {
      let value: unknown;
      switch (m.op) {
        case 'create': {
          const { id, name, body, start } = m.args as CommandMessage<'create'>['args'];
          if (!/^[a-f0-9]{64}$/.test(id)) throw invalid(`create: the id must be 64 hex digits, not ${id}`);
          value = await c.create(body, name, id);
          if (start) await c.start(id);
          break;
        }
        case 'inspect':
          value = await c.inspect(a.id, { size: !!a.size });
          break;
        case 'start':
        case 'pause':
        case 'unpause':
          await c[m.op](a.id);
          break;
        case 'stop':
        case 'restart':
          await c[m.op](a.id, { timeout: a.t, signal: a.signal });
          break;
        case 'kill':
          await c.kill(a.id, a.signal);
          break;
        case 'rename':
          await c.rename(a.id, a.name);
          break;
        case 'update':
          value = await c.update(a.id, a.body);
          break;
        case 'remove':
          await c.remove(a.id, { force: !!a.force, volumes: !!a.volumes, link: false });
          break;
        default:
          throw invalid(`unknown command ${String(m.op)}: this engine knows ${COMMAND_OPS.join(', ')}`);
      }
      const rec = this.engine.containers.find(a.id);
      return { type: 'result', seq: m.seq, value, container: rec ? report(rec) : null };
    } catch (err) {
      const code = err instanceof SampanError ? err.code : 'INTERNAL';
      // what a failed command changed (a create that could not start) is reported as any change is
      const rec = this.engine.containers.find(a.id);
      if (rec) this.send({ type: 'event', action: 'update', id: a.id, summary: report(rec) });
      return { type: 'result', seq: m.seq, error: { code, message: errorMessage(err) } };
    } finally {
      const n = this.commanding.get(a.id)! - 1;
      if (n) this.commanding.set(a.id, n);
      else this.commanding.delete(a.id);
    }
  }

  close(): void {
    this.closed = true;
    this.unsubscribe();
    clearTimeout(this.retryTimer);
    clearInterval(this.heartbeat);
    this.ws?.close();
  }
}
