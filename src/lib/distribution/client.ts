/**
 * An OCI Distribution client: endpoints (origin, mirrors, http or https), the /v2/ ping, bearer-token
 * (Docker registry token spec) and Basic auth, manifests, blobs and uploads. Everything streams: a blob
 * GET hands back the response body, an upload pipes a stream into the PUT.
 * One file over ~500 lines: endpoints, auth and errors are one request path that Registries and RepoClient share.
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { Readable, pipeline } from 'node:stream';
import { SampanError, errorMessage, invalid, type ErrorCode } from '../errors.js';
import { isDigest, sha256, type Digest } from '../digest.js';
import { MediaType } from '../oci.js';
import { DEFAULT_DOMAIN } from '../reference.js';
import type { Logger } from '../log.js';
import { VERSION } from '../version.js';
import { TokenCache, authIdentity, basicHeader, parseWwwAuthenticate, type AuthConfig, type Challenge } from './auth.js';

export const MANIFEST_ACCEPT = [
  MediaType.OciManifest,
  MediaType.OciIndex,
  MediaType.DockerManifest,
  MediaType.DockerManifestList,
];
const MAX_MANIFEST_BYTES = 4 << 20;
const MAX_REDIRECTS = 5;
/** A registry that stops sending bytes for this long is given up on. */
const IDLE_TIMEOUT_MS = 60_000;
/** The first contact (GET /v2/): a mirror or registry that does not answer by then is skipped or reported. */
const PING_TIMEOUT_MS = 15_000;
const DOCKER_HUB_HOST = 'registry-1.docker.io';

/** A failure talking to a registry: the engine's error code, and what the registry said. */
export class DistributionError extends SampanError {
  constructor(
    code: ErrorCode,
    message: string,
    /** HTTP status from the registry (0: it was not reached). */
    readonly status: number,
    /** The first OCI error code in the registry's answer (MANIFEST_UNKNOWN, UNAUTHORIZED, ...). */
    readonly registryCode?: string,
    cause?: unknown,
    /** The registry's own words ("manifest unknown: manifest unknown"), when it said something. */
    readonly said?: string,
  ) {
    super(code, message, cause);
  }
}

const unreachable = (what: string, err: unknown) =>
  new DistributionError('INTERNAL', `${what}: ${describeNetError(err)}`, 0, undefined, err);

function describeNetError(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { hostname?: string };
  switch (e?.code) {
    case 'ECONNREFUSED':
      return `connection refused (${e.message.replace(/^connect ECONNREFUSED /, '')})`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `no such host${e.hostname ? ` ${e.hostname}` : ''}`;
    case 'ETIMEDOUT':
    case 'ESOCKETTIMEDOUT':
      return 'timed out';
    default:
      return errorMessage(err);
  }
}

/** Where a registry is reached: a base URL (scheme, host, port, optional path prefix for mirrors). */
export interface Endpoint {
  /** The registry name in references (docker.io, 127.0.0.1:5000). */
  domain: string;
  base: URL;
  /** TLS without certificate verification (insecure registries tried over https first). */
  tlsInsecure: boolean;
  mirror: boolean;
}

const LOOPBACK_NAMES = new Set(['localhost', '::1', '[::1]', 'ip6-localhost']);

export function hostOf(domain: string): string {
  // "host:port", "[v6]:port", "host"
  if (domain.startsWith('[')) return domain.slice(0, domain.indexOf(']') + 1);
  const i = domain.lastIndexOf(':');
  return i > 0 && domain.indexOf(':') === i ? domain.slice(0, i) : domain;
}

export function isLoopback(domain: string): boolean {
  const h = hostOf(domain).toLowerCase();
  if (LOOPBACK_NAMES.has(h) || h.endsWith('.localhost')) return true;
  const bare = h.replace(/^\[|\]$/g, '');
  return net.isIPv4(bare) ? bare.startsWith('127.') : bare === '::1';
}

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((a, p) => (a << 8) + Number(p), 0) >>> 0;
}

