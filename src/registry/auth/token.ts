/**
 * The built-in token service (Docker registry token authentication) and the verification of its
 * tokens.
 *
 * `GET /auth/token?service=S&scope=repository:a/b:pull,push[&scope=...][&account=U]`, with an optional
 * Basic Authorization header (none: an anonymous token, carrying only the anonymous grants) answers
 * `{"token","access_token","expires_in","issued_at"}`. The token is a JWT (ES256 or RS256, `kid` the
 * key's libtrust fingerprint) with iss, sub ("" when anonymous), aud (= the service), exp, nbf, iat,
 * jti and `access: [{type, name, actions}]`: for each scope asked, the intersection of the actions
 * asked and the ones the policy allows. Not being allowed something is not an error here: the token
 * simply does not carry it, and the registry refuses the request.
 * `POST /auth/token` with a form (`grant_type=password`, username, password, service, scope) is the
 * OAuth2 variant some clients (containerd) try first; refresh tokens are not issued.
 *
 * Bad credentials answer 401 `{"errors":[{"code":"UNAUTHORIZED",...}]}` after a delay that grows
 * per source address (see throttle.ts), and are logged.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SignJWT, decodeProtectedHeader, jwtVerify, errors as joseErrors, type JWTPayload } from 'jose';
import type { Logger } from 'pino';
import { z } from 'zod';
import { basicChallenge, requestCredentials, type Authenticator } from './credentials.js';
import type { SigningKey, TokenAlg, VerificationKey } from './keys.js';
import type { Policy } from './policy.js';
import { ScopeError, coversActions, expandActions, formatScope, parseScopes, sameResource, type Action, type ResourceScope } from './scope.js';
import { sourceAddress, type LoginThrottle } from './throttle.js';
import { HttpApp, METHODS, type Reply, type Req } from '../../lib/http/app.js';
import type { ErrorFlavour } from '../../lib/http/status.js';
import { asRegistryError, errorBody, regError } from '../errors.js';

/** Where the built-in token service is served. */
export const TOKEN_PATH = '/auth/token';

/** One entry of the `access` claim. */
export interface AccessEntry {
  type: string;
  class?: string;
  name: string;
  actions: Action[];
}

export interface TokenClaims {
  iss: string;
  /** The account; "" for an anonymous token. */
  sub: string;
  aud: string;
  exp: number;
  nbf: number;
  iat: number;
  jti: string;
  access: AccessEntry[];
}

export interface IssuedToken {
  token: string;
  claims: TokenClaims;
  /** Seconds. */
  expiresIn: number;
  /** RFC 3339. */
  issuedAt: string;
}

/** The JSON body of a token response. */
export interface TokenResponse {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
}

// ---------------------------------------------------------------------------------------------
// issuing

export interface TokenIssuerOptions {
  key: SigningKey;
  /** The `iss` claim. */
  issuer: string;
  /** Token lifetime in seconds (default 300). */
  expiresInSeconds?: number;
}

export class TokenIssuer {
  readonly key: SigningKey;
  readonly issuer: string;
  readonly expiresInSeconds: number;

  constructor(opts: TokenIssuerOptions) {
    this.key = opts.key;
    this.issuer = opts.issuer;
    this.expiresInSeconds = opts.expiresInSeconds ?? 300;
  }

  /** Sign a token for `account` (undefined: anonymous) and `audience`, carrying exactly `access`. */
  async issue(account: string | undefined, audience: string, access: readonly ResourceScope[], now = Date.now()): Promise<IssuedToken> {
    const iat = Math.floor(now / 1000);
    const claims: TokenClaims = {
      iss: this.issuer,
      sub: account ?? '',
      aud: audience,
      exp: iat + this.expiresInSeconds,
      nbf: iat,
      iat,
      jti: randomBytes(16).toString('base64url'),
      access: access.map(toEntry),
    };
    const token = await new SignJWT(claims as unknown as JWTPayload).setProtectedHeader({ typ: 'JWT', alg: this.key.alg, kid: this.key.kid }).sign(this.key.privateKey);
    return { token, claims, expiresIn: this.expiresInSeconds, issuedAt: rfc3339(iat) };
  }
}

function toEntry(s: ResourceScope): AccessEntry {
  const e: AccessEntry = { type: s.type, name: s.name, actions: [...s.actions] };
  if (s.class) e.class = s.class;
  return e;
}

const rfc3339 = (seconds: number) => new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

// ---------------------------------------------------------------------------------------------
// verifying

export class TokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenError';
  }
}

export interface VerifiedToken {
  /** undefined for an anonymous token. */
  account: string | undefined;
  access: AccessEntry[];
  /** Seconds since the epoch. */
  exp: number;
  nbf: number | undefined;
  jti: string | undefined;
}

export interface TokenVerifierOptions {
  keys: readonly VerificationKey[];
  /** Accepted `iss` values. */
  issuer: string | readonly string[];
  /** The service name this registry answers to (`aud` must hold it). */
  audience: string;
  /** Clock skew tolerated on exp and nbf (seconds, default 30). */
  leewaySeconds?: number;
  /** Verified tokens remembered (their signature is not checked again until they expire). Default 4096; 0 = none. */
  cacheSize?: number;
}

