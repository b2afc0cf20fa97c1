/**
 * The Engine API client (the CLI's, and the cluster manager's towards each engine): the Docker Engine API as Sampan serves it: over a unix socket, or over TCP
 * (optionally with mutual TLS). Requests, streamed responses, and hijacked (upgraded) connections
 * for attach and exec, plus the demultiplexer for Docker's framed stdout/stderr streams.
 */
import { readFileSync } from 'node:fs';
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { Readable, pipeline } from 'node:stream';
import type { JSONMessage } from './docker-types.js';
import { SampanError } from './errors.js';
import { codeOfStatus } from './http/status.js';

export const API_VERSION = '1.44';
export const DEFAULT_HOST = 'unix:///run/sampan/engine.sock';

/** An error answer from the engine (status >= 400), with the engine's message. */
export class ApiError extends SampanError {
  constructor(
    readonly status: number,
    message: string,
  ) {
    // the engine's own error code, recovered from its status, so a caller (the cluster) can pass it on unchanged
    super(codeOfStatus(status), message);
    this.name = 'ApiError';
  }
}

/** The engine could not be reached at all. */
export class ConnectionError extends Error {
  constructor(
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'ConnectionError';
  }
}

/**
 * The engine address to use: the explicit option, else $SAMPAN_HOST, else $DOCKER_HOST, else the
 * default socket. Empty values count as unset.
 */
export function resolveHost(opt?: string, env: NodeJS.ProcessEnv = process.env): string {
  for (const v of [opt, env.SAMPAN_HOST, env.DOCKER_HOST]) {
    if (v && v.trim()) return v.trim();
  }
  return DEFAULT_HOST;
}

export type Endpoint =
  | { kind: 'unix'; socketPath: string }
  | { kind: 'tcp'; host: string; port: number };

/** Parses `unix:///path`, a bare `/path`, or `tcp://host[:port]` (port 2375 by default, 2376 with TLS). */
export function parseHost(host: string, tls = false): Endpoint {
  if (host.startsWith('unix://')) {
    const p = host.slice('unix://'.length);
    if (!p) throw new Error(`invalid host: ${host}: no socket path`);
    return { kind: 'unix', socketPath: p };
  }
  if (host.startsWith('/')) return { kind: 'unix', socketPath: host };
  if (host.startsWith('tcp://') || host.startsWith('http://') || host.startsWith('https://')) {
    let u: URL;
    try {
      u = new URL(host.replace(/^tcp:/, 'http:'));
    } catch {
      throw new Error(`invalid host: ${host}`);
    }
    if (!u.hostname) throw new Error(`invalid host: ${host}: no host name`);
    const port = u.port ? Number(u.port) : tls || host.startsWith('https://') ? 2376 : 2375;
    return { kind: 'tcp', host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port };
  }
  throw new Error(`invalid host: ${host}: use unix:///path or tcp://host:port`);
}

/** File paths of the CA certificate, the client certificate and its key, for mutual TLS. */
export interface TlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
}

export interface ClientOptions {
  host?: string;
  tls?: TlsFiles;
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined | null>;
  body?: object | Buffer | Readable;
  headers?: Record<string, string>;
}

