/**
 * The node agent: an engine started with --join keeps one WebSocket open to the manager, says who it is, reports
 * its containers (a snapshot, then each change from its event bus) and heartbeats. A lost connection is retried
 * with exponential backoff and jitter, for as long as the engine runs; a refused token is not retried.
 */
import os from 'node:os';
import { WebSocket } from 'ws';
import { errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { isTlsError, type TlsMaterial } from '../lib/tls.js';
import { CLOSE_BAD_TOKEN, NODE_PROTOCOL_VERSION, nodeDialUrl, parseMessage, type EngineMessage, type ManagerMessage, type ReportedContainer } from '../lib/node-protocol.js';
import { VERSION } from '../lib/version.js';
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

  constructor(
    private readonly engine: Engine,
    private readonly o: JoinOptions,
    private readonly log: Logger,
  ) {
    this.url = nodeDialUrl(o.join);
    this.unsubscribe = engine.events.subscribe((ev) => {
      if (ev.Type !== 'container' || !ev.Actor.ID || ev.Action.startsWith('exec_')) return;
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
        m = parseMessage<ManagerMessage>(data, ['welcome']);
      } catch (err) {
        this.log.warn({ err: errorMessage(err) }, 'node agent: bad message from the manager');
        ws.close();
        return;
      }
      this.attempt = 0;
      this.welcomed = true;
      this.log.info({ manager: this.o.join, nodeId: m.nodeId }, 'joined the cluster');
      this.send({ type: 'containers', containers: this.engine.containers.list().map(report) });
      const beat = () => this.send({ type: 'heartbeat', images: this.engine.images.store.list().length });
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

  close(): void {
    this.closed = true;
    this.unsubscribe();
    clearTimeout(this.retryTimer);
    clearInterval(this.heartbeat);
    this.ws?.close();
  }
}
