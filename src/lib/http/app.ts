/**
 * The HTTP kit every Sampan daemon serves its API with: routes (find-my-way, the router under Fastify), bodies
 * read with a limit, errors rendered by the API's flavour from the one status table, request metrics, /metrics
 * and /healthz, and a graceful drain. Handlers return a reply, or write the response themselves (streams) and
 * return nothing; a client that goes away mid-response is normal, never an error.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import { promises as fs } from 'node:fs';
import findMyWay, { type HTTPVersion } from 'find-my-way';
import { Counter, Histogram, type Registry } from 'prom-client';
import { invalid, methodNotAllowed, notFound, tooLarge } from '../errors.js';
import type { Logger } from '../log.js';
import { ServerDrain } from '../drain.js';
import { isPeerGone } from '../streams.js';
import type { ErrorFlavour } from './status.js';

export interface Reply {
  status: number;
  /** A Buffer or string is sent as it is; anything else as JSON. */
  body?: unknown;
  headers?: Record<string, string | number>;
}

/** A request as a handler sees it. */
export class Req {
  /** What metrics and logs call the request: the route's name, unless a handler that routes further names it. */
  route = '';

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly method: string,
    readonly path: string,
    readonly params: Record<string, string | undefined>,
    readonly query: URLSearchParams,
    private readonly maxBody: number,
  ) {}

  param(name: string): string {
    return this.params[name] ?? '';
  }

  /** The whole body; over `limit` bytes it is refused (413) before more is read. */
  async body(limit = this.maxBody): Promise<Buffer> {
    const cl = Number(this.req.headers['content-length'] ?? 0);
    if (cl > limit) throw tooLarge(`body larger than ${limit} bytes`);
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of this.req) {
      n += (c as Buffer).length;
      if (n > limit) throw tooLarge(`body larger than ${limit} bytes`);
      chunks.push(c as Buffer);
    }
    return Buffer.concat(chunks, n);
  }

  /** The body as JSON, required. */
  async json(limit?: number): Promise<unknown> {
    const text = (await this.body(limit)).toString('utf8');
    if (!text.trim()) throw invalid('a JSON body is required');
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw invalid('the body is not JSON');
    }
  }
}

export type Handler = (r: Req) => Promise<Reply | void> | Reply | void;

interface Route {
  name: string;
  handler: Handler;
  /** Errors of this route in another API's shape (a token service beside a registry). */
  flavour?: ErrorFlavour;
}

export interface HttpAppOptions {
  log: Logger;
  flavour: ErrorFlavour;
  /**
   * Where request metrics go: `<prefix>http_requests_total`, and with `latency` `<prefix>http_request_duration_seconds`
   * (a histogram costs more per request than a hot path's whole answer: APIs that serve thousands a second go without).
   */
  metrics?: { registry: Registry; prefix: string; latency?: boolean };
  /** Bodies larger than this are refused with 413 unless a route reads with its own limit. */
  maxBody?: number;
  /** The level of a request's log line (default debug; failures are logged as errors besides). */
  logLevel?: (method: string) => 'debug' | 'info';
  /** Headers on every response (an API version, a server name). */
  headers?: Record<string, string>;
  /** Answers a request before routing when it can (a hot path with no await), and then says true. */
  fastPath?: (req: IncomingMessage, res: ServerResponse) => boolean;
  /** An unread request body up to this size is read after an error answer, to keep the connection; a larger one closes it. */
  drainLimit?: number;
}

export interface ListenOptions {
  /** Serve HTTPS with this certificate and key (PEM files). */
  tls?: { cert: string; key: string };
  /** Idle keep-alive of a connection (default 30 s): longer than the clients keep theirs. */
  keepAliveMs?: number;
  /** Time to receive a request's headers (default 30 s). */
  headersTimeoutMs?: number;
  /** Time to receive a whole request (default Node's; 0: as long as it takes, for large uploads). */
  requestTimeoutMs?: number;
}

/** The status requests are counted with whose client went away before the answer was complete (nginx's). */
const CLIENT_GONE = 499;

/** The methods routes answer. */
export const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
export type Method = (typeof METHODS)[number];

export class HttpApp {
  private readonly router = findMyWay<HTTPVersion.V1>({ ignoreTrailingSlash: true, maxParamLength: 500 });
  private readonly drain = new ServerDrain();
  private readonly servers: http.Server[] = [];
  // request counts as plain integers (a label lookup in prom-client costs more than a hot path's answer), folded
  // into the counter when /metrics is scraped
  private readonly counts = new Map<string, number>();
  private readonly latency?: Histogram;