export interface ApiResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** Builds `?a=1&b=x` from the defined values; booleans as "1"/"0" like the docker client sends. */
export function queryString(query?: RequestOptions['query']): string {
  if (!query) return '';
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null) continue;
    q.set(k, typeof v === 'boolean' ? (v ? '1' : '0') : String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** The message of an error answer: `{message}` JSON, else its text, else the status line. */
export function errorMessageOf(status: number, body: Buffer, statusMessage?: string): string {
  const text = body.toString('utf8').trim();
  if (text) {
    try {
      const j = JSON.parse(text) as { message?: unknown };
      if (j && typeof j.message === 'string') return j.message;
    } catch {
      /* not JSON */
    }
    return text;
  }
  return statusMessage || http.STATUS_CODES[status] || `status ${status}`;
}

function readAll(stream: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
}

export class EngineClient {
  readonly host: string;
  private readonly endpoint: Endpoint;
  private readonly tls: { ca?: Buffer; cert?: Buffer; key?: Buffer } | undefined;

  constructor(opts: ClientOptions = {}) {
    this.host = resolveHost(opts.host);
    const useTls = !!(opts.tls && (opts.tls.ca || opts.tls.cert || opts.tls.key));
    this.endpoint = parseHost(this.host, useTls);
    if (useTls && this.endpoint.kind === 'tcp') {
      const read = (p?: string) => (p ? readFileSync(p) : undefined);
      this.tls = { ca: read(opts.tls!.ca), cert: read(opts.tls!.cert), key: read(opts.tls!.key) };
    } else if (this.endpoint.kind === 'tcp' && this.host.startsWith('https://')) {
      this.tls = {};
    }
  }

  /** The path with the API version prefix and query string. */
  private url(path: string, query?: RequestOptions['query']): string {
    const p = path.startsWith('/') ? path : `/${path}`;
    return `/v${API_VERSION}${p}${queryString(query)}`;
  }

  private connectionError(err: NodeJS.ErrnoException): Error {
    const code = err.code ?? '';
    if (code === 'EACCES' || code === 'EPERM') {
      return new ConnectionError(`permission denied while trying to connect to the Sampan engine at ${this.host}`, err);
    }
    if (['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EHOSTUNREACH', 'ENOTFOUND', 'ETIMEDOUT', 'ENOTSOCK'].includes(code)) {
      const hint = this.endpoint.kind === 'tcp' && !this.tls && code === 'ECONNRESET'
        ? ' (if it requires TLS, set SAMPAN_CERT_PATH or DOCKER_CERT_PATH to a directory with ca.pem, cert.pem and key.pem)'
        : '';
      return new ConnectionError(`Cannot connect to the Sampan engine at ${this.host}. Is the engine running?${hint}`, err);
    }
    return err;
  }

  private makeRequest(method: string, path: string, opts: RequestOptions, extraHeaders: Record<string, string> = {}): http.ClientRequest {
    const headers: Record<string, string> = { 'User-Agent': 'Sampan-Client/0.1.0', ...extraHeaders, ...opts.headers };
    const base: http.RequestOptions = { method, path: this.url(path, opts.query), headers, agent: false };
    if (this.endpoint.kind === 'unix') {
      return http.request({ ...base, socketPath: this.endpoint.socketPath, host: 'localhost' });
    }
    const target = { ...base, host: this.endpoint.host, port: this.endpoint.port };
    if (this.tls) return https.request({ ...target, ...this.tls });
    return http.request(target);
  }

  /** Writes the body (JSON for objects, raw for buffers, piped for streams) and ends the request. */
  private sendBody(req: http.ClientRequest, body: RequestOptions['body']): void {
    if (body === undefined) {
      req.end();
    } else if (body instanceof Readable) {
      // either side failing (a file read, the engine closing) ends both
      pipeline(body, req, () => undefined);
    } else if (Buffer.isBuffer(body)) {
      req.setHeader('Content-Length', body.length);
      req.end(body);
    } else {
      const buf = Buffer.from(JSON.stringify(body));
      req.setHeader('Content-Length', buf.length);
      req.end(buf);
    }
  }

  private bodyHeaders(opts: RequestOptions): Record<string, string> {
    const b = opts.body;
    if (b === undefined) return {};
    if (b instanceof Readable) return { 'Content-Type': 'application/x-tar' };
    if (Buffer.isBuffer(b)) return { 'Content-Type': 'application/octet-stream' };
    return { 'Content-Type': 'application/json' };
  }

  /**
   * A streamed response: resolves once the head arrives. Error answers (>= 400) are read and
   * thrown as ApiError; the caller consumes the body of any other.
   */
  stream(method: string, path: string, opts: RequestOptions = {}): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = this.makeRequest(method, path, opts, this.bodyHeaders(opts));
      req.once('error', (err) => reject(this.connectionError(err)));
      req.once('response', (res) => {
        if ((res.statusCode ?? 0) >= 400) {
          readAll(res).then(
            (buf) => reject(new ApiError(res.statusCode!, errorMessageOf(res.statusCode!, buf, res.statusMessage))),
            reject,
          );
          return;
        }
        resolve(res);
      });
      this.sendBody(req, opts.body);
    });
  }

  /** A whole response; error answers (>= 400) are thrown as ApiError. */
  async request(method: string, path: string, opts: RequestOptions = {}): Promise<ApiResponse> {
    const res = await this.stream(method, path, opts);
    const body = await readAll(res);
    return { status: res.statusCode ?? 0, headers: res.headers, body };
  }

  /** A response's JSON body (undefined when it is empty). */
  async json<T = unknown>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, path, opts);
    const text = res.body.toString('utf8');
    if (!text.trim()) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new Error(`invalid JSON from the engine for ${method} ${path}: ${(err as Error).message}`);
    }
  }

  /**
   * An upgraded connection (attach, exec start): sends `Connection: Upgrade` / `Upgrade: tcp`,
   * expects 101 and hands back the raw socket, with any bytes that came with the response head
   * put back to be read first.
   */
  async hijack(method: string, path: string, opts: RequestOptions = {}): Promise<net.Socket> {
    return (await this.upgrade(method, path, opts)).socket;
  }

  /** hijack(), with the 101's headers (its Content-Type says raw or multiplexed: a proxy passes it on). */
  upgrade(method: string, path: string, opts: RequestOptions = {}): Promise<{ socket: net.Socket; headers: IncomingHttpHeaders }> {
    return new Promise((resolve, reject) => {
      const req = this.makeRequest(method, path, opts, {
        ...this.bodyHeaders(opts),
        Connection: 'Upgrade',
        Upgrade: 'tcp',
      });
      req.once('error', (err) => reject(this.connectionError(err)));
      req.once('upgrade', (res, socket, head) => {
        if (res.statusCode !== 101) {
          socket.destroy();
          reject(new ApiError(res.statusCode ?? 0, `unexpected upgrade answer: ${res.statusCode} ${res.statusMessage ?? ''}`));
          return;
        }
        if (head && head.length) socket.unshift(head);
        resolve({ socket, headers: res.headers });
      });
      req.once('response', (res) => {
        // no upgrade: an error answer, or an engine that streams on a plain response
        readAll(res).then((buf) => {
          const status = res.statusCode ?? 0;
          if (status >= 400) reject(new ApiError(status, errorMessageOf(status, buf, res.statusMessage)));
          else reject(new ApiError(status, `the engine did not upgrade the connection (status ${status})`));
        }, reject);
      });
      this.sendBody(req, opts.body);
    });
  }

  /** GET /_ping: true when the engine answers OK. */
  async ping(): Promise<boolean> {
    const r = await this.request('GET', '/_ping');
    return r.body.toString('utf8').trim() === 'OK';
  }
}

