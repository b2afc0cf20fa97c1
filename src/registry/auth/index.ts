/**
 * Registry authentication and authorization: htpasswd (bcrypt) with Basic, the built-in token
 * service (Docker registry token spec), the access policy, and the per-request authorizer.
 *
 * Wiring (server side):
 *   const auth = await createAuthorizer(config.auth, { root: config.root, log });
 *   // before each route:   const r = await auth.authorize(req, repo, ['pull'])   // or toServerAuthorizer(auth)
 *   // token mode:          if (auth.tokenHandler && path === auth.tokenPath) return auth.tokenHandler(req, res);
 */
export { createAuthorizer, defaultRealm, PULL, PUSH, DELETE } from './authorizer.js';
export type { AuthAllowed, AuthMode, AuthRefused, AuthResult, AuthorizerDeps, RegistryAuthorizer } from './authorizer.js';
export { toServerAuthorizer } from './adapter.js';
export { AuthConfigError, AuthConfigSchema, parseAuthConfig } from './config.js';
export type { AuthConfig, AuthConfigInput } from './config.js';
export { basicChallenge, bearerChallenge, parseAuthorization, requestCredentials } from './credentials.js';
export type { Authenticator, Credentials } from './credentials.js';
export { Htpasswd, HtpasswdError, parseHtpasswd } from './htpasswd.js';
export type { HtpasswdOptions } from './htpasswd.js';
export { KEY_FILE, KeyError, libtrustKeyId, loadOrCreateSigningKey, loadSigningKey, loadVerificationKeys, verificationKey } from './keys.js';
export type { SigningKey, TokenAlg, VerificationKey } from './keys.js';
export { Policy, PolicyConfigSchema, PolicyError, globToRegExp, parsePolicyConfig } from './policy.js';
export type { PolicyConfig, PolicyRule } from './policy.js';
export {
  REPOSITORY_ACTIONS,
  ScopeError,
  catalogScope,
  coversActions,
  expandActions,
  formatScope,
  formatScopes,
  intersectActions,
  parseScope,
  parseScopes,
  repositoryScope,
} from './scope.js';
export type { Action, RepositoryAction, ResourceScope } from './scope.js';
export { LoginThrottle, sourceAddress } from './throttle.js';
export type { LoginThrottleOptions } from './throttle.js';
export { TOKEN_PATH, TokenError, TokenIssuer, TokenService, TokenVerifier, grantedActions, tokenCovers } from './token.js';
export type { AccessEntry, IssuedToken, TokenClaims, TokenResponse, TokenServiceOptions, TokenVerifierOptions, VerifiedToken } from './token.js';