/** Does an --insecure-registry entry (HOST[:PORT] or an IPv4 CIDR) cover this registry? */
export function insecureMatch(entries: string[], domain: string): boolean {
  const host = hostOf(domain).toLowerCase();
  for (const raw of entries) {
    const e = raw.trim().toLowerCase().replace(/^[a-z]+:\/\//, '').replace(/\/+$/, '');
    if (!e) continue;
    const cidr = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(e);
    if (cidr) {
      if (!net.isIPv4(host)) continue;
      const bits = Number(cidr[2]);
      const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
      if ((ipv4ToInt(host) & mask) === (ipv4ToInt(cidr[1]!) & mask)) return true;
      continue;
    }
    if (e === domain.toLowerCase() || e === host) return true;
  }
  return false;
}

export interface Mirror {
  /** The registry it mirrors (docker.io unless given as HOST=URL). */
  domain: string;
  url: URL;
}

/** Parse `--registry-mirror` values: "URL" (docker.io) or "HOST[:PORT]=URL". */
export function parseMirrors(values: string[]): Mirror[] {
  return values.map((v) => {
    const eq = v.indexOf('=');
    const domain = eq > 0 ? v.slice(0, eq).trim().toLowerCase() : DEFAULT_DOMAIN;
    const raw = (eq > 0 ? v.slice(eq + 1) : v).trim();
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw invalid(`registry mirror ${JSON.stringify(v)}: not a URL (use http://host:port or https://host)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid(`registry mirror ${JSON.stringify(v)}: scheme must be http or https`);
    if (url.search || url.hash || url.username) throw invalid(`registry mirror ${JSON.stringify(v)}: no query, fragment or credentials allowed`);
    url.pathname = url.pathname.replace(/\/+$/, '');
    return { domain: domain === 'index.docker.io' || domain === DOCKER_HUB_HOST ? DEFAULT_DOMAIN : domain, url };
  });
}

/** Map a login server address ("https://index.docker.io/v1/", "http://h:5000", "h:5000/") to a registry name. */
export function domainOfServer(server: string | undefined): string {
  let s = (server ?? '').trim();
  if (!s) return DEFAULT_DOMAIN;
  s = s.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
  if (s === 'index.docker.io' || s === DOCKER_HUB_HOST || s === 'docker.io' || s === 'registry.hub.docker.com') return DEFAULT_DOMAIN;
  return s;
}

export interface RequestOptions {
  headers?: Record<string, string>;
  body?: Buffer | Readable;
  /** Follow redirects (GET/HEAD of blobs may go to a storage host). */
  redirect?: boolean;
  signal?: AbortSignal;
  /** Give up when the connection is idle this long (default IDLE_TIMEOUT_MS). */
  timeoutMs?: number;
}

/** Read a whole response body, refusing more than `limit` bytes. */
export async function readBody(res: Readable, limit = 1 << 20): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res) {
    n += (c as Buffer).length;
    if (n > limit) {
      res.destroy();
      throw invalid(`registry answer larger than ${limit} bytes`);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

function drain(res: IncomingMessage): void {
  res.resume();
  res.on('error', () => undefined);
}

/** "manifest unknown: manifest unknown", as Docker prints a registry's errors. */
function registryMessage(body: Buffer): { text?: string; code?: string } {
  try {
    const j = JSON.parse(body.toString('utf8')) as { errors?: Array<{ code?: string; message?: string; detail?: unknown }>; details?: string; message?: string };
    if (Array.isArray(j.errors) && j.errors.length) {
      const e = j.errors[0]!;
      const code = typeof e.code === 'string' ? e.code : undefined;
      const label = code ? code.toLowerCase().replace(/_/g, ' ') : 'error';
      return { text: `${label}: ${e.message ?? ''}`.trim(), code };
    }
    if (typeof j.details === 'string') return { text: j.details };
    if (typeof j.message === 'string') return { text: j.message };
  } catch {
    // not JSON
  }
  const t = body.toString('utf8').trim();
  return { text: t && t.length < 300 && !t.startsWith('<') ? t : undefined };
}

const CODE_FOR_STATUS = (status: number): ErrorCode =>
  status === 404 ? 'NOT_FOUND' : status === 401 ? 'UNAUTHORIZED' : status === 403 ? 'FORBIDDEN' : status === 400 ? 'INVALID_ARGUMENT' : 'INTERNAL';

/** Turn an unexpected registry answer into a DistributionError (reads the body). */
export async function errorFrom(res: IncomingMessage, what: string): Promise<DistributionError> {
  const status = res.statusCode ?? 0;
  const body = await readBody(res, 64 << 10).catch(() => Buffer.alloc(0));
  const m = registryMessage(body);
  const text = m.text ?? `${status} ${res.statusMessage ?? http.STATUS_CODES[status] ?? ''}`.trim();
  return new DistributionError(CODE_FOR_STATUS(status), `${what}: ${text}`, status, m.code, undefined, text);
}

/** The engine's connection to registries: endpoints, agents, challenges seen and tokens. */
export class Registries {
  readonly mirrors: Mirror[];
  readonly insecure: string[];
  readonly tokens = new TokenCache();
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  private readonly httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 32 });
  private readonly httpsInsecureAgent = new https.Agent({ keepAlive: true, maxSockets: 32, rejectUnauthorized: false });
  /** Challenges answered to GET /v2/ by base URL (refreshed on a 401). */
  private readonly challenges = new Map<string, { challenges: Challenge[]; at: number }>();
  /** The scheme that worked for an insecure registry. */
  private readonly schemes = new Map<string, { base: URL; tlsInsecure: boolean }>();
  readonly userAgent = `sampan/${VERSION} (linux)`;

  constructor(
    opts: { mirrors?: string[]; insecure?: string[] },
    readonly log?: Logger,
  ) {
    this.mirrors = parseMirrors(opts.mirrors ?? []);
    this.insecure = opts.insecure ?? [];
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
    this.httpsInsecureAgent.destroy();
  }

  /** Candidate base URLs for a registry, in the order to try them (Docker: https first for insecure ones, then http). */
  private originCandidates(domain: string): Array<{ base: URL; tlsInsecure: boolean }> {
    const host = domain === DEFAULT_DOMAIN ? DOCKER_HUB_HOST : domain;
    if (isLoopback(domain)) return [{ base: new URL(`http://${host}`), tlsInsecure: false }];
    if (insecureMatch(this.insecure, domain)) {
      return [
        { base: new URL(`https://${host}`), tlsInsecure: true },
        { base: new URL(`http://${host}`), tlsInsecure: false },
      ];
    }
    return [{ base: new URL(`https://${host}`), tlsInsecure: false }];
  }

  /** Endpoints to pull from: mirrors of the registry first, then the origin. */
  pullEndpoints(domain: string): Endpoint[] {
    const out: Endpoint[] = this.mirrors
      .filter((m) => m.domain === domain)
      .map((m) => ({ domain, base: m.url, tlsInsecure: m.url.protocol === 'https:' && insecureMatch(this.insecure, m.url.host), mirror: true }));
    out.push(this.originEndpoint(domain));
    return out;
  }

  /** The origin endpoint (the scheme of an insecure registry is settled by its first ping). */
  originEndpoint(domain: string): Endpoint {
    const known = this.schemes.get(domain);
    const c = known ?? this.originCandidates(domain)[0]!;
    return { domain, base: c.base, tlsInsecure: c.tlsInsecure, mirror: false };
  }

  /** One HTTP exchange (no auth logic): resolves with the response head. */
  send(method: string, url: URL, ep: { tlsInsecure: boolean }, opts: RequestOptions = {}): Promise<IncomingMessage> {
    const isHttps = url.protocol === 'https:';
    const mod = isHttps ? https : http;
    const agent = isHttps ? (ep.tlsInsecure ? this.httpsInsecureAgent : this.httpsAgent) : this.httpAgent;
    const headers: Record<string, string> = { 'User-Agent': this.userAgent, ...opts.headers };
    if (Buffer.isBuffer(opts.body)) headers['Content-Length'] = String(opts.body.length);
    const timeout = opts.timeoutMs ?? IDLE_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const req = mod.request(url, { method, headers, agent, signal: opts.signal, timeout }, (res) => resolve(res));
      req.once('timeout', () => req.destroy(Object.assign(new Error(`no answer from ${url.host} for ${timeout / 1000} s`), { code: 'ETIMEDOUT' })));
      req.once('error', reject);
      const b = opts.body;
      if (b === undefined) req.end();
      else if (Buffer.isBuffer(b)) req.end(b);
      // either side failing (the body's file, an aborted request) destroys both: nothing is left open
      else pipeline(b, req, () => undefined);
    });
  }

  /**
   * GET /v2/ on an endpoint: the challenges it answers with ([] when it needs no auth).
   * For an insecure origin this also settles http or https.
   */
  async ping(ep: Endpoint, signal?: AbortSignal, fresh = false): Promise<{ ep: Endpoint; challenges: Challenge[] }> {
    const candidates = ep.mirror || this.schemes.has(ep.domain) ? [{ base: ep.base, tlsInsecure: ep.tlsInsecure }] : this.originCandidates(ep.domain);
    let lastErr: unknown;
    for (const c of candidates) {
      const cur: Endpoint = { ...ep, base: c.base, tlsInsecure: c.tlsInsecure };
      const key = c.base.href;
      const cached = this.challenges.get(key);
      if (cached && !fresh && Date.now() - cached.at < 10 * 60_000) return { ep: cur, challenges: cached.challenges };
      const url = new URL(`${c.base.pathname}/v2/`.replace(/^\/+/, '/'), c.base);
      let res: IncomingMessage;
      try {
        res = await this.send('GET', url, c, { signal, timeoutMs: PING_TIMEOUT_MS });
      } catch (err) {
        if (signal?.aborted) throw err;
        lastErr = unreachable(`Get "${url.href}"`, err);
        continue;
      }
      const status = res.statusCode ?? 0;
      const challenges = status === 401 ? parseWwwAuthenticate(res.headers['www-authenticate']) : [];
      drain(res);
      if (status !== 200 && status !== 401) {
        lastErr = new DistributionError('INTERNAL', `${url.href} does not answer as a registry (status ${status})`, status);
        continue;
      }
      this.challenges.set(key, { challenges, at: Date.now() });
      if (!ep.mirror) this.schemes.set(ep.domain, c);
      return { ep: cur, challenges };
    }
    throw lastErr;
  }

  rememberChallenges(ep: Endpoint, challenges: Challenge[]): void {
    this.challenges.set(ep.base.href, { challenges, at: Date.now() });
  }

  /** A bearer token from a token server (GET with Basic credentials, or the OAuth2 refresh-token POST). */
  async token(ch: Challenge, scopes: string[], auth: AuthConfig | undefined, signal?: AbortSignal): Promise<string> {
    const realm = ch.params.realm;
    if (!realm) throw new DistributionError('INTERNAL', 'registry sent a bearer challenge without a realm', 401);
    const service = ch.params.service ?? '';
    const key = TokenCache.key(realm, service, scopes, authIdentity(auth));
    const hit = this.tokens.get(key);
    if (hit) return hit;
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new DistributionError('INTERNAL', `registry sent a bad token realm ${JSON.stringify(realm)}`, 401);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new DistributionError('INTERNAL', `token realm ${realm}: unsupported scheme`, 401);
    const tlsInsecure = url.protocol === 'https:' && (isLoopback(url.host) || insecureMatch(this.insecure, url.host));
    let res: IncomingMessage;
    try {
      if (auth?.identitytoken) {
        const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: auth.identitytoken, service, client_id: 'sampan', scope: scopes.join(' ') });
        res = await this.send('POST', url, { tlsInsecure }, { body: Buffer.from(form.toString()), headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, signal });
      } else {
        if (service) url.searchParams.set('service', service);
        for (const s of scopes) url.searchParams.append('scope', s);
        const headers: Record<string, string> = {};
        if (auth?.username) {
          headers.Authorization = basicHeader(auth);
          url.searchParams.set('account', auth.username);
        }
        res = await this.send('GET', url, { tlsInsecure }, { headers, signal });
      }
    } catch (err) {
      throw unreachable(`Get "${url.origin}${url.pathname}"`, err);
    }
    const status = res.statusCode ?? 0;
    if (status === 401 || status === 403) {
      const e = await errorFrom(res, 'token request refused');
      throw new DistributionError('UNAUTHORIZED', auth ? 'unauthorized: incorrect username or password' : `unauthorized: ${e.message}`, status, 'UNAUTHORIZED');
    }
    if (status !== 200) throw await errorFrom(res, `token request to ${url.origin}${url.pathname} failed`);
    const body = await readBody(res, 1 << 20);
    let j: { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
    try {
      j = JSON.parse(body.toString('utf8')) as typeof j;
    } catch {
      throw new DistributionError('INTERNAL', `token server ${url.origin} answered with something other than JSON`, status);
    }
    const token = j.token || j.access_token;
    if (!token) throw new DistributionError('INTERNAL', `token server ${url.origin} answered without a token`, status);
    this.tokens.set(key, token, Number(j.expires_in ?? 60), j.issued_at);
    return token;
  }

  /** A client for one repository on one endpoint, with the actions to ask for ("pull", "push"). */
  repo(ep: Endpoint, repository: string, auth: AuthConfig | undefined, actions: string[], signal?: AbortSignal): RepoClient {
    return new RepoClient(this, ep, repository, auth, actions, signal);
  }

  /**
   * `docker login`: check the credentials against the registry. Resolves when they are accepted;
   * UNAUTHORIZED when they are not.
   */
  async login(auth: AuthConfig, signal?: AbortSignal): Promise<void> {
    const domain = domainOfServer(auth.serveraddress);
    const { ep, challenges } = await this.ping(this.originEndpoint(domain), signal, true);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (bearer) {
      await this.token(bearer, [], auth, signal);
      return;
    }
    if (!basic) return; // a registry without auth accepts anyone, as with Docker
    const url = new URL(`${ep.base.pathname}/v2/`.replace(/^\/+/, '/'), ep.base);
    let res: IncomingMessage;
    try {
      res = await this.send('GET', url, ep, { headers: { Authorization: basicHeader(auth) }, signal });
    } catch (err) {
      throw unreachable(`Get "${url.href}"`, err);
    }
    const status = res.statusCode ?? 0;
    drain(res);
    if (status === 401 || status === 403) throw new DistributionError('UNAUTHORIZED', `login attempt to ${url.href} failed with status: ${status} ${http.STATUS_CODES[status] ?? ''}`.trim(), status, 'UNAUTHORIZED');
    if (status !== 200) throw new DistributionError('INTERNAL', `login attempt to ${url.href} failed with status: ${status}`, status);
  }
}

