/**
 * `sampan registry` configuration, validated once here: flags > environment (SAMPAN_REGISTRY_*) >
 * the JSON file given with --config (or SAMPAN_REGISTRY_CONFIG) > defaults.
 */
import { z } from 'zod';
import { invalid } from '../lib/errors.js';
import { envValues, givenFlags, readConfigFile, validated } from '../lib/layered-config.js';
import { AuthConfigSchema, type AuthConfigInput } from './auth/config.js';
import { ProxyConfigSchema, proxyFromEnv, proxySection, type ProxyConfigInput } from './mirror/config.js';

const ADDR_RE = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$/;

export const RegistryConfigSchema = z.strictObject({
  /** Storage root (filesystem driver). */
  root: z.string().min(1).default('/var/lib/sampan/registry'),
  /** HOST:PORT to listen on ("" or no host = all interfaces). */
  addr: z.string().regex(ADDR_RE, 'expected HOST:PORT').default('127.0.0.1:5000'),
  tlsCert: z.string().min(1).optional(),
  tlsKey: z.string().min(1).optional(),
  /** Whether manifests, tags and blobs may be deleted (405 UNSUPPORTED otherwise). */
  enableDelete: z.boolean().default(true),
  /** Manifests over this many bytes are refused with 413. */
  maxManifestBytes: z.number().int().positive().default(4 << 20),
  /** Hot-path cache of manifests and tag lookups: bounds in bytes and entries. */
  cacheMaxBytes: z.number().int().nonnegative().default(64 << 20),
  cacheMaxEntries: z.number().int().nonnegative().default(10_000),
  /** Upload sessions not written to for this long are removed (seconds). */
  uploadExpirySeconds: z.number().int().positive().default(24 * 3600),
  /** How often stale uploads are looked for (seconds; 0 = never). */
  uploadPurgeIntervalSeconds: z.number().int().nonnegative().default(3600),
  /** Online garbage collection every this many seconds (0 = only on demand with `sampan registry gc`). */
  gcIntervalSeconds: z.number().int().nonnegative().default(0),
  /** GC never deletes a blob written or used more recently than this (in-flight uploads and pushes). */
  gcGraceSeconds: z.number().int().nonnegative().default(3600),
  /** Seconds a graceful stop waits for requests in flight before closing their connections. */
  shutdownTimeoutSeconds: z.number().int().nonnegative().default(30),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  /** Authentication and access policy (see auth/config.ts): mode none, htpasswd or token. */
  auth: AuthConfigSchema.prefault({}),
  /** Mirror mode (see mirror/config.ts): a read-only pull-through cache of this upstream registry. */
  proxy: ProxyConfigSchema.optional(),
});

export type RegistryConfig = z.infer<typeof RegistryConfigSchema>;
export type RegistryFlags = Partial<Omit<RegistryConfig, 'auth' | 'proxy'>> & {
  /** Keys of the `proxy` section (mirror mode), over the file's and the environment's. */
  proxy?: Partial<ProxyConfigInput>;
  config?: string;
  /** Keys of the `auth` section, over the file's and the environment's. */
  auth?: AuthConfigInput;
  /** A JSON file holding the `auth` section (over the config file's `auth`, under env and flags). */
  authConfig?: string;
  /** Repository patterns anonymous clients may pull (added to auth.policy.rules). */
  anonymousRead?: string[];
};

const ENV_PREFIX = 'SAMPAN_REGISTRY_';

export async function loadRegistryConfig(flags: RegistryFlags, env: NodeJS.ProcessEnv = process.env): Promise<RegistryConfig> {
  const file = flags.config ?? env.SAMPAN_REGISTRY_CONFIG;
  const fromFile = file ? await readConfigFile(file, 'registry config file') : {};
  const given = givenFlags(flags, ['config', 'authConfig', 'anonymousRead']);
  const fromEnv = envValues(RegistryConfigSchema.shape, ENV_PREFIX, env);
  const merged: Record<string, unknown> = { ...fromFile, ...fromEnv, ...given };
  const authFile = flags.authConfig !== undefined ? await readConfigFile(flags.authConfig, 'auth config file') : undefined;
  const auth = authSection([fromFile.auth, authFile, fromEnv.auth, flags.auth], flags.anonymousRead);
  // an htpasswd file and no mode anywhere: the accounts are meant to be asked for (an explicit mode none still refuses below)
  merged.auth = isObject(auth) && auth.htpasswd !== undefined && auth.mode === undefined ? { ...auth, mode: 'htpasswd' } : auth;
  merged.proxy = proxySection([fromFile.proxy, fromEnv.proxy, proxyFromEnv(env), flags.proxy]);
  const c = validated(RegistryConfigSchema, merged, 'registry config');
  if (!!c.tlsCert !== !!c.tlsKey) throw invalid('registry config: --tls-cert and --tls-key go together');
  if (c.auth.mode === 'none' && (c.auth.htpasswd || c.auth.policy.rules.length > 0)) {
    // never let an operator believe a registry is protected while everything is allowed
    throw invalid('registry config: auth settings (htpasswd, policy rules, --anonymous-read) are given but auth.mode is none: add --auth htpasswd or --auth token');
  }
  return c;
}

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** The `auth` section: each layer's keys over the previous ones'; --anonymous-read adds a policy rule. */
function authSection(layers: unknown[], anonymousRead: string[] | undefined): unknown {
  let out: Record<string, unknown> | undefined;
  for (const l of layers) {
    if (l === undefined) continue;
    if (!isObject(l)) return l; // the schema says what is wrong with it
    out = { ...out, ...l };
  }
  if (anonymousRead?.length) {
    const policy = out?.policy ?? {};
    if (!isObject(policy)) return out;
    const rules = Array.isArray(policy.rules) ? (policy.rules as unknown[]) : [];
    out = { ...out, policy: { ...policy, rules: [...rules, { anonymous: true, repos: anonymousRead, actions: ['pull'] }] } };
  }
  return out;
}
