/**
 * The `auth` section of the registry configuration (validated with zod):
 *
 *   {"mode": "token", "htpasswd": "/etc/sampan/htpasswd",
 *    "policy": {"rules": [{"anonymous": true, "repos": "public/**", "actions": ["pull"]}]}}
 *
 * - `none` (default): everything is allowed.
 * - `htpasswd`: Basic credentials on every request, checked against the htpasswd file (bcrypt).
 * - `token`: Bearer tokens (Docker registry token spec), issued by the built-in token service at
 *   /auth/token (users from the htpasswd file) or, with `issueTokens: false`, by an external one
 *   whose keys or certificates are in `trustedKeys`.
 * In every mode the policy decides what anonymous clients and each account may do.
 */
import { z } from 'zod';
import { PolicyConfigSchema } from './policy.js';

export const AuthConfigSchema = z
  .strictObject({
    mode: z.enum(['none', 'htpasswd', 'token']).default('none'),
    /**
     * htpasswd mode: the Basic realm (default "Sampan Registry"). Token mode: the absolute URL of the
     * token endpoint put in challenges (default: this registry's /auth/token, as the client reached it).
     */
    realm: z.string().min(1).optional(),
    /** The htpasswd file (bcrypt entries): required in htpasswd mode; in token mode, who may log in. */
    htpasswd: z.string().min(1).optional(),
    /** Token mode: the service name (the tokens' audience). */
    service: z.string().min(1).default('sampan-registry'),
    /** Token mode: the tokens' issuer (`iss`). */
    issuer: z.string().min(1).default('sampan-token-service'),
    /** Token mode: whether this registry runs the token service itself. */
    issueTokens: z.boolean().default(true),
    /** Token mode: token lifetime (seconds). */
    tokenExpirySeconds: z.number().int().min(60).max(86_400).default(300),
    /** Token mode: clock skew tolerated on exp and nbf (seconds). */
    tokenLeewaySeconds: z.number().int().min(0).max(600).default(30),
    /** Token mode: the signing key (PEM, EC P-256 or RSA); default: generated under ROOT/auth/token-key.pem. */
    tokenKey: z.string().min(1).optional(),
    /** Token mode: the signing key's certificate (PEM), for registries that trust a certificate bundle. */
    tokenCert: z.string().min(1).optional(),
    /** Token mode: more PEM files (certificates or public keys) whose tokens are accepted. */
    trustedKeys: z.array(z.string().min(1)).default([]),
    /** Delay after a first failed login (ms); it doubles with each further failure from the same address. */
    failedLoginDelayMs: z.number().int().min(0).max(60_000).default(1000),
    /** Cap of that delay (ms). */
    failedLoginMaxDelayMs: z.number().int().min(0).max(600_000).default(30_000),
    policy: PolicyConfigSchema.prefault({}),
  })
  .superRefine((c, ctx) => {
    if (c.mode === 'htpasswd' && !c.htpasswd) ctx.addIssue({ code: 'custom', path: ['htpasswd'], message: 'htpasswd mode needs an htpasswd file' });
    if (c.mode === 'token' && !c.issueTokens) {
      if (c.trustedKeys.length === 0) ctx.addIssue({ code: 'custom', path: ['trustedKeys'], message: 'with issueTokens false, the external issuer\'s keys are needed' });
      if (!c.realm) ctx.addIssue({ code: 'custom', path: ['realm'], message: 'with issueTokens false, the external token service\'s URL is needed' });
    }
    if (c.mode === 'token' && c.realm && !/^https?:\/\/[^\s"]+$/.test(c.realm)) {
      ctx.addIssue({ code: 'custom', path: ['realm'], message: 'the token realm is an absolute http(s) URL' });
    }
    if (!!c.tokenCert && !c.tokenKey) ctx.addIssue({ code: 'custom', path: ['tokenCert'], message: 'tokenCert goes with tokenKey' });
  });

/** The config as written (defaults optional). */
export type AuthConfigInput = z.input<typeof AuthConfigSchema>;
/** The config after validation (defaults filled in). */
export type AuthConfig = z.infer<typeof AuthConfigSchema>;

export class AuthConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuthConfigError';
  }
}

/** Validate; throws AuthConfigError naming the first problem (`auth.policy.rules.0.actions: ...`). */
export function parseAuthConfig(input: unknown): AuthConfig {
  const r = AuthConfigSchema.safeParse(input ?? {});
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new AuthConfigError(`auth config: ${['auth', ...i.path].join('.')}: ${i.message}`);
  }
  return r.data;
}
