/**
 * The registry's HTTP server (node:http, or https with --tls-cert/--tls-key): dispatch, the manifest
 * hot path, error rendering, /metrics, request logs and graceful stop.
 *
 * Hot path: `GET|HEAD /v2/<name>/manifests/<ref>` answered from the manifest cache writes prebuilt
 * headers and the cached bytes, with no await, no URL object and no per-request closures; metrics
 * there are plain integer increments that /metrics folds into prom-client counters when scraped.
 */
import http from 'node:http';
import https from 'node:https';
import { promises as fs } from 'node:fs';
import { Counter, Gauge, Registry as PromRegistry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from '../../lib/log.js';
import { RegistryError, regError } from '../errors.js';
import { allowAll, type Authorizer, type Scope } from '../hooks.js';
import type { Registry } from '../registry.js';
import { Handlers, manifestWire, type Ctx } from './handlers.js';
import { send, sendError } from './http.js';
import { isPeerGone } from '../../lib/streams.js';
import { METHODS, route, type Route } from './routes.js';
import { ServerDrain } from '../../lib/drain.js';

export interface ServerOptions {
  log: Logger;
  authorizer?: Authorizer;
  /** The built-in token service (auth token mode): served at `path`, outside /v2 and its authorization. */
  tokenEndpoint?: { path: string; handler: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void> };
}

export interface TlsFiles {
  cert: string;
  key: string;
}

export class RegistryServer {
  readonly metrics = new PromRegistry();
  private readonly log: Logger;
  private readonly authz: Authorizer;
  private readonly tokenEndpoint?: ServerOptions['tokenEndpoint'];
  private readonly handlers: Handlers;
  private server?: http.Server;
  private readonly drain = new ServerDrain();
  // plain counters on the hot path, folded into prom-client when scraped
  private readonly requestCounts = new Map<string, number>();
  private bytesIn = 0;
  private bytesOut = 0;

  constructor(
    readonly registry: Registry,
    opts: ServerOptions,
  ) {
    this.log = opts.log;
    this.authz = opts.authorizer ?? allowAll;
    this.tokenEndpoint = opts.tokenEndpoint;
    this.handlers = new Handlers({
      registry,
      authorize: (req, scope) => this.authorize(req, scope),
      countIn: (n) => {
        this.bytesIn += n;
      },
      countOut: (n) => {
        this.bytesOut += n;
      },
    });
    this.setupMetrics();
  }

  private setupMetrics(): void {
    const m = this.metrics;
    collectDefaultMetrics({ register: m, prefix: 'sampan_registry_' });
    const counts = this.requestCounts;
    new Counter({
      name: 'sampan_registry_http_requests_total',
      help: 'HTTP requests by route, method and status',
      labelNames: ['route', 'method', 'status'],
      registers: [m],
      collect() {
        this.reset();
        for (const [k, v] of counts) {
          const [route, method, status] = k.split(' ');
          this.inc({ route, method, status }, v);
        }
      },
    });
    const self = this; // eslint-disable-line @typescript-eslint/no-this-alias
    new Counter({
      name: 'sampan_registry_http_received_bytes_total',
      help: 'bytes received in request bodies (blob uploads, manifests)',
      registers: [m],
      collect() {
        this.reset();
        this.inc(self.bytesIn);
      },
    });
    new Counter({
      name: 'sampan_registry_http_sent_bytes_total',
      help: 'bytes sent in response bodies (blobs, manifests, listings)',
      registers: [m],
      collect() {
        this.reset();
        this.inc(self.bytesOut);
      },
    });
    const cache = this.registry.manifests;
    new Counter({
      name: 'sampan_registry_cache_hits_total',
      help: 'manifest and tag lookups answered from the in-memory cache',
      labelNames: ['cache'],
      registers: [m],
      collect() {
        this.reset();
        this.inc({ cache: 'manifest' }, cache.hits);
      },
    });
    new Counter({
      name: 'sampan_registry_cache_misses_total',
      help: 'manifest and tag lookups that went to storage',
      labelNames: ['cache'],
      registers: [m],
      collect() {
        this.reset();
        this.inc({ cache: 'manifest' }, cache.misses);
      },
    });
    new Gauge({
      name: 'sampan_registry_cache_bytes',
      help: 'bytes held by the manifest cache',
      registers: [m],
      collect() {
        this.set(cache.totalBytes);
      },
    });
    new Gauge({
      name: 'sampan_registry_cache_entries',
      help: 'entries in the manifest cache',
      registers: [m],
      collect() {
        this.set(cache.size);
      },
    });
  }

  private authorize(req: http.IncomingMessage, scope: Scope | undefined): void | Promise<void> {
    if (this.authz === allowAll) return;
    return this.authz.authorize(req, scope);
  }

  private count(kind: string, method: string, status: number): void {
    const k = `${kind} ${method} ${status}`;
    this.requestCounts.set(k, (this.requestCounts.get(k) ?? 0) + 1);
  }

  /** The request listener (also usable on a server made elsewhere). */
  readonly onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const method = req.method ?? 'GET';
    if (this.tokenEndpoint !== undefined && path === this.tokenEndpoint.path) {
      void this.serveToken(req, res, method, this.tokenEndpoint.handler);
      return;
    }
    let r: Route | undefined;
    try {
      r = route(path);
    } catch (err) {
      void this.finish(req, res, method, 'invalid', Date.now(), err);
      return;
    }
    // hot path: a cached manifest
    if (r !== undefined && r.kind === 'manifest' && (method === 'GET' || method === 'HEAD') && this.authz === allowAll && !this.drain.closing) {
      const e = this.registry.cachedManifest(r.name, r.ref);
      if (e !== undefined) {
        res.writeHead(200, manifestWire(e).headers);
        if (method === 'GET') {
          res.end(e.bytes);
          this.bytesOut += e.bytes.length;
        } else {
          res.end();
        }
        this.count('manifest', method, 200);
        return;
      }
    }
    void this.dispatch(req, res, method, r, q < 0 ? '' : url.slice(q + 1));
  };

  private async dispatch(req: http.IncomingMessage, res: http.ServerResponse, method: string, r: Route | undefined, query: string): Promise<void> {
    const t0 = Date.now();
    const done = this.drain.begin();
    let status = 500;
    const kind = r?.kind ?? (req.url === '/metrics' || req.url?.startsWith('/metrics?') ? 'metrics' : 'unknown');
    try {
      if (this.drain.closing) res.setHeader('Connection', 'close');
      if (kind === 'metrics') {
        if (method !== 'GET' && method !== 'HEAD') throw regError('UNSUPPORTED', `${method} is not allowed on /metrics`);
        send(res, 200, { 'Content-Type': this.metrics.contentType }, await this.metrics.metrics());
        status = 200;
      } else if (r === undefined) {
        throw regError('ROUTE_UNKNOWN', `no such endpoint: ${method} ${(req.url ?? '').slice(0, 200)}`);
      } else {
        if (!METHODS[r.kind].includes(method)) throw regError('UNSUPPORTED', `${method} is not allowed on this endpoint`);
        const ctx: Ctx = { req, res, method, route: r, query };
        status = await this.handlers.handle(ctx);
      }
      this.logRequest(req, method, kind, status, t0);
      this.count(kind, method, status);
    } catch (err) {
      await this.finish(req, res, method, kind, t0, err);
    } finally {
      done();
    }
  }

  /** The token endpoint: its handler answers (and delays failed logins); counted, logged and waited for like the rest. */
  private async serveToken(req: http.IncomingMessage, res: http.ServerResponse, method: string, handler: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>): Promise<void> {
    const t0 = Date.now();
    const done = this.drain.begin();
    try {
      if (this.drain.closing) res.setHeader('Connection', 'close');
      await handler(req, res);
      this.logRequest(req, method, 'token', res.statusCode, t0);
      this.count('token', method, res.statusCode);
    } catch (err) {
      await this.finish(req, res, method, 'token', t0, err);
    } finally {
      done();
    }
  }

  /** Answer an error (when the response has not started) and account for it. */
  private async finish(req: http.IncomingMessage, res: http.ServerResponse, method: string, kind: string, t0: number, err: unknown): Promise<void> {
    if (isPeerGone(err) && !(err instanceof RegistryError)) {
      this.log.debug({ method, url: req.url, err: (err as Error).message }, 'client went away');
      this.count(kind, method, 499);
      if (!res.headersSent) res.destroy();
      return;
    }
    const e = err instanceof RegistryError ? err : regError('INTERNAL', 'internal error');
    if (!(err instanceof RegistryError)) this.log.error({ err, method, url: req.url }, 'request failed');
    if (res.headersSent) {
      res.destroy(); // mid-stream failure: the client sees a truncated body, never a wrong one
    } else {
      if (this.drain.closing) res.setHeader('Connection', 'close');
      sendError(req, res, e);
    }
    this.logRequest(req, method, kind, e.status, t0, e);
    this.count(kind, method, e.status);
  }

  private logRequest(req: http.IncomingMessage, method: string, kind: string, status: number, t0: number, err?: RegistryError): void {
    const level = status >= 500 ? 'error' : method === 'GET' || method === 'HEAD' ? 'debug' : 'info';
    if (!this.log.isLevelEnabled(level)) return;
    this.log[level]({ method, url: req.url, route: kind, status, ms: Date.now() - t0, ...(err ? { code: err.code, error: err.message } : {}) }, 'request');
  }

  async listen(host: string | undefined, port: number, tls?: TlsFiles): Promise<{ host: string; port: number }> {
    const server = tls ? https.createServer({ cert: await fs.readFile(tls.cert), key: await fs.readFile(tls.key) }) : http.createServer();
    server.keepAliveTimeout = 30_000;
    server.headersTimeout = 60_000;
    server.requestTimeout = 0; // large uploads take as long as they take
    server.on('request', this.onRequest);
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      if (socket.writable && err.code !== 'ECONNRESET') socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
    const bound = await this.drain.listen(server, host, port);
    this.server = server;
    this.log.info({ ...bound, tls: !!tls }, 'registry listening');
    return bound;
  }

  /** Stop accepting, let requests in flight finish (up to `timeoutMs`), then close every connection. */
  async close(timeoutMs = 30_000): Promise<void> {
    const server = this.server;
    if (!server || this.drain.closing) return;
    await this.drain.close(server, timeoutMs);
  }
}
