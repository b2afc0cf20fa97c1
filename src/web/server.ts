/**
 * The browsers' listener (`--ui-listen`): the dashboard's files under /ui/ are public (they hold no data); every
 * other request (the Docker API, /sampan/v1/…, /metrics, the live stream) needs `Authorization: Bearer TOKEN` of a
 * browser token, and a read-only token may only read. What passes is handed to the API server unchanged, so the
 * browser sees the same routes, answers and errors as the CLI on the unix socket. Plain HTTP is for loopback
 * only; anywhere else it is HTTPS with the manager's certificate (a browser has no client certificate, the token
 * is its credential, and it must not cross a network in clear).
 */
import http from 'node:http';
import https from 'node:https';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { errorMessage, invalid } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { StaticFiles } from './static.js';

export type UiRole = 'read' | 'admin';

/** Where the API goes on: the manager's own dispatch (a standby passes it to its leader). */
export type ApiHandler = (req: http.IncomingMessage, res: http.ServerResponse | undefined, upgrade?: { socket: Duplex; head: Buffer }) => void;

export interface UiServerOptions {
  /** HOST:PORT; port 0 picks a free one (see `address`). */
  listen: string;
  authenticate(token: string): Promise<UiRole | undefined>;
  api: ApiHandler;
  log: Logger;
  /** Needed off loopback: the certificate and key the browsers see. */
  tls?: { cert: string; key: string };
  /** The built dashboard (default dist/web beside this build). */
  staticDir?: string;
  /** Who a good token is, as the API records who acted (a release's confirmation): sent on as UI_USER_HEADER. */
  identify?(token: string): string;
}

/**
 * The header that tells the API which browser token a request came with. Set here only, after the token is checked
 * (one a browser sends is dropped); forwarded with the request when a standby passes it to its leader.
 */
export const UI_USER_HEADER = 'x-sampan-ui-user';

/** Sets (or, with no value, removes) a header in both of node's views of a request. */
function setHeader(req: http.IncomingMessage, name: string, value?: string): void {
  delete req.headers[name];
  const raw: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() !== name) raw.push(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  if (value !== undefined) {
    req.headers[name] = value;
    raw.push(name, value);
  }
  req.rawHeaders.splice(0, req.rawHeaders.length, ...raw);
}

/** The one write a read-only token may make: asking who it is. */
export const LOGIN_PATH = '/sampan/v1/ui/login';

const DEFAULT_STATIC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../web');

export const isLoopback = (host: string): boolean => host === 'localhost' || /^127\./.test(host) || host === '::1' || host === '[::1]';

