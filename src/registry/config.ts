/**
 * `sampan registry` configuration, validated once here: flags > environment (SAMPAN_REGISTRY_*) >
 * the JSON file given with --config (or SAMPAN_REGISTRY_CONFIG) > defaults.
 */
import { promises as fs } from 'node:fs';
import { z } from 'zod';
import { invalid } from '../lib/errors.js';
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

/** Environment variables: SAMPAN_REGISTRY_<UPPER_SNAKE of the key>. */
const ENV: Record<string, { key: keyof RegistryConfig; type: 'string' | 'number' | 'boolean' | 'json' }> = {};
for (const [key, schema] of Object.entries(RegistryConfigSchema.shape)) {
  const snake = key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
  const inner = schema instanceof z.ZodDefault || schema instanceof z.ZodOptional ? (schema.unwrap() as z.ZodType) : (schema as z.ZodType);
  // sections (auth) are JSON objects: SAMPAN_REGISTRY_AUTH='{"mode":"htpasswd","htpasswd":"/etc/htpasswd"}'
  const type = inner instanceof z.ZodPrefault || inner instanceof z.ZodObject || inner instanceof z.ZodPipe ? 'json' : inner instanceof z.ZodNumber ? 'number' : inner instanceof z.ZodBoolean ? 'boolean' : 'string';
  ENV[`SAMPAN_REGISTRY_${snake}`] = { key: key as keyof RegistryConfig, type };
}

export const ENV_VARS = Object.keys(ENV);

function fromEnv(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, { key, type }] of Object.entries(ENV)) {
    const v = env[name];
    if (v === undefined || v === '') continue;
    if (type === 'number') {
      const n = Number(v);
      if (!Number.isFinite(n)) throw invalid(`${name}: ${JSON.stringify(v)} is not a number`);
      out[key] = n;
    } else if (type === 'boolean') {
      if (!/^(1|0|true|false|yes|no|on|off)$/i.test(v)) throw invalid(`${name}: ${JSON.stringify(v)} is not a boolean`);
      out[key] = /^(1|true|yes|on)$/i.test(v);
    } else if (type === 'json') {
      try {
        out[key] = JSON.parse(v) as unknown;
      } catch {
        throw invalid(`${name}: not JSON`);
      }
    } else {
      out[key] = v;
    }
  }
  return out;
}

export async function loadRegistryConfig(flags: RegistryFlags, env: NodeJS.ProcessEnv = process.env): Promise<RegistryConfig> {
  const file = flags.config ?? env.SAMPAN_REGISTRY_CONFIG;
  let fromFile: Record<string, unknown> = {};
  if (file) {
    try {
      const parsed = JSON.parse(await fs.readFile(file, 'utf8')) as unknown;
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('expected a JSON object');
      fromFile = parsed as Record<string, unknown>;
    } catch (err) {
      throw invalid(`registry config file ${file}: ${(err as Error).message}`);
    }
  }
  const given = Object.fromEntries(Object.entries(flags).filter(([k, v]) => v !== undefined && k !== 'config' && k !== 'authConfig' && k !== 'anonymousRead'));
  const envValues = fromEnv(env);
  const merged: Record<string, unknown> = { ...fromFile, ...envValues, ...given };
  const authFile = flags.authConfig !== undefined ? await readJsonObject(flags.authConfig, 'auth config file') : undefined;
  merged.auth = authSection([fromFile.auth, authFile, envValues.auth, flags.auth], flags.anonymousRead);
  merged.proxy = proxySection([fromFile.proxy, envValues.proxy, proxyFromEnv(env), flags.proxy]);
  const r = RegistryConfigSchema.safeParse(merged);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw invalid(`registry config: ${i.path.join('.') || 'config'}: ${i.message}`);
  }
  const c = r.data;
  if (!!c.tlsCert !== !!c.tlsKey) throw invalid('registry config: --tls-cert and --tls-key go together');
  if (c.auth.mode === 'none' && (c.auth.htpasswd || c.auth.policy.rules.length > 0)) {
    // never let an operator believe a registry is protected while everything is allowed
    throw invalid('registry config: auth settings (htpasswd, policy rules, --anonymous-read) are given but auth.mode is none: add --auth htpasswd or --auth token');
  }
  return c;
}

async function readJsonObject(file: string, what: string): Promise<Record<string, unknown>> {
  try {
    const parsed = JSON.parse(await fs.readFile(file, 'utf8')) as unknown;
    if (!isObject(parsed)) throw new Error('expected a JSON object');
    return parsed;
  } catch (err) {
    throw invalid(`${what} ${file}: ${(err as Error).message}`);
  }
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

/** Split HOST:PORT ("[::1]:5000", ":5000", "0.0.0.0:5000"). */
export function splitAddr(addr: string): { host: string | undefined; port: number } {
  const i = addr.lastIndexOf(':');
  let host = addr.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const port = Number(addr.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalid(`invalid port in ${addr}`);
  return { host: host || undefined, port };
}
