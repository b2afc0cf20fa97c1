/**
 * SwarmProxy: several clusters behind one mutual-TLS endpoint. The client's certificate picks the cluster; each
 * cluster's leader is followed through etcd (its `leader` key and the election keys: a leader counts while its
 * candidacy stands), and requests pass to it through the managers' own Forwarder (plain, streamed, hijacked). The
 * proxy keeps nothing but that cache, so any number of them can stand side by side behind a TCP balancer.
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Etcd3, Namespace, Watcher } from 'etcd3';
import { errorMessage, forbidden, invalid } from '../lib/errors.js';
import { statusOf } from '../lib/http/status.js';
import { gracefulStop } from '../lib/lifecycle.js';
import { createLogger, type Logger } from '../lib/log.js';
import { mtlsServerOptions, type TlsPaths } from '../lib/tls.js';
import { standingLeader, waitFor, type LeaderRecord } from './election.js';
import { Forwarder } from './forward.js';
import { etcdClient } from './store.js';

export interface ProxyOptions {
  /** tcp://HOST[:PORT] (2376 when left out): mutual TLS only. */
  listen: string;
  tls: TlsPaths;
  /** Each cluster by its name (its `--name`: its keys in etcd) and its etcd endpoints. */
  clusters: Array<{ name: string; etcd: string[] }>;
  /** A certificate's CN or OU → the cluster it reaches. */
  map: Record<string, string>;
  /** Towards leaders whose API is tcp://: the CA their certificates chain to, what the proxy presents (each file defaults to its own `tls`'s). */
  leaderTls?: Partial<TlsPaths>;
  logLevel?: string;
}

/** How long a stopping proxy lets the requests it passes finish. */
const DRAIN_MS = 5000;
const CLUSTER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** `--cluster NAME=URL[,URL…]` and `--map KEY=NAME`, checked. */
export function parseProxyFlags(clusters: string[], maps: string[]): Pick<ProxyOptions, 'clusters' | 'map'> {
  const split = (flag: string, v: string): [string, string] => {
    const i = v.indexOf('=');
    if (i <= 0 || i === v.length - 1) throw invalid(`${flag} ${v}: want ${flag === '--cluster' ? 'NAME=ETCD_URL[,ETCD_URL…]' : 'CN_OR_OU=CLUSTER'}`);
    return [v.slice(0, i), v.slice(i + 1)];
  };
  const out: Pick<ProxyOptions, 'clusters' | 'map'> = { clusters: [], map: {} };
  for (const c of clusters) {
    const [name, urls] = split('--cluster', c);
    if (!CLUSTER_NAME.test(name)) throw invalid(`--cluster ${c}: ${name} is not a cluster name`);
    if (out.clusters.some((x) => x.name === name)) throw invalid(`--cluster ${name} is given twice`);
    const etcd = urls.split(',').map((u) => u.trim()).filter(Boolean);
    for (const u of etcd) if (!/^https?:\/\/[^/]+/.test(u)) throw invalid(`--cluster ${c}: ${u} is not an etcd URL (http://HOST:PORT)`);
    out.clusters.push({ name, etcd });
  }
  if (!out.clusters.length) throw invalid('no cluster to proxy: pass --cluster NAME=ETCD_URL[,ETCD_URL…]');
  for (const m of maps) {
    const [key, name] = split('--map', m);
    if (!out.clusters.some((c) => c.name === name)) throw invalid(`--map ${m}: no --cluster ${name}`);
    out.map[key] = name;
  }
  return out;
}

type Subject = { CN?: string | string[]; OU?: string | string[] };
const values = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/**
 * The cluster a certificate's subject reaches: a `--map` of its CN, else of one of its OUs (in the certificate's
 * order), else a cluster named as its CN, else as one of its OUs.
 */
export function clusterFor(subject: Subject, map: Record<string, string>, names: Set<string>): string | undefined {
  const keys = [...values(subject.CN), ...values(subject.OU)];
  return keys.map((k) => (Object.hasOwn(map, k) ? map[k] : undefined)).find(Boolean) ?? keys.find((k) => names.has(k));
}

/** One cluster's leader, followed through etcd: the `leader` key and the candidates standing for election. */
class LeaderFollower {
  private readonly client: Etcd3;
  private readonly ns: Namespace;
  private readonly cands = new Map<string, string>();
  private readonly waiters = new Set<() => void>();
  private readonly watchers: Watcher[] = [];
  private leader?: LeaderRecord;

  constructor(readonly name: string, etcd: string[], private readonly log: Logger) {
    this.client = etcdClient(etcd);
    this.ns = this.client.namespace(`/sampan/cluster/${name}/`);
  }

  async follow(): Promise<void> {
    const [cands, leader] = await Promise.all([this.ns.getAll().prefix('election/').exec(), this.ns.get('leader').exec()]);
    for (const kv of cands.kvs) this.cands.set(kv.key.toString(), (JSON.parse(kv.value.toString()) as { name: string }).name);
    const l = leader.kvs[0];
    if (l) this.leader = JSON.parse(l.value.toString()) as LeaderRecord;
    const after = (r: { header: { revision: string } }) => String(Number(r.header.revision) + 1);
    const election = await this.ns.watch().prefix('election/').startRevision(after(cands)).create();
    election.on('put', (kv) => this.changed(() => this.cands.set(kv.key.toString(), (JSON.parse(kv.value.toString()) as { name: string }).name)));
    election.on('delete', (kv) => this.changed(() => this.cands.delete(kv.key.toString())));
    const lead = await this.ns.watch().key('leader').startRevision(after(leader)).create();
    lead.on('put', (kv) => this.changed(() => (this.leader = JSON.parse(kv.value.toString()) as LeaderRecord)));
    lead.on('delete', () => this.changed(() => (this.leader = undefined)));
    for (const w of [election, lead]) {
      w.on('error', (err) => this.log.warn({ cluster: this.name, err: errorMessage(err) }, 'etcd watch error'));
      this.watchers.push(w);
    }
    this.log.info({ cluster: this.name, leader: this.target()?.name }, 'following the cluster\'s leader');
  }

