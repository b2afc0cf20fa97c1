/**
 * `sampan registry` configuration, validated once here: flags > environment (SAMPAN_REGISTRY_*) >
 * the JSON file given with --config (or SAMPAN_REGISTRY_CONFIG) > defaults.
 */
import { promises as fs } from 'node:fs';
import { z } from 'zod';
import { invalid } from '../lib/errors.js';

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
});

export type RegistryConfig = z.infer<typeof RegistryConfigSchema>;
export type RegistryFlags = Partial<RegistryConfig> & { config?: string };

/** Environment variables: SAMPAN_REGISTRY_<UPPER_SNAKE of the key>. */
const ENV: Record<string, { key: keyof RegistryConfig; type: 'string' | 'number' | 'boolean' }> = {};
for (const [key, schema] of Object.entries(RegistryConfigSchema.shape)) {
  const snake = key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
  const inner = schema instanceof z.ZodDefault || schema instanceof z.ZodOptional ? (schema.unwrap() as z.ZodType) : (schema as z.ZodType);
  const type = inner instanceof z.ZodNumber ? 'number' : inner instanceof z.ZodBoolean ? 'boolean' : 'string';
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
  const given = Object.fromEntries(Object.entries(flags).filter(([k, v]) => v !== undefined && k !== 'config'));
  const r = RegistryConfigSchema.safeParse({ ...fromFile, ...fromEnv(env), ...given });
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw invalid(`registry config: ${i.path.join('.') || 'config'}: ${i.message}`);
  }
  const c = r.data;
  if (!!c.tlsCert !== !!c.tlsKey) throw invalid('registry config: --tls-cert and --tls-key go together');
  return c;
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
