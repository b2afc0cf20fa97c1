/**
 * The registry's access check, asked before every route: may this request do `actions` on
 * `repository`? Three modes (see config.ts):
 *
 * - none: everything is allowed.
 * - htpasswd: Basic credentials on every request. Missing ones: allowed only what the policy lets
 *   anonymous clients do, else 401 with `Basic realm="..."`. Wrong ones: 401 after the failed-login
 *   delay. Right ones without the grant: 403 DENIED.
 * - token: Bearer tokens checked with the token service's public key(s) (signature, alg, kid, iss,
 *   aud = service, exp/nbf with a small leeway). Missing token: allowed only what the policy lets
 *   anonymous clients do, else 401 with `Bearer realm="<realm>",service="<service>",scope="..."`.
 *   An invalid token: the same with `error="invalid_token"`; a valid one that does not grant the
 *   scope: the same with `error="insufficient_scope"` (as Distribution does), so the client fetches a
 *   token for the scope it needs.
 *
 * `GET /v2/` (repository undefined) needs valid credentials or a valid token (any token, even an
 * anonymous one) in the htpasswd and token modes: that is how clients learn the challenge.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { Clock } from '../../lib/clock.js';
import { silentLogger } from '../../lib/log.js';
import { parseAuthConfig, type AuthConfigInput } from './config.js';
import { basicChallenge, bearerChallenge, requestCredentials, type Authenticator } from './credentials.js';
import { Htpasswd } from './htpasswd.js';
import { loadOrCreateSigningKey, loadSigningKey, loadVerificationKeys, verificationKey, type SigningKey, type VerificationKey } from './keys.js';
import { Policy } from './policy.js';
import { coversActions, formatScope, repositoryScope, type Action, type ResourceScope } from './scope.js';
import { LoginThrottle, sourceAddress } from './throttle.js';
import { TOKEN_PATH, TokenError, TokenIssuer, TokenService, TokenVerifier, tokenCovers, type VerifiedToken } from './token.js';
import { ERROR_KINDS } from '../errors.js';

export type AuthMode = 'none' | 'htpasswd' | 'token';

export interface AuthAllowed {
  ok: true;
  /** The authenticated account; undefined for anonymous access (and in mode none). */
  account?: string;
}

export interface AuthRefused {
  ok: false;
  /** 401: authenticate (again) following `challenge`; 403: authenticated, but not allowed. */
  status: number;
  /** The WWW-Authenticate header value to send with a 401. */
  challenge?: string;
  code: 'UNAUTHORIZED' | 'DENIED';
  message: string;
}

export type AuthResult = AuthAllowed | AuthRefused;

export interface RegistryAuthorizer {
  readonly mode: AuthMode;
  readonly policy: Policy;
  /**
   * May `req` do `actions` (pull, push, delete) on `repository`? `repository` undefined is the base
   * check of `GET /v2/`. Pushes ask ['pull', 'push'], as Distribution's challenges do.
   */
  authorize(req: IncomingMessage, repository: string | undefined, actions: readonly string[]): Promise<AuthResult>;
  /** The same for any resource scope (e.g. `registry:catalog:*` for `GET /v2/_catalog`; see catalogScope()). */
  authorizeScope(req: IncomingMessage, scope: ResourceScope | undefined): Promise<AuthResult>;
  /** Token mode with the built-in token service: where it is served, and its request handler. */
  readonly tokenPath?: string;
  readonly tokenHandler?: (req: IncomingMessage, res: ServerResponse) => void;
  readonly tokenService?: TokenService;
  readonly tokenVerifier?: TokenVerifier;
}

/** Ready-made parts (tests, embedding) that take the place of what the config would load. */
export interface AuthorizerDeps {
  log?: Logger;
  /** The registry root: the generated token key lives under ROOT/auth/. */
  root?: string;
  /** Instead of loading `config.htpasswd`. */
  authenticator?: Authenticator;
  /** Instead of `config.policy`. */
  policy?: Policy;
  /** Instead of `config.tokenKey` or the generated key. */
  signingKey?: SigningKey;
  /** Extra keys to trust, besides the signing key and `config.trustedKeys`. */
  trustedKeys?: VerificationKey[];
  /** The failed-login delays' clock. */
  clock?: Clock;
}