  private changed(apply: () => void): void {
    const before = this.target()?.name;
    apply();
    const now = this.target();
    if (now?.name !== before) this.log.info({ cluster: this.name, leader: now?.name, api: now?.api }, now ? 'the cluster\'s leader' : 'the cluster has no leader');
    for (const w of [...this.waiters]) w();
  }

  private target(unreachable?: string): LeaderRecord | undefined {
    return standingLeader(this.leader, [...this.cands.values()].map((name) => ({ name })), unreachable);
  }

  /** The leader, waiting up to `ms` for one (skipping `unreachable`, an address that refused a connection). */
  leaderWithin(ms: number, unreachable?: string): Promise<LeaderRecord | undefined> {
    return waitFor(this.waiters, ms, () => this.target(unreachable));
  }

  close(): void {
    for (const w of this.watchers) w.cancel().catch(() => undefined);
    this.client.close();
  }
}

export interface RunningProxy {
  log: Logger;
  /** Where it listens (the port chosen when 0 was asked). */
  port: number;
  done: Promise<void>;
  shutdown(): Promise<void>;
}

/** The refusal of a request the certificate reaches no cluster with: a 403, on a plain or a hijacked request. */
function refuse(err: Error, res: http.ServerResponse | undefined, socket?: Duplex): void {
  const body = JSON.stringify({ message: err.message });
  const status = statusOf(err);
  if (res) res.writeHead(status, { 'Content-Type': 'application/json' }).end(body);
  else socket!.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

export async function startProxy(o: ProxyOptions, opts: { handleSignals?: boolean } = {}): Promise<RunningProxy> {
  const log = createLogger('sampan-proxy', o.logLevel);
  const u = new URL(o.listen.replace(/^tcp:/, 'https:'));
  if (!o.listen.startsWith('tcp://') || u.pathname.length > 1) throw invalid(`--listen ${o.listen}: want tcp://HOST[:PORT] (mutual TLS only)`);
  const leaderTls = { ca: o.leaderTls?.ca ?? o.tls.ca, cert: o.leaderTls?.cert ?? o.tls.cert, key: o.leaderTls?.key ?? o.tls.key };
  const followers = new Map(o.clusters.map((c) => [c.name, new LeaderFollower(c.name, c.etcd, log)]));
  const forwarders = new Map([...followers].map(([name, f]) => [name, new Forwarder((ms, unreachable) => f.leaderWithin(ms, unreachable), log, leaderTls)]));
  const names = new Set(followers.keys());
  try {
    await Promise.all([...followers.values()].map((f) => f.follow()));
  } catch (err) {
    for (const f of followers.values()) f.close();
    throw invalid(`could not follow the clusters in etcd: ${errorMessage(err)}`);
  }

  const pass = (req: http.IncomingMessage, res: http.ServerResponse | undefined, upgrade?: { socket: Duplex; head: Buffer }) => {
    const subject = ((req.socket as TLSSocket).getPeerCertificate().subject ?? {}) as Subject;
    const name = clusterFor(subject, o.map, names);
    if (!name) {
      const err = forbidden(`your certificate (CN=${values(subject.CN).join('+')}, OU=${values(subject.OU).join('+')}) is mapped to no cluster`);
      log.warn({ subject: { CN: subject.CN, OU: subject.OU }, client: req.socket.remoteAddress, method: req.method, url: req.url }, 'refused: the certificate is mapped to no cluster');
      return refuse(err, res, upgrade?.socket);
    }
    res?.setHeader('X-Sampan-Cluster', name);
    log.debug({ cluster: name, method: req.method, url: req.url }, 'request');
    // the lookup never answers 'self': the proxy serves nothing itself
    forwarders.get(name)!.forward(req, res, upgrade, () => undefined);
  };

  const server = https.createServer(await mtlsServerOptions(o.tls));
  const sockets = new Set<Socket>();
  server.keepAliveTimeout = 60_000;
  server.on('tlsClientError', (err: Error, s: Socket) => log.warn({ client: s.remoteAddress, err: err.message.trim() }, 'TLS handshake refused'));
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => pass(req, res));
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node drops its own error handler from an upgraded socket: a client that resets it must not crash the proxy
    socket.on('error', () => socket.destroy());
    // the docker CLI half-closes the TCP connection under its TLS once its input ends, and still reads the output
    (socket as TLSSocket).allowHalfOpen = true;
    pass(req, undefined, { socket, head });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(u.port || 2376), u.hostname.replace(/^\[|\]$/g, ''), () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  log.info({ listen: o.listen, port, clusters: o.clusters.map((c) => c.name), map: o.map }, 'cluster proxy started');

  const { done, shutdown } = gracefulStop(async () => {
    log.info('shutting down: no new connections, requests in flight finish');
    const closed = new Promise<void>((r) => server.close(() => r()));
    server.closeIdleConnections();
    const deadline = Date.now() + DRAIN_MS;
    const busy = () => [...forwarders.values()].reduce((n, f) => n + f.inflight, 0);
    while (busy() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const s of sockets) s.destroy();
    await closed;
    for (const f of followers.values()) f.close();
    log.info('cluster proxy stopped');
    log.flush();
  }, opts);
  return { log, port, done, shutdown };
}