/** A session with one repository on one endpoint: authorization settled once, kept across requests. */
export class RepoClient {
  private authorization: string | undefined;
  private authorized = false;
  ep: Endpoint;

  constructor(
    private readonly reg: Registries,
    ep: Endpoint,
    readonly repository: string,
    private readonly auth: AuthConfig | undefined,
    private readonly actions: string[],
    private readonly signal?: AbortSignal,
  ) {
    this.ep = ep;
  }

  get scope(): string {
    return `repository:${this.repository}:${this.actions.join(',')}`;
  }

  /** The URL of a path under this repository (`/manifests/x`, `/blobs/d`) on the endpoint. */
  url(sub: string): URL {
    const prefix = this.ep.base.pathname.replace(/\/+$/, '');
    return new URL(`${prefix}/v2/${this.repository}${sub}`, this.ep.base);
  }

  /** Authorize from challenges: a bearer token for our scope (plus any the challenge names), or Basic. */
  private async authorize(challenges: Challenge[], extraScope?: string): Promise<void> {
    this.authorized = true;
    this.authorization = undefined;
    if (this.auth?.registrytoken) {
      this.authorization = `Bearer ${this.auth.registrytoken}`;
      return;
    }
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer) {
      const scopes = [this.scope];
      if (extraScope && extraScope !== this.scope) scopes.push(...extraScope.split(' ').filter((s) => s && s !== this.scope));
      this.authorization = `Bearer ${await this.reg.token(bearer, scopes, this.auth, this.signal)}`;
      return;
    }
    if (challenges.some((c) => c.scheme === 'basic') && this.auth?.username) this.authorization = basicHeader(this.auth);
  }

  /** Ping the endpoint (settling its scheme) and authorize for this repository. */
  async open(): Promise<void> {
    const { ep, challenges } = await this.reg.ping(this.ep, this.signal);
    this.ep = ep;
    await this.authorize(challenges);
  }

  /**
   * A request with auth: on a 401 the challenge in the answer is honoured once (for requests whose
   * body can be sent again), and redirects are followed (without credentials to another host).
   */
  async request(method: string, target: URL, opts: RequestOptions = {}): Promise<IncomingMessage> {
    if (!this.authorized) await this.open();
    let url = target;
    let retried = false;
    for (let hop = 0; hop <= MAX_REDIRECTS; ) {
      const sameOrigin = url.origin === this.ep.base.origin;
      const headers: Record<string, string> = { ...opts.headers };
      if (this.authorization && sameOrigin) headers.Authorization = this.authorization;
      let res: IncomingMessage;
      try {
        res = await this.reg.send(method, url, this.ep, { ...opts, headers, signal: opts.signal ?? this.signal });
      } catch (err) {
        if ((opts.signal ?? this.signal)?.aborted) throw new DistributionError('INTERNAL', 'pull cancelled', 0, undefined, err);
        throw unreachable(`${method.charAt(0) + method.slice(1).toLowerCase()} "${url.href}"`, err);
      }
      const status = res.statusCode ?? 0;
      if (status === 401 && !retried && sameOrigin && !(opts.body instanceof Readable)) {
        const challenges = parseWwwAuthenticate(res.headers['www-authenticate']);
        const answerable = !!this.auth?.registrytoken || challenges.some((c) => c.scheme === 'bearer') || (!!this.auth?.username && challenges.some((c) => c.scheme === 'basic'));
        // nothing to answer the challenge with: the caller reports the 401 as the registry said it
        if (!answerable) return res;
        drain(res);
        retried = true;
        this.reg.rememberChallenges(this.ep, challenges);
        await this.authorize(challenges, challenges.find((c) => c.scheme === 'bearer')?.params.scope);
        continue;
      }
      if (opts.redirect !== false && [301, 302, 303, 307, 308].includes(status) && res.headers.location && (method === 'GET' || method === 'HEAD')) {
        drain(res);
        url = new URL(res.headers.location, url);
        hop++;
        continue;
      }
      return res;
    }
    throw new DistributionError('INTERNAL', `too many redirects from ${target.href}`, 0);
  }

  /** GET a manifest by tag or digest; a digest reference is verified against the bytes. */
  async getManifest(reference: string): Promise<{ bytes: Buffer; mediaType: string; digest: Digest }> {
    const res = await this.request('GET', this.url(`/manifests/${reference}`), { headers: { Accept: MANIFEST_ACCEPT.join(', ') } });
    if (res.statusCode !== 200) throw await errorFrom(res, `manifest ${this.repository}:${reference}`);
    const bytes = await readBody(res, MAX_MANIFEST_BYTES);
    const digest = sha256(bytes);
    if (isDigest(reference) && digest !== reference) {
      throw new DistributionError('INTERNAL', `manifest verification failed for digest ${reference}: content is ${digest}`, 200);
    }
    let mediaType = String(res.headers['content-type'] ?? '').split(';')[0]!.trim();
    try {
      const doc = JSON.parse(bytes.toString('utf8')) as { mediaType?: string; manifests?: unknown; schemaVersion?: number };
      if (typeof doc.mediaType === 'string' && doc.mediaType) mediaType = doc.mediaType;
      else if (!MANIFEST_ACCEPT.includes(mediaType as (typeof MANIFEST_ACCEPT)[number])) {
        mediaType = Array.isArray(doc.manifests) ? MediaType.OciIndex : MediaType.OciManifest;
      }
      if (doc.schemaVersion === 1) throw new DistributionError('INVALID_ARGUMENT', `${this.repository}:${reference} is a schema 1 manifest, which is no longer supported`, 200);
    } catch (err) {
      if (err instanceof DistributionError) throw err;
      throw new DistributionError('INTERNAL', `manifest ${this.repository}:${reference} is not valid JSON`, 200);
    }
    return { bytes, mediaType, digest };
  }

  /** GET a blob: the response, whose body the caller consumes (and verifies). */
  async getBlob(digest: Digest, signal?: AbortSignal): Promise<IncomingMessage> {
    const res = await this.request('GET', this.url(`/blobs/${digest}`), { signal });
    if (res.statusCode !== 200) throw await errorFrom(res, `blob ${digest}`);
    return res;
  }

  /** A small blob (an image config) read whole and verified. */
  async readBlob(digest: Digest, limit = 64 << 20): Promise<Buffer> {
    const res = await this.getBlob(digest);
    const bytes = await readBody(res, limit);
    if (sha256(bytes) !== digest) throw new DistributionError('INTERNAL', `blob ${digest}: content does not match its digest`, 200);
    return bytes;
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    const res = await this.request('HEAD', this.url(`/blobs/${digest}`));
    drain(res);
    if (res.statusCode === 200) return true;
    if (res.statusCode === 404) return false;
    throw new DistributionError(CODE_FOR_STATUS(res.statusCode ?? 0), `blob ${digest}: HEAD answered ${res.statusCode}`, res.statusCode ?? 0);
  }

  /** Monolithic upload: POST to start, PUT the bytes with the digest. `body` is opened once the upload exists. */
  async uploadBlob(digest: Digest, size: number, body: () => Readable): Promise<void> {
    const start = await this.request('POST', this.url('/blobs/uploads/'), { body: Buffer.alloc(0), redirect: false });
    if (start.statusCode === 201) {
      drain(start); // already there (a mount)
      return;
    }
    if (start.statusCode !== 202 || !start.headers.location) throw await errorFrom(start, `starting the upload of ${digest}`);
    drain(start);
    const loc = new URL(start.headers.location, this.url('/'));
    loc.searchParams.set('digest', digest);
    const put = await this.request('PUT', loc, {
      body: body(),
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(size) },
      redirect: false,
    });
    if (put.statusCode !== 201 && put.statusCode !== 204) throw await errorFrom(put, `uploading ${digest}`);
    drain(put);
  }

  async putManifest(reference: string, bytes: Buffer, mediaType: string): Promise<Digest> {
    const res = await this.request('PUT', this.url(`/manifests/${reference}`), { body: bytes, headers: { 'Content-Type': mediaType }, redirect: false });
    if (res.statusCode !== 201 && res.statusCode !== 200 && res.statusCode !== 204) throw await errorFrom(res, `manifest ${this.repository}:${reference}`);
    drain(res);
    return sha256(bytes);
  }
}
