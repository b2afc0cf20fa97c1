/**
 * The `proxy` section of the registry configuration: mirror mode, a pull-through cache of an upstream
 * registry.
 *
 *   {"proxy": {"remoteurl": "https://registry-1.docker.io", "username": "u", "password": "p", "ttl": "5m"}}
 *
 * `remoteurl` must be https, except for a loopback upstream (plain http allowed there, as Docker does).
 * `ttl` ("500ms", "30s", "5m", "1h", "1d", or a number of seconds) is how long a tag resolved through
 * the upstream is served before it is checked again; it is parsed to milliseconds (`ttlMs`).
 */
import { z } from 'zod';
import { isLoopback } from '../../lib/distribution/client.js';

export const DEFAULT_PROXY_TTL = '5m';

const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "500ms", "30s", "5m", "1h", "1d", "90" (seconds) -> milliseconds; undefined when not a duration. */
export function parseTtl(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? Math.round(v * 1000) : undefined;
  const m = DURATION_RE.exec(v.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 's']!);
}

export const ProxyConfigSchema = z
  .strictObject({
    /** The upstream registry's base URL (scheme, host, port, optional path prefix). */
    remoteurl: z.string().min(1),
    /** Credentials for the upstream: Basic, or exchanged for Bearer tokens at its token service. */
    username: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    /** How long a tag is served before it is re-checked upstream: "5m", "30s", or seconds. */
    ttl: z.union([z.string(), z.number()]).default(DEFAULT_PROXY_TTL),
  })
  .superRefine((p, ctx) => {
    let url: URL | undefined;
    try {
      url = new URL(p.remoteurl);
    } catch {
      ctx.addIssue({ code: 'custom', path: ['remoteurl'], message: `not a URL: ${JSON.stringify(p.remoteurl)} (use https://host[:port] or http://127.0.0.1:port)` });
    }
    if (url) {
      if (url.protocol !== 'https:' && url.protocol !== 'http:') ctx.addIssue({ code: 'custom', path: ['remoteurl'], message: 'scheme must be https (or http for a loopback upstream)' });
      else if (url.protocol === 'http:' && !isLoopback(url.host)) ctx.addIssue({ code: 'custom', path: ['remoteurl'], message: `plain http is only allowed for a loopback upstream; use https://${url.host}` });
      if (url.search || url.hash || url.username || url.password) ctx.addIssue({ code: 'custom', path: ['remoteurl'], message: 'no query, fragment or credentials in the URL (use username and password)' });
    }
    if (!!p.username !== !!p.password) ctx.addIssue({ code: 'custom', path: [p.username ? 'password' : 'username'], message: 'username and password go together' });
    if (parseTtl(p.ttl) === undefined) ctx.addIssue({ code: 'custom', path: ['ttl'], message: `invalid duration ${JSON.stringify(p.ttl)}: use e.g. 1s, 5m, 1h, or a number of seconds` });
  })
  .transform((p) => ({ ...p, remoteurl: p.remoteurl.replace(/\/+$/, ''), ttlMs: parseTtl(p.ttl)! }));

export type ProxyConfig = z.output<typeof ProxyConfigSchema>;
export type ProxyConfigInput = z.input<typeof ProxyConfigSchema>;

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/**
 * SAMPAN_REGISTRY_PROXY_REMOTEURL, _USERNAME, _PASSWORD, _TTL: the section's keys one by one (next to
 * SAMPAN_REGISTRY_PROXY, the whole section as JSON); undefined when none is set.
 */
export function proxyFromEnv(env: NodeJS.ProcessEnv): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  for (const k of ['remoteurl', 'username', 'password', 'ttl']) {
    const v = env[`SAMPAN_REGISTRY_PROXY_${k.toUpperCase()}`];
    if (v !== undefined && v !== '') out[k] = v;
  }
  return Object.keys(out).length ? out : undefined;
}

/** The `proxy` section: each layer's keys over the previous ones' (file < env < flags); undefined when no layer has one. */
export function proxySection(layers: unknown[]): unknown {
  let out: Record<string, unknown> | undefined;
  for (const l of layers) {
    if (l === undefined || l === null) continue;
    if (!isObject(l)) return l; // the schema says what is wrong with it
    out = { ...out, ...Object.fromEntries(Object.entries(l).filter(([, v]) => v !== undefined)) };
  }
  return out;
}
