import findMyWay, { type HTTPMethod, type HTTPVersion } from 'find-my-way';
import { VERSION } from '../lib/version.js';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { invalid } from '../lib/errors.js';
import { dockerFlavour } from '../lib/http/status.js';
import type { Filters, Output } from './backend.js';

export const API_VERSION = '1.44';
export const MIN_API_VERSION = '1.24';
export const ENGINE_VERSION = VERSION;

export function commonHeaders(): Record<string, string> {
  return {
    'Api-Version': API_VERSION,
    'Ostype': 'linux',
    'Server': `Sampan/${ENGINE_VERSION} (linux)`,
    'Docker-Experimental': 'false',
  };
}

export function compareVersions(a: string, b: string): number {
  const [a1 = 0, a2 = 0] = a.split('.').map(Number);
  const [b1 = 0, b2 = 0] = b.split('.').map(Number);
  return a1 !== b1 ? a1 - b1 : a2 - b2;
}

/** A request being handled: parsed path, query and version; a response or, after an upgrade, a raw socket. */
export class Ctx {
  params: Record<string, string> = {};
  private hijacked: Duplex | undefined;
  /** Told when the request becomes a long-lived stream (graceful shutdown does not wait for those). */
  onLongLived: () => void = () => undefined;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse | undefined,
    readonly path: string,
    readonly query: URLSearchParams,
    readonly version: string,
    /** The socket of an HTTP upgrade request, with the bytes already read past the headers. */
    readonly upgrade?: { socket: Duplex; head: Buffer },
  ) {}

  get method(): string {
    return this.req.method ?? 'GET';
  }

  param(name: string): string {
    return this.params[name] ?? '';
  }

  /** Docker's boolean query parameters: "1", "true", "True" are true. */
  bool(name: string, dflt = false): boolean {
    const v = this.query.get(name);
    if (v === null || v === '') return dflt;
    return !(v === '0' || v.toLowerCase() === 'false');
  }

  int(name: string, dflt?: number): number | undefined {
    const v = this.query.get(name);
    if (v === null || v === '') return dflt;
    const n = Number(v);
    if (!Number.isFinite(n)) throw invalid(`invalid value for ${name}: ${JSON.stringify(v)}`);
    return n;
  }

  /** Docker's JSON-encoded `filters` parameter: {"key": ["v", ...]} or the older {"key": {"v": true}}. */
  filters(): Filters {
    const raw = this.query.get('filters');
    const out = new Map<string, string[]>();
    if (!raw) return out;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      throw invalid(`invalid filter: ${raw}`);
    }
    // as Go decodes it into map[string]map[string]bool, or the older map[string][]string
    if (parsed === null) return out;
    if (typeof parsed !== 'object' || Array.isArray(parsed)) throw invalid(`invalid filter: ${raw}`);
    for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
      if (v === null) out.set(k, []);
      else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) out.set(k, v);
      else if (typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((x) => x === null || typeof x === 'boolean')) out.set(k, Object.keys(v));
      else throw invalid(`invalid filter: ${raw}`);
    }
    return out;
  }

  private upgradeBody?: Promise<Buffer>;

  async bodyBuffer(limit = 16 << 20): Promise<Buffer> {
    if (this.upgrade) {
      this.upgradeBody ??= this.readUpgradeBody(limit);
      return this.upgradeBody;
    }
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of this.req) {
      n += (c as Buffer).length;
      if (n > limit) throw invalid(`request body larger than ${limit} bytes`);
      chunks.push(c as Buffer);
    }
    return Buffer.concat(chunks);
  }

  /**
   * On an upgrade Node hands the body over with the socket: take Content-Length bytes and keep the rest, which is
   * the client's stream input. Read in paused mode: a 'data' listener would make the socket flow and drop what
   * follows, and an explicit pause() would keep the stream from ever flowing again.
   */
  private async readUpgradeBody(limit: number): Promise<Buffer> {
    const up = this.upgrade!;
    const n = Number(this.req.headers['content-length'] ?? 0);
    if (!(n > 0)) return Buffer.alloc(0);
    if (n > limit) throw invalid(`request body larger than ${limit} bytes`);
    const s = up.socket;
    let buf = up.head;
    while (buf.length < n) {
      const chunk = s.read() as Buffer | null;
      if (chunk) {
        buf = Buffer.concat([buf, chunk]);
        continue;
      }
      if (s.readableEnded || s.destroyed) break;
      await new Promise<void>((resolve) => {
        const wake = () => {
          for (const ev of ['readable', 'end', 'close']) s.off(ev, wake);
          resolve();
        };
        for (const ev of ['readable', 'end', 'close']) s.on(ev, wake);
      });
    }
    up.head = buf.subarray(n);
    return buf.subarray(0, n);
  }

  /** The JSON body; an empty body is `undefined`; malformed JSON is a 400. */
  async json<T = unknown>(): Promise<T | undefined> {
    const buf = await this.bodyBuffer();
    if (buf.length === 0 || !buf.toString('utf8').trim()) return undefined;
    try {
      return JSON.parse(buf.toString('utf8')) as T;
    } catch (err) {
      throw invalid(`invalid JSON in request body: ${(err as Error).message}`);
    }
  }

  send(status: number, body?: unknown, headers: Record<string, string> = {}): void {
    const res = this.res;
    if (!res) {
      this.writeRaw(status, body === undefined ? '' : JSON.stringify(body), { 'Content-Type': 'application/json', ...headers });
      return;
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    if (body === undefined) {
      res.writeHead(status, headers);
      res.end();
      return;
    }
    const isText = typeof body === 'string';
    const payload = isText ? body : JSON.stringify(body);
    res.writeHead(status, {
      'Content-Type': isText ? 'text/plain; charset=utf-8' : 'application/json',
      'Content-Length': Buffer.byteLength(payload),
      ...headers,
    });
    res.end(payload);
  }

  /** A plain HTTP response written on an upgrade socket (errors before the hijack). */
  private writeRaw(status: number, payload: string, headers: Record<string, string>): void {
    const s = this.upgrade!.socket;
    const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`];
    for (const [k, v] of Object.entries({ ...commonHeaders(), ...headers, 'Content-Length': String(Buffer.byteLength(payload)), 'Connection': 'close' })) lines.push(`${k}: ${v}`);
    s.end(`${lines.join('\r\n')}\r\n\r\n${payload}`);
  }

  error(err: unknown): void {
    const { status, body, headers } = dockerFlavour.render(err);
    if (status === 304) this.send(304);
    else this.send(status, body, headers);
  }

  /**
   * Take over the connection for a raw stream (attach, exec start). With an Upgrade request this answers 101;
   * otherwise it answers 200 and streams on the response.
   */
  hijack(contentType: string): Duplex {
    if (this.hijacked) return this.hijacked;
    this.onLongLived();
    if (this.upgrade) {
      const s = this.upgrade.socket;
      const lines = ['HTTP/1.1 101 UPGRADED', `Content-Type: ${contentType}`, 'Connection: Upgrade', 'Upgrade: tcp'];
      for (const [k, v] of Object.entries(commonHeaders())) lines.push(`${k}: ${v}`);
      s.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (this.upgrade.head.length) s.unshift(this.upgrade.head);
      this.hijacked = s;
      return s;
    }
    const res = this.res!;
    res.writeHead(200, { 'Content-Type': contentType });
    res.flushHeaders();
    // no socket: the client is gone already, and the stream ends as it starts
    const sock = res.socket ?? undefined;
    sock?.setNoDelay(true);
    // without an upgrade there is no stdin; the stream is the response body
    this.hijacked = sock;
    return res as unknown as Duplex;
  }

  /** Start a streamed response (logs, events, progress): headers now, body as it comes. */
  stream(contentType: string, headers: Record<string, string> = {}): ServerResponse {
    this.onLongLived();
    const res = this.res!;
    res.writeHead(200, { 'Content-Type': contentType, ...headers });
    res.flushHeaders();
    res.socket?.setNoDelay(true);
    return res;
  }

  /** Where a backend writes a streamed answer (backend.ts): its signal aborts when the client goes away. */
  output(): Output {
    const ac = new AbortController();
    void this.closed().then(() => ac.abort(new Error('the client went away')));
    return { signal: ac.signal, open: (type, headers) => this.stream(type, headers), hijack: (type) => this.hijack(type) };
  }

  /** Resolves when the client goes away. */
  closed(): Promise<void> {
    const target = this.upgrade?.socket ?? this.res!;
    return new Promise((resolve) => {
      if (target.destroyed) return resolve();
      target.once('close', () => resolve());
    });
  }
}

export type Handler = (ctx: Ctx) => Promise<void> | void;

interface Wild {
  suffix: string;
  key: string;
  handler: Handler;
}

/**
 * Routes by method and path pattern, on find-my-way. `{name}` matches one segment; `{name*}` a name with slashes
 * in it (image names), followed by a fixed suffix: Docker's router reads those with a regular expression, here one
 * wildcard route per prefix hands the path to the handler whose suffix it ends with.
 */
export class Router {
  private readonly fmw = findMyWay<HTTPVersion.V1>({ ignoreTrailingSlash: true, maxParamLength: 1000 });
  private readonly wild = new Map<string, Wild[]>();

  add(method: string, pattern: string, handler: Handler): this {
    const m = /^(.*?)\{(\w+)\*\}(.*)$/.exec(pattern);
    if (!m) {
      this.fmw.on(method as HTTPMethod, pattern.replace(/\{(\w+)\}/g, ':$1'), () => undefined, { handler });
      return this;
    }
    const [, prefix, key, suffix] = m as unknown as [string, string, string, string];
    const id = `${method} ${prefix}`;
    let group = this.wild.get(id);
    if (!group) {
      group = [];
      this.wild.set(id, group);
      this.fmw.on(method as HTTPMethod, `${prefix.replace(/\{(\w+)\}/g, ':$1')}*`, () => undefined, { group });
    }
    group.push({ suffix, key, handler });
    // the longest suffix first: `/json` before ``
    group.sort((a, b) => b.suffix.length - a.suffix.length);
    return this;
  }

  private find(method: string, path: string): { handler: Handler; params: Record<string, string> } | undefined {
    const hit = this.fmw.find(method as HTTPMethod, path);
    if (!hit) return undefined;
    const store = hit.store as { handler?: Handler; group?: Wild[] };
    const params = { ...(hit.params as Record<string, string>) };
    if (store.handler) return { handler: store.handler, params };
    const rest = params['*'] ?? '';
    delete params['*'];
    for (const w of store.group!) {
      if (!rest.endsWith(w.suffix) || rest.length === w.suffix.length) continue;
      return { handler: w.handler, params: { ...params, [w.key]: rest.slice(0, rest.length - w.suffix.length) } };
    }
    return undefined;
  }

  match(method: string, path: string): { handler: Handler; params: Record<string, string> } | 'method' | undefined {
    const hit = this.find(method, path) ?? (method === 'HEAD' ? this.find('GET', path) : undefined);
    if (hit) return hit;
    return METHODS.some((m) => m !== method && this.find(m, path)) ? 'method' : undefined;
  }
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'];