/** HOST:PORT as the flag takes it. */
export function parseUiListen(v: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(v.replace(/^(https?|tcp):\/\//, ''));
  if (!m || Number(m[2]) > 65535) throw invalid(`--ui-listen ${v}: use HOST:PORT, e.g. 127.0.0.1:8080`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

/** The role's verdict on a request: undefined lets it pass. */
export function refusal(role: UiRole, method: string, pathname: string): string | undefined {
  if (role === 'admin' || method === 'GET' || method === 'HEAD' || (method === 'POST' && pathname === LOGIN_PATH)) return undefined;
  return `a read-only token may not ${method} ${pathname}`;
}

const bearer = (req: http.IncomingMessage): string | undefined => /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];

/** The headers of each refusal: a 401 names the scheme, a 503 when to try again. */
const HEADERS: Record<401 | 403 | 503, Record<string, string>> = {
  401: { 'Content-Type': 'application/json', 'WWW-Authenticate': 'Bearer realm="sampan"', 'Cache-Control': 'no-store' },
  403: { 'Content-Type': 'application/json' },
  503: { 'Content-Type': 'application/json', 'Retry-After': '2', 'Cache-Control': 'no-store' },
};

export class UiServer {
  private server?: http.Server;
  private readonly sockets = new Set<Socket>();
  private files?: StaticFiles;

  constructor(private readonly opts: UiServerOptions) {}

  /** Where it listens, e.g. http://127.0.0.1:8080 (the dashboard is at /ui/ under it). */
  get url(): string {
    const a = this.server?.address();
    const { host } = parseUiListen(this.opts.listen);
    const port = a && typeof a === 'object' ? a.port : 0;
    return `${this.opts.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  async start(): Promise<void> {
    const { host, port } = parseUiListen(this.opts.listen);
    if (!isLoopback(host) && !this.opts.tls) throw invalid(`refusing to serve the dashboard on ${this.opts.listen} in clear: off loopback it needs --tlscert and --tlskey`);
    this.files = await StaticFiles.load(this.opts.staticDir ?? DEFAULT_STATIC);
    if (!this.files.size) this.opts.log.warn({ dir: this.opts.staticDir ?? DEFAULT_STATIC }, 'the dashboard is not built (npm run build): /ui/ answers 404');
    const server = this.opts.tls
      ? https.createServer({ cert: await fs.readFile(this.opts.tls.cert), key: await fs.readFile(this.opts.tls.key) })
      : http.createServer();
    server.keepAliveTimeout = 60_000;
    server.on('request', (req, res) => void this.request(req, res));
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', () => socket.destroy());
      void this.upgrade(req, socket, head);
    });
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.server = server;
    this.opts.log.info({ url: `${this.url}/ui/`, files: this.files.size }, 'dashboard listening');
  }

  /** Answers who may do what: the role, or an error to send (status, message). */
  private async check(req: http.IncomingMessage, pathname: string): Promise<{ status: 401 | 403 | 503; message: string } | { role: UiRole }> {
    const token = bearer(req);
    setHeader(req, UI_USER_HEADER);
    let role: UiRole | undefined;
    try {
      role = token ? await this.opts.authenticate(token) : undefined;
    } catch (err) {
      // an etcd that does not answer refuses the request rather than letting it through, and says so: a 401 would
      // tell the page its token is bad, and it would forget it
      this.opts.log.warn({ err: errorMessage(err) }, 'dashboard token check failed');
      return { status: 503, message: `cannot check the token now (${errorMessage(err)}): try again` };
    }
    if (!role) return { status: 401, message: token ? 'invalid or revoked token' : 'authentication required: Authorization: Bearer TOKEN (sampan cluster token --ui)' };
    const no = refusal(role, req.method ?? 'GET', pathname.replace(/^\/v\d+\.\d+(?=\/)/, ''));
    if (!no && this.opts.identify) setHeader(req, UI_USER_HEADER, this.opts.identify(token!));
    return no ? { status: 403, message: no } : { role };
  }

  private async request(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const pathname = new URL(req.url ?? '/', 'http://ui').pathname;
    if (pathname === '/' || pathname === '/ui') {
      res.writeHead(302, { Location: '/ui/' }).end();
      return;
    }
    if (pathname.startsWith('/ui/')) return this.files!.serve(pathname.slice(3), req, res);
    // browsers ask for it on their own, without the token: public, like the pages
    if (pathname === '/favicon.ico') return this.files!.serve('/favicon.svg', req, res);
    const no = await this.check(req, pathname);
    if ('status' in no) {
      this.opts.log.debug({ method: req.method, path: pathname, status: no.status }, 'dashboard request refused');
      req.resume();
      res.writeHead(no.status, HEADERS[no.status]).end(JSON.stringify({ message: no.message }));
      return;
    }
    if (pathname === LOGIN_PATH && req.method === 'POST') {
      // the page's login box checks a token here: its role decides which buttons it shows
      req.resume();
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(JSON.stringify({ role: no.role }));
      return;
    }
    this.opts.api(req, res);
  }

  private async upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const pathname = new URL(req.url ?? '/', 'http://ui').pathname;
    let no = await this.check(req, pathname);
    // an upgraded connection carries input (attach's WebSocket is a GET): an admin's only
    if ('role' in no && no.role !== 'admin') no = { status: 403, message: `a read-only token may not open ${pathname} (it takes input)` };
    if ('status' in no) {
      const body = JSON.stringify({ message: no.message });
      const head = Object.entries(HEADERS[no.status]).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      socket.end(`HTTP/1.1 ${no.status} ${http.STATUS_CODES[no.status]}\r\n${head}Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      return;
    }
    (socket as Socket).allowHalfOpen = true;
    this.opts.api(req, undefined, { socket, head });
  }

  async close(): Promise<void> {
    const closed = this.server ? new Promise<void>((r) => this.server!.close(() => r())) : Promise.resolve();
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}
