import http from 'node:http';
import https from 'node:https';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from '../../lib/log.js';
import { invalid, internal, errorMessage } from '../../lib/errors.js';
import { isPeerGone } from '../../lib/streams.js';
import { Ctx, Router, API_VERSION, MIN_API_VERSION, commonHeaders, compareVersions } from './http.js';
import { statusOf } from '../../lib/http/status.js';
import type { Engine } from '../engine.js';
import { systemRoutes } from './system.js';
import { containerRoutes } from './containers.js';
import { imageRoutes } from './images.js';
import { archiveRoutes } from './archive.js';
import { commitRoutes } from './commit.js';
import { networkRoutes } from './networks.js';
import { resourceRoutes } from './resources.js';

const VERSION_PREFIX = /^\/v(\d+\.\d+)(\/.*)$/;

/**
 * Routes whose module loads at their first request: the builder and the registry client are a good share of
 * the engine's code, which an engine that never builds, pushes or logs in need not hold.
 */
function lazyRoutes(r: Router, e: Engine, routes: Array<[string, string]>, load: () => Promise<(r: Router, e: Engine) => void>): void {
  let loaded: Promise<Router> | undefined;
  const routesOf = async () => {
    const register = await load();
    const sub = new Router();
    register(sub, e);
    return sub;
  };
  for (const [method, pattern] of routes) {
    r.add(method, pattern, async (ctx) => {
      const hit = (await (loaded ??= routesOf())).match(method, ctx.path);
      if (!hit || hit === 'method') throw internal(`lazy route ${method} ${pattern} is not in its module`);
      await hit.handler(ctx);
    });
  }
}

/** The Docker Engine API server: version handling, routing, error mapping, graceful shutdown. */
export class ApiServer {
  private readonly router = new Router();
  private readonly servers: http.Server[] = [];
  private readonly sockets = new Set<Socket>();
  private inflight = 0;
  /** API requests by JSON [method, route, status]: counted here, turned into a Prometheus counter when scraped. */
  private readonly requests = new Map<string, number>();
  private metrics?: Promise<Registry>;

  constructor(
    private readonly engine: Engine,
    private readonly log: Logger,
  ) {
    systemRoutes(this.router, engine);
    containerRoutes(this.router, engine);
    imageRoutes(this.router, engine);
    lazyRoutes(this.router, engine, [['POST', '/build'], ['POST', '/build/prune']], async () => (await import('./build.js')).buildRoutes);
    archiveRoutes(this.router, engine);
    commitRoutes(this.router, engine);
    lazyRoutes(this.router, engine, [['POST', '/images/{name*}/push'], ['GET', '/distribution/{name*}/json'], ['POST', '/auth']], async () => (await import('./registry.js')).registryRoutes);
    networkRoutes(this.router, engine);
    resourceRoutes(this.router, engine);
    this.router.add('GET', '/metrics', async (ctx) => {
      const m = await (this.metrics ??= this.metricsRegistry());
      ctx.send(200, await m.metrics(), { 'Content-Type': m.contentType });
    });
  }

  /** prom-client and its default (process) metrics, set up at the first scrape: an engine nobody scrapes saves their memory. */
  private async metricsRegistry(): Promise<Registry> {
    const { Counter, Registry, collectDefaultMetrics } = await import('prom-client');
    const registry = new Registry();
    collectDefaultMetrics({ register: registry, prefix: 'sampan_engine_' });
    const counts = this.requests;
    new Counter({
      name: 'sampan_engine_http_requests_total',
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
    return registry;
  }

  async listen(hosts: string[], tls?: { ca: string; cert: string; key: string }): Promise<void> {
    for (const h of hosts) {
      const server = h.startsWith('tcp://') && tls
        ? https.createServer({ ca: await fs.readFile(tls.ca), cert: await fs.readFile(tls.cert), key: await fs.readFile(tls.key), requestCert: true, rejectUnauthorized: true })
        : http.createServer();
      server.keepAliveTimeout = 60_000;
      server.on('request', (req, res) => void this.dispatch(req, res));
      server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
        // Node drops its own error handler from an upgraded socket: a client that resets it must not crash the engine
        socket.on('error', () => socket.destroy());
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

  private async dispatch(req: http.IncomingMessage, res: http.ServerResponse | undefined, upgrade?: { socket: Duplex; head: Buffer }): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://engine');
    let p = url.pathname;
    let version = API_VERSION;
    const m = VERSION_PREFIX.exec(p);
    if (m) {
      version = m[1]!;
      p = m[2]!;
    }
    const ctx = new Ctx(req, res, p, url.searchParams, version, upgrade);
    if (res) for (const [k, v] of Object.entries(commonHeaders())) res.setHeader(k, v);
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
      if (!hit || hit === 'method') {
        ctx.send(404, { message: 'page not found' });
        return;
      }
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

  /** Stop accepting, let in-flight requests finish (bounded), then drop what is left (streams). */
  async close(graceMs = 10_000): Promise<void> {
    for (const s of this.servers) s.close();
    const deadline = Date.now() + graceMs;
    // long-lived streams (events, logs -f, attach, wait) are not waited for: they end with the connection
    while (this.inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const s of this.sockets) s.destroy();
  }
}