  constructor(private readonly o: HttpAppOptions) {
    if (o.metrics) {
      const { registry, prefix } = o.metrics;
      const counts = this.counts;
      new Counter({
        name: `${prefix}http_requests_total`,
        help: 'API requests by route, method and status',
        labelNames: ['route', 'method', 'status'],
        registers: [registry],
        collect() {
          this.reset();
          for (const [k, n] of counts) {
            const [route, method, status] = k.split(' ');
            this.inc({ route, method, status }, n);
          }
        },
      });
      if (o.metrics.latency) this.latency = new Histogram({ name: `${prefix}http_request_duration_seconds`, help: 'Time to the end of the response (or to the start of a stream), by route', labelNames: ['route'], registers: [registry], buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10] });
    }
  }

  /** Add a route; `name` labels its metrics and logs. A GET route answers HEAD too, without the body. */
  route(method: Method | readonly Method[], path: string, name: string, handler: Handler, flavour?: ErrorFlavour): this {
    for (const m of typeof method === 'string' ? [method] : method) this.router.on(m, path, () => undefined, { name, handler, flavour } satisfies Route);
    return this;
  }

  /** Count a request answered outside the kit (a hot path that writes its response itself). */
  count(route: string, method: string, status: number): void {
    const k = `${route} ${method} ${status}`;
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }

  /** GET /metrics from a prom-client registry. */
  metricsRoute(registry: Registry): this {
    return this.route('GET', '/metrics', 'metrics', async () => ({ status: 200, body: await registry.metrics(), headers: { 'Content-Type': registry.contentType } }));
  }

  /** GET /healthz: 200 with what `status` returns. */
  healthRoute(status: () => unknown): this {
    return this.route('GET', '/healthz', 'healthz', () => ({ status: 200, body: status() }));
  }

  /** The request listener, for servers made elsewhere (TLS, unix sockets). */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    if (this.o.fastPath?.(req, res)) return;
    res.once('close', this.drain.begin());
    void this.serve(req, res);
  };

  private find(method: string, path: string): Route | { allow: string[] } | undefined {
    const hit = this.router.find(method as Method, path) ?? (method === 'HEAD' ? this.router.find('GET', path) : null);
    if (hit) return Object.assign({ params: hit.params }, hit.store as Route);
    const allow = METHODS.filter((m) => this.router.find(m, path));
    return allow.length ? { allow } : undefined;
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const t0 = performance.now();
    const method = req.method ?? 'GET';
    // the path as sent: routes that read it (names with slashes) must see `..` and `%2F` as they came
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const path = q < 0 ? raw : raw.slice(0, q);
    let r: Req | undefined;
    let flavour = this.o.flavour;
    let status: number | undefined;
    try {
      if (this.drain.closing) res.setHeader('Connection', 'close');
      const hit = this.find(method, path);
      if (!hit) throw notFound(`no route ${method} ${path.slice(0, 200)}`);
      if ('allow' in hit) throw methodNotAllowed(method, path.slice(0, 200), hit.allow);
      flavour = hit.flavour ?? flavour;
      r = new Req(req, res, method, path, (hit as unknown as { params: Record<string, string> }).params, new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)), this.o.maxBody ?? 8 << 20);
      r.route = hit.name;
      const reply = await hit.handler(r);
      if (reply) this.send(req, res, reply);
    } catch (err) {
      status = this.fail(req, res, err, path, flavour);
    } finally {
      const route = r?.route ?? 'unknown';
      status ??= res.statusCode;
      this.count(route, method, status);
      this.latency?.observe({ route }, (performance.now() - t0) / 1000);
      this.o.log[this.o.logLevel?.(method) ?? 'debug']({ method, url: req.url, route, status, ms: Math.round((performance.now() - t0) * 10) / 10 }, 'request');
    }
  }

  private send(req: IncomingMessage, res: ServerResponse, r: Reply): void {
    if (res.destroyed) return;
    // not a spread: V8 builds one of these per response several times slower
    const headers: Record<string, string | number> = Object.assign({}, this.o.headers, r.headers);
    let body: Buffer | undefined;
    if (r.body !== undefined) {
      body = Buffer.isBuffer(r.body) ? r.body : Buffer.from(typeof r.body === 'string' ? r.body : JSON.stringify(r.body));
      if (!Buffer.isBuffer(r.body) && typeof r.body !== 'string') headers['Content-Type'] ??= 'application/json; charset=utf-8';
      headers['Content-Length'] = body.length;
    } else if (r.status !== 204 && r.status !== 304) {
      headers['Content-Length'] ??= 0;
    }
    // a body refused before it was read: closing is cheaper than reading a large one to keep the connection
    if (!req.complete && hasBody(req) && !(Number(req.headers['content-length']) <= (this.o.drainLimit ?? 0))) headers.Connection = 'close';
    res.writeHead(r.status, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  /** Answer an error (or cut a response under way); the status to count it as. */
  private fail(req: IncomingMessage, res: ServerResponse, err: unknown, path: string, flavour: ErrorFlavour): number {
    if (isPeerGone(err) && !res.writableEnded) {
      this.o.log.debug({ method: req.method, path, err: (err as Error).message }, 'client went away');
      res.destroy();
      return CLIENT_GONE;
    }
    const { status, body, headers } = flavour.render(err);
    if (status >= 500) this.o.log.error({ err, method: req.method, path }, 'request failed');
    else this.o.log.debug({ method: req.method, path, status, err: (err as Error)?.message }, 'request refused');
    // a response already under way cannot change its status: cut it, so the client sees it incomplete
    if (res.headersSent) res.destroy();
    else this.send(req, res, { status, body, headers });
    return status;
  }

  /** Listen on HOST:PORT (HTTP, or HTTPS with `tls`); the bound address. */
  async listen(host: string | undefined, port: number, o: ListenOptions = {}): Promise<{ host: string; port: number }> {
    const server = o.tls ? https.createServer({ cert: await fs.readFile(o.tls.cert), key: await fs.readFile(o.tls.key) }, this.handle) : http.createServer(this.handle);
    server.keepAliveTimeout = o.keepAliveMs ?? 30_000;
    server.headersTimeout = o.headersTimeoutMs ?? 30_000;
    if (o.requestTimeoutMs !== undefined) server.requestTimeout = o.requestTimeoutMs;
    this.servers.push(server);
    return this.drain.listen(server, host, port);
  }

  /** Whether close() has begun. */
  get closing(): boolean {
    return this.drain.closing;
  }

  /** Stop accepting, let requests in flight finish (up to `timeoutMs`), then close every connection. */
  async close(timeoutMs: number): Promise<void> {
    await Promise.all(this.servers.splice(0).map((s) => this.drain.close(s, timeoutMs)));
  }
}

/** Whether the request carries a body (Content-Length > 0 or chunked). */
export function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
}