const ALLOWED: AuthAllowed = Object.freeze({ ok: true }) as AuthAllowed;

/** Build the authorizer (and, in token mode, the token service) from the `auth` config. */
export async function createAuthorizer(config: AuthConfigInput = {}, deps: AuthorizerDeps = {}): Promise<RegistryAuthorizer> {
  const c = parseAuthConfig(config);
  const log = deps.log ?? silentLogger;
  const policy = deps.policy ?? new Policy(c.policy);
  if (c.mode === 'none') return new OpenAuthorizer(policy);

  const throttle = new LoginThrottle(log, { baseDelayMs: c.failedLoginDelayMs, maxDelayMs: c.failedLoginMaxDelayMs, clock: deps.clock });
  const authenticator = deps.authenticator ?? (c.htpasswd ? await Htpasswd.load(c.htpasswd, { log }) : undefined);

  if (c.mode === 'htpasswd') {
    if (!authenticator) throw new Error('htpasswd mode needs an htpasswd file');
    return new BasicAuthorizer({ realm: c.realm ?? 'Sampan Registry', authenticator, policy, throttle, log });
  }

  let signingKey = deps.signingKey;
  if (!signingKey && c.tokenKey) signingKey = await loadSigningKey(c.tokenKey, c.tokenCert);
  if (!signingKey && c.issueTokens) {
    if (!deps.root) throw new Error('token mode needs the registry root (for its signing key) or a configured tokenKey');
    signingKey = await loadOrCreateSigningKey(deps.root, log);
  }
  const keys: VerificationKey[] = [...(signingKey ? [verificationKey(signingKey)] : []), ...(await loadVerificationKeys(c.trustedKeys)), ...(deps.trustedKeys ?? [])];
  const verifier = new TokenVerifier({ keys, issuer: c.issuer, audience: c.service, leewaySeconds: c.tokenLeewaySeconds });
  let service: TokenService | undefined;
  if (c.issueTokens && signingKey) {
    if (!authenticator) log.warn('token mode without an htpasswd file: only anonymous tokens can be had');
    service = new TokenService({
      issuer: new TokenIssuer({ key: signingKey, issuer: c.issuer, expiresInSeconds: c.tokenExpirySeconds }),
      service: c.service,
      authenticator,
      policy,
      throttle,
      log,
    });
  }
  return new BearerAuthorizer({ realm: c.realm, service: c.service, verifier, tokenService: service, policy, log });
}

abstract class BaseAuthorizer implements RegistryAuthorizer {
  abstract readonly mode: AuthMode;
  constructor(readonly policy: Policy) {}

  authorize(req: IncomingMessage, repository: string | undefined, actions: readonly string[]): Promise<AuthResult> {
    return this.authorizeScope(req, repository === undefined ? undefined : repositoryScope(repository, actions));
  }

  abstract authorizeScope(req: IncomingMessage, scope: ResourceScope | undefined): Promise<AuthResult>;

  /** Whether the policy lets anonymous clients do all of `scope`. */
  protected anonymousMay(scope: ResourceScope | undefined): boolean {
    return scope !== undefined && scope.actions.length > 0 && coversActions(scope.type, this.policy.allowed(undefined, scope), scope.actions);
  }
}

class OpenAuthorizer extends BaseAuthorizer {
  readonly mode = 'none' as const;
  authorizeScope(): Promise<AuthResult> {
    return Promise.resolve(ALLOWED);
  }
}

const unauthorized = (message: string, challenge: string): AuthRefused => ({ ok: false, status: ERROR_KINDS.UNAUTHORIZED.status, code: 'UNAUTHORIZED', message, challenge });
const denied = (message: string): AuthRefused => ({ ok: false, status: ERROR_KINDS.DENIED.status, code: 'DENIED', message });

class BasicAuthorizer extends BaseAuthorizer {
  readonly mode = 'htpasswd' as const;
  private readonly challenge: string;
  private readonly authenticator: Authenticator;
  private readonly throttle: LoginThrottle;
  private readonly log: Logger;

  constructor(o: { realm: string; authenticator: Authenticator; policy: Policy; throttle: LoginThrottle; log: Logger }) {
    super(o.policy);
    this.challenge = basicChallenge(o.realm);
    this.authenticator = o.authenticator;
    this.throttle = o.throttle;
    this.log = o.log;
  }

