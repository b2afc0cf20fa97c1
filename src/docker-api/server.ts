import http from 'node:http';
import https from 'node:https';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from '../lib/log.js';
import { invalid, errorMessage, notFound } from '../lib/errors.js';
import { isPeerGone } from '../lib/streams.js';
import { mtlsServerOptions, type TlsPaths } from '../lib/tls.js';
import { Ctx, Router, type Handler, API_VERSION, MIN_API_VERSION, commonHeaders, compareVersions } from './http.js';
import { statusOf } from '../lib/http/status.js';
import type { Backends } from './backend.js';
import { dockerRoutes } from './routes.js';

const VERSION_PREFIX = /^\/v(\d+\.\d+)(\/.*)$/;

/** The Docker Engine API server over its backends: version handling, routing, error mapping, graceful shutdown. */
export class DockerApiServer {
  private readonly router = new Router();
  private readonly servers: http.Server[] = [];
  private readonly sockets = new Set<Socket>();
  private inflight = 0;
  /** API requests by JSON [method, route, status]: counted here, turned into a Prometheus counter when scraped. */
  private readonly requests = new Map<string, number>();
  private metrics?: Promise<Registry>;
  /** More collectors for /metrics (the cluster manager's), registered with the server's own at the first scrape. */
  private readonly collectors: Array<(registry: Registry) => void> = [];
  /** More headers on every answer, decided per request (the cluster manager's stale mark). */
  private readonly headerSources: Array<() => Record<string, string>> = [];
  /** Takes a request before routing when it answers true (a cluster standby passes it to its leader). */
  intercept?: (req: http.IncomingMessage, res: http.ServerResponse | undefined, upgrade?: { socket: Duplex; head: Buffer }) => boolean;

  constructor(
    backends: Backends,
    private readonly log: Logger,
    /** Names the Prometheus metrics: `<prefix>http_requests_total` (sampan_engine_, sampan_cluster_). */
    private readonly metricsPrefix = 'sampan_engine_',
  ) {
    dockerRoutes(this.router, backends);
    this.router.add('GET', '/metrics', async (ctx) => {
      const m = await (this.metrics ??= this.metricsRegistry());
      ctx.send(200, await m.metrics(), { 'Content-Type': m.contentType });
    });
  }

  /** A route of the server's own beside Docker's (the cluster manager's /sampan/v1/…), served with the same error mapping. */
  route(method: string, pattern: string, handler: Handler): this {
    this.router.add(method, pattern, handler);
    return this;
  }

  /** Adds metrics of the server's owner to its /metrics (one registry, one route). */
  addMetrics(register: (registry: Registry) => void): this {
    this.collectors.push(register);
    return this;
  }

  /** Adds headers of the server's owner to every answer. */
  addHeaders(source: () => Record<string, string>): this {
    this.headerSources.push(source);
    return this;
  }