/** Docker's stdcopy stream numbers. */
export const STDIN = 0;
export const STDOUT = 1;
export const STDERR = 2;
export const SYSTEMERR = 3;

/**
 * An incremental parser of Docker's multiplexed frames: [stream, 0, 0, 0, size uint32 BE] then
 * `size` bytes of payload. Feed it chunks cut anywhere.
 */
export class Demuxer {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (stream: number, payload: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    let off = 0;
    while (this.buf.length - off >= 8) {
      const size = this.buf.readUInt32BE(off + 4);
      if (this.buf.length - off < 8 + size) break;
      const stream = this.buf[off]!;
      const payload = this.buf.subarray(off + 8, off + 8 + size);
      off += 8 + size;
      this.onFrame(stream, payload);
    }
    this.buf = off === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(off);
  }

  /** Bytes of an incomplete frame still waiting for the rest. */
  get pending(): number {
    return this.buf.length;
  }
}

/**
 * Reads a multiplexed stream to its end, handing stdout payloads (and stdin echoes) to `onStdout`
 * and stderr payloads to `onStderr`. A system-error frame rejects with its text.
 */
export function demux(
  stream: Readable,
  onStdout: (data: Buffer) => void,
  onStderr: (data: Buffer) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let failed: Error | undefined;
    const d = new Demuxer((s, payload) => {
      if (s === STDOUT || s === STDIN) onStdout(payload);
      else if (s === STDERR) onStderr(payload);
      else if (s === SYSTEMERR) failed ??= new Error(payload.toString('utf8').trim());
      else failed ??= new Error(`unrecognized stream in multiplexed output: ${s}`);
    });
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      if (err ?? failed) reject(err ?? failed);
      else resolve();
    };
    stream.on('data', (c: Buffer | string) => d.push(typeof c === 'string' ? Buffer.from(c) : c));
    stream.once('end', () => finish());
    stream.once('close', () => finish());
    stream.once('error', (err: NodeJS.ErrnoException) => {
      // the engine closing an attach connection hard is the end of the output, not a failure
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') finish();
      else finish(err);
    });
  });
}

