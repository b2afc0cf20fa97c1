/**
 * The registry's HTTP server, on the HTTP kit (HTTPS with --tls-cert/--tls-key): the Distribution API under
 * `/v2/*` (repository names hold slashes, so routes.ts routes what the wildcard matched), the token service
 * beside it in token mode, /metrics, errors in the OCI flavour, request logs and graceful stop.
 *
 * Hot path: `GET|HEAD /v2/<name>/manifests/<ref>` answered from the manifest cache writes prebuilt
 * headers and the cached bytes before the kit routes anything, with no await, no URL object and no
 * per-request closures.
 */
import type http from 'node:http';
import { Counter, Gauge, Registry as PromRegistry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from '../../lib/log.js';
import { HttpApp, METHODS, type Handler, type Req } from '../../lib/http/app.js';
import type { ErrorFlavour } from '../../lib/http/status.js';
import { ociFlavour, regError } from '../errors.js';
import { allowAll, type Authorizer, type Scope } from '../hooks.js';
import type { Registry } from '../registry.js';
import { Handlers, manifestWire } from './handlers.js';
import { API_VERSION, API_VERSION_HEADER } from './http.js';
import { METHODS as ROUTE_METHODS, route, type Route } from './routes.js';

export interface ServerOptions {
  log: Logger;
  authorizer?: Authorizer;
  /** The built-in token service (auth token mode): served at `path`, outside /v2 and its authorization, errors in its own flavour. */
  tokenEndpoint?: { path: string; serve: Handler; flavour: ErrorFlavour };
}

export interface TlsFiles {
  cert: string;
  key: string;
}

/** Unread request bodies up to this size are read after an error (keeps the connection); larger ones close it. */
const DRAIN_LIMIT = 64 << 20;

export class RegistryServer {
  readonly metrics = new PromRegistry();
  private readonly log: Logger;
  private readonly authz: Authorizer;
  private readonly handlers: Handlers;
  private readonly app: HttpApp;
  private bytesIn = 0;
  private bytesOut = 0;

  constructor(
    readonly registry: Registry,
    opts: ServerOptions,
  ) {
    this.log = opts.log;
    this.authz = opts.authorizer ?? allowAll;
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
    this.app = new HttpApp({
      log: opts.log,
      flavour: ociFlavour,
      metrics: { registry: this.metrics, prefix: 'sampan_registry_' },
      headers: { [API_VERSION_HEADER]: API_VERSION },
      drainLimit: DRAIN_LIMIT,
      logLevel: (method) => (method === 'GET' || method === 'HEAD' ? 'debug' : 'info'),
      fastPath: this.cachedManifest,
    });
    const t = opts.tokenEndpoint;
    if (t) this.app.route(METHODS, t.path, 'token', t.serve, t.flavour);
    this.app.metricsRoute(this.metrics);
    this.app.route(METHODS, '/v2', 'base', this.v2);
    this.app.route(METHODS, '/v2/*', 'v2', this.v2);
    this.app.route(METHODS, '/*', 'unknown', (r) => {
      throw regError('ROUTE_UNKNOWN', `no such endpoint: ${r.method} ${(r.req.url ?? '').slice(0, 200)}`);
    });
    this.setupMetrics();
  }

  private setupMetrics(): void {
    const m = this.metrics;
    collectDefaultMetrics({ register: m, prefix: 'sampan_registry_' });
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
    const mirror = this.registry.mirrorBlobs;
    // a mirror's hit rate (the dashboard's images page): only a mirror has one
    if (this.registry.isMirror) {
      new Counter({
        name: 'sampan_registry_mirror_hits_total',
        help: 'blob GETs a mirror answered from its own store',
        registers: [m],
        collect() {
          this.reset();
          this.inc(mirror.hits);
        },
      });
      new Counter({
        name: 'sampan_registry_mirror_misses_total',
        help: 'blob GETs a mirror fetched from its upstream',
        registers: [m],
        collect() {
          this.reset();
          this.inc(mirror.misses);
        },
      });
    }
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

  /** The hot path: a cached manifest, answered at once; false when it is not one. */
  private readonly cachedManifest = (req: http.IncomingMessage, res: http.ServerResponse): boolean => {
    const method = req.method;
    if ((method !== 'GET' && method !== 'HEAD') || this.authz !== allowAll || this.app.closing) return false;
    const url = req.url ?? '/';
    if (!url.includes('/manifests/')) return false;
    const q = url.indexOf('?');
    let r: Route | undefined;
    try {
      r = route(q < 0 ? url : url.slice(0, q));
    } catch {
      return false;
    }
    if (r === undefined || r.kind !== 'manifest') return false;
    const e = this.registry.cachedManifest(r.name, r.ref);
    if (e === undefined) return false;
    res.writeHead(200, manifestWire(e).headers);
    if (method === 'GET') {
      res.end(e.bytes);
      this.bytesOut += e.bytes.length;
    } else {
      res.end();
    }
    this.app.count('manifest', method, 200);
    return true;
  };

  /** Everything under /v2: routed by routes.ts (names hold slashes), then the endpoint's handler. */
  private readonly v2 = (r: Req) => {
    const rt = route(r.path);
    if (rt === undefined) throw regError('ROUTE_UNKNOWN', `no such endpoint: ${r.method} ${(r.req.url ?? '').slice(0, 200)}`);
    r.route = rt.kind;
    if (!ROUTE_METHODS[rt.kind].includes(r.method)) throw regError('UNSUPPORTED', `${r.method} is not allowed on this endpoint`);
    return this.handlers.handle(r, rt);
  };

  async listen(host: string | undefined, port: number, tls?: TlsFiles): Promise<{ host: string; port: number }> {
    // large uploads take as long as they take
    const bound = await this.app.listen(host, port, { tls, keepAliveMs: 30_000, headersTimeoutMs: 60_000, requestTimeoutMs: 0 });
    this.log.info({ ...bound, tls: !!tls }, 'registry listening');
    return bound;
  }

  /** Stop accepting, let requests in flight finish (up to `timeoutMs`), then close every connection. */
  async close(timeoutMs = 30_000): Promise<void> {
    await this.app.close(timeoutMs);
  }
}