  async authorizeScope(req: IncomingMessage, scope: ResourceScope | undefined): Promise<AuthResult> {
    const creds = requestCredentials(req);
    if (creds === undefined) {
      if (this.anonymousMay(scope)) return ALLOWED;
      return unauthorized('authentication required', this.challenge);
    }
    if (creds.scheme !== 'basic') return unauthorized(creds.scheme === 'invalid' ? creds.reason : 'basic credentials required', this.challenge);
    const address = sourceAddress(req);
    const ok = creds.user !== '' && (await this.authenticator.verify(creds.user, creds.password));
    if (!ok) {
      await this.throttle.failed(address, creds.user, 'bad credentials', { method: req.method, url: req.url });
      return unauthorized('invalid username or password', this.challenge);
    }
    this.throttle.succeeded(address);
    const account = creds.user;
    if (scope === undefined) return { ok: true, account };
    if (coversActions(scope.type, this.policy.allowed(account, scope), scope.actions)) return { ok: true, account };
    this.log.info({ account, address, scope: formatScope(scope) }, 'access denied');
    return denied(`requested access to the resource is denied: ${formatScope(scope)}`);
  }
}

class BearerAuthorizer extends BaseAuthorizer {
  readonly mode = 'token' as const;
  readonly tokenPath?: string;
  readonly tokenHandler?: (req: IncomingMessage, res: ServerResponse) => void;
  readonly tokenService?: TokenService;
  readonly tokenVerifier: TokenVerifier;
  private readonly realm: string | undefined;
  private readonly service: string;
  private readonly log: Logger;

  constructor(o: { realm: string | undefined; service: string; verifier: TokenVerifier; tokenService: TokenService | undefined; policy: Policy; log: Logger }) {
    super(o.policy);
    this.realm = o.realm;
    this.service = o.service;
    this.tokenVerifier = o.verifier;
    this.log = o.log;
    if (o.tokenService) {
      this.tokenService = o.tokenService;
      this.tokenPath = TOKEN_PATH;
      this.tokenHandler = o.tokenService.handler;
    }
  }

  private challenge(req: IncomingMessage, scope: ResourceScope | undefined, error?: 'invalid_token' | 'insufficient_scope'): string {
    return bearerChallenge({ realm: this.realm ?? defaultRealm(req), service: this.service, scope: scope && formatScope(scope), error });
  }

  async authorizeScope(req: IncomingMessage, scope: ResourceScope | undefined): Promise<AuthResult> {
    const creds = requestCredentials(req);
    if (creds === undefined || creds.scheme !== 'bearer') {
      if (this.anonymousMay(scope)) return ALLOWED;
      return unauthorized('authentication required', this.challenge(req, scope));
    }
    let token: VerifiedToken;
    try {
      token = await this.tokenVerifier.verify(creds.token);
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
      this.log.info({ address: sourceAddress(req), reason: err.message }, 'invalid token');
      return unauthorized(err.message, this.challenge(req, scope, 'invalid_token'));
    }
    const account = token.account;
    if (scope === undefined || tokenCovers(token.access, scope)) return account === undefined ? ALLOWED : { ok: true, account };
    if (this.anonymousMay(scope)) return account === undefined ? ALLOWED : { ok: true, account };
    return unauthorized(`insufficient scope: ${formatScope(scope)}`, this.challenge(req, scope, 'insufficient_scope'));
  }
}

const HOST_RE = /^[A-Za-z0-9.\-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/;

/** `http(s)://<Host header>/auth/token`: the built-in token service as the client reached the registry. */
export function defaultRealm(req: IncomingMessage): string {
  const host = req.headers.host && HOST_RE.test(req.headers.host) ? req.headers.host : 'localhost';
  const secure = (req.socket as TLSSocket | undefined)?.encrypted === true;
  return `${secure ? 'https' : 'http'}://${host}${TOKEN_PATH}`;
}

/** The actions each kind of registry request asks (pushes ask pull too, as Distribution's challenges do). */
export const PULL: readonly Action[] = Object.freeze(['pull']);
export const PUSH: readonly Action[] = Object.freeze(['pull', 'push']);
export const DELETE: readonly Action[] = Object.freeze(['delete']);