/**
 * The documents of a JSON-lines (or concatenated JSON) response such as image load/pull progress.
 * Text that is not JSON comes back as `{stream: text}`.
 */
export async function* jsonMessages<T extends object = JSONMessage>(stream: Readable): AsyncGenerator<T> {
  let buf = '';
  for await (const chunk of stream) {
    buf += typeof chunk === 'string' ? chunk : (chunk as Buffer).toString('utf8');
    for (;;) {
      const end = completeJsonEnd(buf);
      if (end < 0) break;
      const doc = buf.slice(0, end).trim();
      buf = buf.slice(end);
      if (doc) yield parseMessage(doc) as T;
    }
  }
  const rest = buf.trim();
  if (rest) yield parseMessage(rest) as T;
}

function parseMessage(doc: string): JSONMessage {
  try {
    const v = JSON.parse(doc) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as JSONMessage;
  } catch {
    /* not JSON */
  }
  return { stream: doc.endsWith('\n') ? doc : `${doc}\n` };
}

/** Where the first complete JSON value (or the first line of non-JSON text) ends, or -1. */
function completeJsonEnd(s: string): number {
  let i = 0;
  while (i < s.length && /\s/.test(s[i]!)) i++;
  if (i >= s.length) return -1;
  if (s[i] !== '{' && s[i] !== '[') {
    const nl = s.indexOf('\n', i);
    return nl < 0 ? -1 : nl + 1;
  }
  let depth = 0;
  let inStr = false;
  for (; i < s.length; i++) {
    const c = s[i];
    if (inStr) {
      if (c === '\\') i++;
      else if (c === '"') inStr = false;
    } else if (c === '"') inStr = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/** TLS file options as the docker CLI names them, plus $SAMPAN_CERT_PATH / $DOCKER_CERT_PATH. */
export function tlsFromOptions(opts: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): TlsFiles | undefined {
  const str = (v: unknown) => (typeof v === 'string' && v ? v : undefined);
  const files: TlsFiles = { ca: str(opts.tlscacert), cert: str(opts.tlscert), key: str(opts.tlskey) };
  const certPath = env.SAMPAN_CERT_PATH || env.DOCKER_CERT_PATH;
  const wantTls = !!(opts.tls || opts.tlsverify || files.ca || files.cert || files.key || certPath ||
    (env.DOCKER_TLS_VERIFY && env.DOCKER_TLS_VERIFY !== '0'));
  if (!wantTls) return undefined;
  if (certPath) {
    files.ca ??= `${certPath}/ca.pem`;
    files.cert ??= `${certPath}/cert.pem`;
    files.key ??= `${certPath}/key.pem`;
  }
  return files;
}
