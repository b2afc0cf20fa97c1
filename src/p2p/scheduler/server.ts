/**
 * The scheduler's HTTP API (node:http, JSON): the routes of src/p2p/protocol.ts, a debug view of a task,
 * /healthz and /metrics. Bodies are checked with zod; errors are `{ "error": { "code", "message" } }`.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { z } from 'zod';
import { SampanError, errorMessage, invalid, notFound, type ErrorCode } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import type { TaskId } from '../protocol.js';
import type { SchedulerMetrics } from './metrics.js';
import type { PreheatManager } from './preheat.js';
import { AnnounceSchema, PreheatSchema, ProgressSchema, RegisterPeerSchema, peerId, taskId } from './schemas.js';
import type { SchedulerState } from './state.js';
import { ServerDrain } from '../../lib/drain.js';

const MAX_BODY = 8 << 20;

interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

interface Route {
  name: string;
  method: string;
  re: RegExp;
  handle(params: string[], req: IncomingMessage): Promise<Reply> | Reply;
}

const STATUS: Partial<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  NOT_IMPLEMENTED: 501,
  UNAVAILABLE: 503,
};

/** A rejection with an HTTP status of its own (405, 413), beside the typed errors. */
class HttpError extends SampanError {
  constructor(
    readonly status: number,
    code: ErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(code, message);
  }
}

export interface ServerDeps {
  state: SchedulerState;
  preheat: PreheatManager;
  metrics: SchedulerMetrics;
  log: Logger;
}

export class SchedulerServer {
  private server?: http.Server;
  private readonly drain = new ServerDrain();
  private readonly routes: Route[];