  /** prom-client and its default (process) metrics, set up at the first scrape: an engine nobody scrapes saves their memory. */
  private async metricsRegistry(): Promise<Registry> {
    const { Counter, Registry, collectDefaultMetrics } = await import('prom-client');
    const registry = new Registry();
    collectDefaultMetrics({ register: registry, prefix: this.metricsPrefix });
    const counts = this.requests;
    new Counter({
      name: `${this.metricsPrefix}http_requests_total`,
      help: 'API requests by route and status',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [k, n] of counts) {
          const [method, route, status] = JSON.parse(k) as string[];
          this.inc({ method, route, status }, n);
        }
      },
    });
    for (const c of this.collectors) c(registry);
    return registry;
  }

  async listen(hosts: string[], tls?: TlsPaths): Promise<void> {
    for (const h of hosts) {
      const server = h.startsWith('tcp://') && tls ? https.createServer(await mtlsServerOptions(tls)) : http.createServer();
      server.on('tlsClientError', (err: Error, s: Socket) => this.log.warn({ host: h, client: s.remoteAddress, err: err.message.trim() }, 'TLS handshake refused'));
      server.keepAliveTimeout = 60_000;
      server.on('request', (req, res) => void this.dispatch(req, res));
      server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
        // Node drops its own error handler from an upgraded socket: a client that resets it must not crash the engine
        socket.on('error', () => socket.destroy());
        // over TLS Node ends the socket when the docker CLI half-closes the TCP connection under it (its input is
        // done), before the output is sent: exec and attach would print nothing
        (socket as Socket).allowHalfOpen = true;
        void this.dispatch(req, undefined, { socket, head });
      });
      server.on('connection', (s: Socket) => {
        this.sockets.add(s);
        s.once('close', () => this.sockets.delete(s));
      });
      if (h.startsWith('unix://')) {
        const p = h.slice(7);
        await fs.mkdir(path.dirname(p), { recursive: true });
        await fs.rm(p, { force: true });
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(p, () => resolve());
        });
        await fs.chmod(p, 0o660); // root (and the socket's group) only
      } else {
        const u = new URL(h.replace(/^tcp:/, 'https:'));
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(Number(u.port || 2376), u.hostname, () => resolve());
        });
      }
      this.servers.push(server);
      this.log.info({ host: h }, 'API listening');
    }
  }

  private dispatch(req: http.IncomingMessage, res: http.ServerResponse | undefined, upgrade?: { socket: Duplex; head: Buffer }): Promise<void> {
    return this.intercept?.(req, res, upgrade) ? Promise.resolve() : this.serve(req, res, upgrade);
  }

  /** Routes and answers a request here, past `intercept`. */
  async serve(req: http.IncomingMessage, res: http.ServerResponse | undefined, upgrade?: { socket: Duplex; head: Buffer }): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://engine');
    let p = url.pathname;
    let version = API_VERSION;
    const m = VERSION_PREFIX.exec(p);
    if (m) {
      version = m[1]!;
      p = m[2]!;
    }
    const ctx = new Ctx(req, res, p, url.searchParams, version, upgrade);
    if (res) for (const h of [commonHeaders(), ...this.headerSources.map((f) => f())]) for (const [k, v] of Object.entries(h)) res.setHeader(k, v);
    let route = 'unknown';
    this.inflight++;
    let longLived = false;
    ctx.onLongLived = () => {
      if (!longLived) {
        longLived = true;
        this.inflight--;
      }
    };
    const started = Date.now();
    try {
      if (compareVersions(version, API_VERSION) > 0) throw invalid(`client version ${version} is too new. Maximum supported API version is ${API_VERSION}`);
      if (compareVersions(version, MIN_API_VERSION) < 0) throw invalid(`client version ${version} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`);
      const hit = this.router.match(ctx.method, p);
      if (!hit || hit === 'method') throw notFound('page not found');
      route = hit.handler.name || p.replace(/\/[a-f0-9]{12,64}(?=\/|$)/g, '/{id}');
      ctx.params = hit.params;
      // a hijacked stream starts after the request body, which the route may or may not read (dockerd drops it)
      if (upgrade) await ctx.bodyBuffer();
      await hit.handler(ctx);
    } catch (err) {
      const status = statusOf(err);
      if (isPeerGone(err)) this.log.debug({ method: req.method, path: p, err: errorMessage(err) }, 'client went away');
      else if (status >= 500) this.log.error({ method: req.method, path: p, err: errorMessage(err) }, 'request failed');
      else this.log.debug({ method: req.method, path: p, status, err: errorMessage(err) }, 'request refused');
      if (res && res.headersSent) {
        // a streamed response has begun: Docker's clients read an error line in the stream
        if (!res.writableEnded) res.end(JSON.stringify({ errorDetail: { message: errorMessage(err) }, error: errorMessage(err) }) + '\n');
      } else if (!upgrade?.socket.destroyed) {
        ctx.error(err);
      }
    } finally {
      if (!longLived) this.inflight--;
      const status = res ? res.statusCode : 101;
      const key = JSON.stringify([req.method ?? 'GET', route.replace(/\/[a-f0-9]{64}/g, '/{id}').slice(0, 80), String(status)]);
      this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
      // a client that stopped reading and left is a normal end of a stream: noted here, not as an error
      const clientGone = !!res && res.destroyed && !res.writableFinished;
      this.log.debug({ method: req.method, path: p, status, ms: Date.now() - started, ...(clientGone ? { clientGone } : {}) }, 'request');
    }
  }

  /** Waits (bounded) until at most `others` requests are in flight besides long-lived streams. */
  async idle(ms: number, others = 0): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.inflight > others && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  /** Stop accepting, let in-flight requests finish (bounded), then drop what is left (streams). */
  async close(graceMs = 10_000): Promise<void> {
    for (const s of this.servers) s.close();
    // long-lived streams (events, logs -f, attach, wait) are not waited for: they end with the connection
    await this.idle(graceMs);
    for (const s of this.sockets) s.destroy();
  }
}