const AccessSchema = z.array(
  z.object({
    type: z.string().min(1),
    class: z.string().optional(),
    name: z.string().min(1),
    actions: z.array(z.string()).nullish().transform((a) => a ?? []),
  }),
);

const MAX_TOKEN = 8 * 1024;

export class TokenVerifier {
  private readonly keys: readonly VerificationKey[];
  private readonly issuers: string[];
  readonly audience: string;
  private readonly leeway: number;
  private readonly cacheSize: number;
  private readonly cache = new Map<string, VerifiedToken>();
  private readonly algs: TokenAlg[];

  constructor(opts: TokenVerifierOptions) {
    if (opts.keys.length === 0) throw new TokenError('token verification needs at least one trusted key');
    this.keys = opts.keys;
    this.issuers = typeof opts.issuer === 'string' ? [opts.issuer] : [...opts.issuer];
    this.audience = opts.audience;
    this.leeway = opts.leewaySeconds ?? 30;
    this.cacheSize = opts.cacheSize ?? 4096;
    this.algs = [...new Set(opts.keys.map((k) => k.alg))];
  }

  /** Verify signature, alg, kid, iss, aud, exp and nbf (with leeway), and the access claim's shape. */
  async verify(token: string, now = Date.now()): Promise<VerifiedToken> {
    const nowS = Math.floor(now / 1000);
    const hit = this.cache.get(token);
    if (hit) {
      if (this.timely(hit, nowS)) return hit;
      this.cache.delete(token);
      if (hit.exp + this.leeway < nowS) throw new TokenError('token expired');
    }
    if (token.length > MAX_TOKEN) throw new TokenError('token too long');
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw new TokenError('malformed token');
    }
    const alg = header.alg as TokenAlg;
    if (!this.algs.includes(alg)) throw new TokenError(`token algorithm ${JSON.stringify(header.alg)} not accepted`);
    const candidates = this.keys.filter((k) => k.alg === alg && (header.kid === undefined || k.kid === header.kid));
    if (candidates.length === 0 || (header.kid === undefined && candidates.length > 1)) throw new TokenError('token signed by an unknown key');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, candidates[0]!.publicKey, {
        algorithms: [alg],
        issuer: this.issuers,
        audience: this.audience,
        clockTolerance: this.leeway,
        currentDate: new Date(now),
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      throw new TokenError(describeJoseError(err));
    }
    const access = AccessSchema.safeParse(payload.access ?? []);
    if (!access.success) throw new TokenError('token access claim malformed');
    const v: VerifiedToken = {
      account: typeof payload.sub === 'string' && payload.sub !== '' ? payload.sub : undefined,
      access: access.data.map((e) => (e.class ? { type: e.type, class: e.class, name: e.name, actions: e.actions } : { type: e.type, name: e.name, actions: e.actions })),
      exp: payload.exp!,
      nbf: payload.nbf,
      jti: payload.jti,
    };
    if (this.cacheSize > 0) {
      if (this.cache.size >= this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(token, v);
    }
    return v;
  }

  private timely(v: VerifiedToken, nowS: number): boolean {
    return v.exp + this.leeway >= nowS && (v.nbf === undefined || v.nbf - this.leeway <= nowS);
  }
}

function describeJoseError(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'token expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `token ${err.claim} claim invalid: ${err.reason}`;
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'token signature invalid';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'token algorithm not accepted';
  if (err instanceof joseErrors.JOSEError) return `token invalid: ${err.message}`;
  return 'token invalid';
}

/** Whether the token's access entries grant every action of `scope` on its resource. */
export function tokenCovers(access: readonly AccessEntry[], scope: ResourceScope): boolean {
  const granted: Action[] = [];
  for (const e of access) if (sameResource(e, scope)) granted.push(...e.actions);
  return coversActions(scope.type, granted, scope.actions);
}

// ---------------------------------------------------------------------------------------------
// the token endpoint

export interface TokenServiceOptions {
  issuer: TokenIssuer;
  /** The service name (`aud`) tokens are issued for; requests naming another are refused. */
  service: string;
  /** Checks passwords; without one, only anonymous tokens are issued (and any credentials fail). */
  authenticator?: Authenticator;
  policy: Policy;
  throttle: LoginThrottle;
  log: Logger;
}

type TokenRequest = { service: string | undefined; scopes: string[]; account: string | undefined; user?: string; password?: string };

const MAX_FORM = 64 * 1024;

export class TokenService {
  readonly issuer: TokenIssuer;
  readonly service: string;
  private readonly authenticator: Authenticator | undefined;
  private readonly policy: Policy;
  private readonly throttle: LoginThrottle;
  private readonly log: Logger;

  constructor(opts: TokenServiceOptions) {
    this.issuer = opts.issuer;
    this.service = opts.service;
    this.authenticator = opts.authenticator;
    this.policy = opts.policy;
    this.throttle = opts.throttle;
    this.log = opts.log;
  }