  constructor(private readonly d: ServerDeps) {
    const { state, preheat, metrics } = d;
    this.routes = [
      {
        name: 'peers',
        method: 'POST',
        re: /^\/api\/v1\/peers$/,
        handle: async (_p, req) => {
          const h = state.registerPeer(parse(RegisterPeerSchema, await readJson(req)));
          return { status: 200, body: { peerId: h.peerId, addr: h.addr, ...(h.zone !== undefined ? { zone: h.zone } : {}), uploadSlots: h.uploadSlots } };
        },
      },
      {
        name: 'announce',
        method: 'POST',
        re: /^\/api\/v1\/tasks\/([^/]+)\/announce$/,
        handle: async ([t], req) => ({ status: 200, body: state.announce(task(t!), parse(AnnounceSchema, await readJson(req))) }),
      },
      {
        name: 'progress',
        method: 'POST',
        re: /^\/api\/v1\/tasks\/([^/]+)\/peers\/([^/]+)\/progress$/,
        handle: async ([t, p], req) => {
          const id = task(t!);
          const pid = peer(p!);
          return { status: 200, body: state.progress(id, pid, parse(ProgressSchema, await readJson(req))) };
        },
      },
      {
        name: 'leave',
        method: 'DELETE',
        re: /^\/api\/v1\/tasks\/([^/]+)\/peers\/([^/]+)$/,
        handle: ([t, p]) => {
          state.leave(task(t!), peer(p!));
          return { status: 204 };
        },
      },
      { name: 'task', method: 'GET', re: /^\/api\/v1\/tasks\/([^/]+)$/, handle: ([t]) => ({ status: 200, body: state.view(task(t!)) }) },
      {
        name: 'preheat',
        method: 'POST',
        re: /^\/api\/v1\/preheat$/,
        handle: async (_p, req) => {
          const { job } = preheat.create(parse(PreheatSchema, await readJson(req)));
          return { status: 202, body: job, headers: { Location: `/api/v1/preheat/${job.id}` } };
        },
      },
      { name: 'preheat-job', method: 'GET', re: /^\/api\/v1\/preheat\/([^/]+)$/, handle: ([id]) => ({ status: 200, body: preheat.get(id!) }) },
      { name: 'healthz', method: 'GET', re: /^\/healthz$/, handle: () => ({ status: 200, body: { status: 'ok', tasks: state.taskCount, peers: state.liveHosts().length } }) },
      {
        name: 'metrics',
        method: 'GET',
        re: /^\/metrics$/,
        handle: async () => ({ status: 200, body: Buffer.from(await metrics.registry.metrics()), headers: { 'Content-Type': metrics.registry.contentType } }),
      },
    ];
  }

  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    res.once('close', this.drain.begin());
    void this.serve(req, res);
  };

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const t0 = performance.now();
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    let name = 'unknown';
    let reply: Reply;
    try {
      const matching = this.routes.filter((r) => r.re.test(path));
      if (matching.length === 0) throw notFound(`no route ${method} ${path}`);
      const r = matching.find((m) => m.method === method || (method === 'HEAD' && m.method === 'GET'));
      name = (r ?? matching[0]!).name;
      if (!r) throw new HttpError(405, 'INVALID_ARGUMENT', `${method} is not allowed on ${path}`, { Allow: matching.map((m) => m.method).join(', ') });
      const params = r.re.exec(path)!.slice(1).map(decode);
      reply = await r.handle(params, req);
    } catch (err) {
      reply = this.errorReply(err, method, path);
    }
    this.send(req, res, reply, method);
    const key = `${name} ${method} ${reply.status}`;
    this.d.metrics.requests.set(key, (this.d.metrics.requests.get(key) ?? 0) + 1);
    this.d.log.debug({ method, path, status: reply.status, ms: Math.round((performance.now() - t0) * 10) / 10 }, 'request');
  }

  private errorReply(err: unknown, method: string, path: string): Reply {
    const e = err instanceof SampanError ? err : undefined;
    const code: ErrorCode = e?.code ?? 'INTERNAL';
    const status = err instanceof HttpError ? err.status : (STATUS[code] ?? 500);
    if (status >= 500) this.d.log.error({ err, method, path }, 'request failed');
    return { status, body: { error: { code, message: e ? e.message : `internal error: ${errorMessage(err)}` } }, headers: err instanceof HttpError ? err.headers : {} };
  }

  private send(req: IncomingMessage, res: ServerResponse, r: Reply, method: string): void {
    const headers: Record<string, string | number> = { ...r.headers };
    let body: Buffer | undefined;
    if (r.body !== undefined) {
      body = Buffer.isBuffer(r.body) ? r.body : Buffer.from(JSON.stringify(r.body));
      headers['Content-Type'] ??= 'application/json; charset=utf-8';
      headers['Content-Length'] = body.length;
    } else if (r.status !== 204) {
      headers['Content-Length'] = 0;
    }
    // an unread body (refused before it was read): close rather than read it to keep the connection
    const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
    if (!req.complete && hasBody) headers.Connection = 'close';
    res.writeHead(r.status, headers);
    res.end(method === 'HEAD' ? undefined : body);
  }

  async listen(host: string | undefined, port: number): Promise<{ host: string; port: number }> {
    const server = http.createServer();
    server.keepAliveTimeout = 30_000;
    server.headersTimeout = 30_000;
    server.requestTimeout = 60_000;
    server.on('request', this.onRequest);
    const bound = await this.drain.listen(server, host, port);
    this.server = server;
    return bound;
  }

  /** Stop accepting, let requests in flight finish (up to `timeoutMs`), then close every connection. */
  async close(timeoutMs: number): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await this.drain.close(server, timeoutMs);
  }
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw invalid(`bad percent-encoding in ${JSON.stringify(s)}`);
  }
}

const task = (s: string): TaskId => parse(taskId, s);
const peer = (s: string): string => parse(peerId, s);

function parse<T extends z.ZodType>(schema: T, v: unknown): z.output<T> {
  const r = schema.safeParse(v);
  if (r.success) return r.data;
  const i = r.error.issues[0]!;
  throw invalid(i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const cl = Number(req.headers['content-length'] ?? 0);
  if (cl > MAX_BODY) throw new HttpError(413, 'INVALID_ARGUMENT', `body larger than ${MAX_BODY} bytes`);
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > MAX_BODY) throw new HttpError(413, 'INVALID_ARGUMENT', `body larger than ${MAX_BODY} bytes`);
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text.trim()) throw invalid('a JSON body is required');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw invalid('the body is not JSON');
  }
}