  /** A node:http request listener that answers `GET|HEAD|POST /auth/token` (for a server made elsewhere). */
  get handler(): (req: IncomingMessage, res: ServerResponse) => void {
    return new HttpApp({ log: this.log, flavour: tokenFlavour }).route(METHODS, TOKEN_PATH, 'token', this.serve).handle;
  }

  /** Grant what `account` may have of `scopes`, and sign it. */
  async issueFor(account: string | undefined, scopes: readonly ResourceScope[]): Promise<IssuedToken> {
    const access = scopes.map((s) => ({ ...s, actions: this.policy.grant(account, s) }));
    return this.issuer.issue(account, this.service, access);
  }

  /** The token endpoint, as a route of the HTTP kit (errors in tokenFlavour). */
  readonly serve = async ({ req, method }: Req): Promise<Reply> => {
    let r: TokenRequest;
    if (method === 'GET' || method === 'HEAD') {
      const q = new URL(req.url ?? '/', 'http://localhost').searchParams;
      r = { service: q.get('service') ?? undefined, scopes: q.getAll('scope'), account: q.get('account') ?? undefined };
      const creds = requestCredentials(req);
      if (creds?.scheme === 'basic') {
        r.user = creds.user;
        r.password = creds.password;
      } else if (creds !== undefined) {
        return this.refuse(req, undefined, creds.scheme === 'invalid' ? creds.reason : 'bearer credentials at the token endpoint');
      }
    } else if (method === 'POST') {
      const form = await readForm(req);
      if (form === undefined) throw regError('TOKEN_REQUEST_INVALID', 'expected an application/x-www-form-urlencoded body of at most 64 KiB');
      if (form.get('grant_type') !== 'password') throw regError('UNSUPPORTED_GRANT_TYPE');
      r = { service: form.get('service') ?? undefined, scopes: form.getAll('scope'), account: undefined, user: form.get('username') ?? '', password: form.get('password') ?? '' };
    } else {
      throw regError('UNSUPPORTED', `method ${method} not allowed`, undefined, { Allow: 'GET, HEAD, POST' });
    }

    if (r.service !== undefined && r.service !== this.service) {
      throw regError('TOKEN_REQUEST_INVALID', `unknown service ${JSON.stringify(r.service)}`);
    }
    let scopes: ResourceScope[];
    try {
      scopes = parseScopes(r.scopes);
    } catch (err) {
      if (err instanceof ScopeError) throw regError('TOKEN_REQUEST_INVALID', err.message);
      throw err;
    }
    if (scopes.length > 64) throw regError('TOKEN_REQUEST_INVALID', 'too many scopes');

    let account: string | undefined;
    if (r.user !== undefined) {
      const ok = this.authenticator !== undefined && r.user !== '' && (await this.authenticator.verify(r.user, r.password ?? ''));
      if (!ok) return this.refuse(req, r.user, 'bad credentials');
      if (r.account !== undefined && r.account !== '' && r.account !== r.user) {
        throw regError('TOKEN_REQUEST_INVALID', 'account does not match the authenticated user');
      }
      account = r.user;
      this.throttle.succeeded(sourceAddress(req));
    }

    const issued = await this.issueFor(account, scopes);
    this.log.debug({ sub: issued.claims.sub, jti: issued.claims.jti, access: issued.claims.access.map((a) => formatScope(a)) }, 'token issued');
    const body: TokenResponse = { token: issued.token, access_token: issued.token, expires_in: issued.expiresIn, issued_at: issued.issuedAt };
    return { status: 200, body: JSON.stringify(body), headers: TOKEN_HEADERS };
  };

  private async refuse(req: IncomingMessage, user: string | undefined, reason: string): Promise<never> {
    await this.throttle.failed(sourceAddress(req), user, reason, { endpoint: 'token' });
    throw regError('UNAUTHORIZED', 'authentication required: invalid username or password', undefined, { 'WWW-Authenticate': basicChallenge(this.service) });
  }
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM) return undefined;
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** Every token answer, a token or an error: JSON that no cache keeps. */
const TOKEN_HEADERS = { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' };

/** The token service's errors: the registry's `{"errors":[…]}`, or OAuth2's `{"error","error_description"}` for a grant type. */
export const tokenFlavour: ErrorFlavour = {
  render(err) {
    const e = asRegistryError(err);
    const body = e.kind === 'UNSUPPORTED_GRANT_TYPE' ? JSON.stringify({ error: 'unsupported_grant_type', error_description: e.message }) : errorBody(e);
    return { status: e.status, body, headers: { ...TOKEN_HEADERS, ...e.headers } };
  },
};

/** The actions a token grants on a resource (for logs and tests). */
export function grantedActions(access: readonly AccessEntry[], scope: Pick<ResourceScope, 'type' | 'class' | 'name'>): Action[] {
  const granted: Action[] = [];
  for (const e of access) if (sameResource(e, scope)) granted.push(...e.actions);
  return expandActions(scope.type, granted);
}
