/**
 * Registry credentials and challenges: the X-Registry-Auth header the docker CLI sends, the
 * WWW-Authenticate challenges registries answer with (RFC 7235 syntax, Docker registry token spec),
 * and a cache of bearer tokens per realm, service, scopes and identity until they expire.
 */
import { createHash } from 'node:crypto';

/** Docker's AuthConfig, as the CLI encodes it in X-Registry-Auth and POST /auth. */
export interface AuthConfig {
  username?: string;
  password?: string;
  /** base64("user:password"), as stored in a docker config file. */
  auth?: string;
  email?: string;
  serveraddress?: string;
  /** An OAuth2 refresh token from an earlier login. */
  identitytoken?: string;
  /** A bearer token to send to the registry as it is. */
  registrytoken?: string;
}

/**
 * Decode X-Registry-Auth: base64url (or base64) JSON; empty or "{}" means anonymous. As Docker, a header that
 * does not decode is taken as no credentials (the registry then says what it needs).
 */
export function decodeRegistryAuth(header: string | string[] | undefined): AuthConfig | undefined {
  const h = Array.isArray(header) ? header[0] : header;
  if (!h || !h.trim()) return undefined;
  let parsed: unknown;
  try {
    // Node's base64 decoder takes both alphabets and missing padding
    parsed = JSON.parse(Buffer.from(h.trim(), 'base64').toString('utf8'));
  } catch {
    return undefined;
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  return normalizeAuth(parsed as Record<string, unknown>);
}

/**
 * X-Registry-Config (builds): base64 JSON of registry host → AuthConfig. Returns the credentials for the
 * registry an image reference names (docker.io's under any of the names the CLI uses for it).
 */
export function decodeRegistryConfig(header: string | string[] | undefined): (ref: string) => AuthConfig | undefined {
  const h = Array.isArray(header) ? header[0] : header;
  const byHost = new Map<string, AuthConfig>();
  try {
    const parsed = h?.trim() ? (JSON.parse(Buffer.from(h.trim(), 'base64').toString('utf8')) as unknown) : undefined;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
      for (const [host, v] of Object.entries(parsed as Record<string, unknown>)) {
        const a = v && typeof v === 'object' ? normalizeAuth(v as Record<string, unknown>) : undefined;
        if (a) byHost.set(host.replace(/^https?:\/\//, '').replace(/\/.*$/, ''), a);
      }
    }
  } catch {
    // as X-Registry-Auth: what does not decode is no credentials
  }
  return (ref) => {
    const first = ref.split('/')[0]!;
    const host = ref.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost') ? first : 'docker.io';
    if (host === 'docker.io') return byHost.get('index.docker.io') ?? byHost.get('docker.io') ?? byHost.get('registry-1.docker.io');
    return byHost.get(host);
  };
}

/** Keep the string fields of an AuthConfig; split `auth` into username and password. */
export function normalizeAuth(raw: Record<string, unknown>): AuthConfig | undefined {
  const str = (k: string) => {
    const v = raw[k] ?? raw[k.charAt(0).toUpperCase() + k.slice(1)];
    return typeof v === 'string' && v ? v : undefined;
  };
  const a: AuthConfig = {
    username: str('username'),
    password: str('password'),
    auth: str('auth'),
    email: str('email'),
    serveraddress: str('serveraddress') ?? (typeof raw.ServerAddress === 'string' ? raw.ServerAddress : undefined),
    identitytoken: str('identitytoken') ?? (typeof raw.IdentityToken === 'string' && raw.IdentityToken ? raw.IdentityToken : undefined),
    registrytoken: str('registrytoken') ?? (typeof raw.RegistryToken === 'string' && raw.RegistryToken ? raw.RegistryToken : undefined),
  };
  if (a.auth && !a.username) {
    const dec = Buffer.from(a.auth, 'base64').toString('utf8');
    const i = dec.indexOf(':');
    if (i > 0) {
      a.username = dec.slice(0, i);
      a.password = dec.slice(i + 1);
    }
  }
  if (!a.username && !a.password && !a.identitytoken && !a.registrytoken) return undefined;
  return a;
}

/** A short, stable name for a set of credentials (token cache keys never hold the secret itself). */
export function authIdentity(a: AuthConfig | undefined): string {
  if (!a) return 'anonymous';
  const h = createHash('sha256').update(`${a.username ?? ''}\0${a.password ?? ''}\0${a.identitytoken ?? ''}\0${a.registrytoken ?? ''}`);
  return `${a.username ?? 'token'}:${h.digest('hex').slice(0, 16)}`;
}

export function basicHeader(a: AuthConfig): string {
  return `Basic ${Buffer.from(`${a.username ?? ''}:${a.password ?? ''}`).toString('base64')}`;
}

export interface Challenge {
  /** Lower-cased scheme: "bearer", "basic", ... */
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parse a WWW-Authenticate value: one or more `scheme param=value, param="quoted \"value\""` challenges,
 * separated by commas. Parameter names are lower-cased.
 */
export function parseWwwAuthenticate(value: string | string[] | undefined): Challenge[] {
  const values = Array.isArray(value) ? value : value ? [value] : [];
  const out: Challenge[] = [];
  for (const v of values) {
    let i = 0;
    const n = v.length;
    let cur: Challenge | undefined;
    const skipWs = () => {
      while (i < n && (v[i] === ' ' || v[i] === '\t' || v[i] === ',')) i++;
    };
    const token = () => {
      const s = i;
      while (i < n && !/[\s,=]/.test(v[i]!)) i++;
      return v.slice(s, i);
    };
    while (i < n) {
      skipWs();
      if (i >= n) break;
      const word = token();
      if (!word) {
        i++;
        continue;
      }
      let j = i;
      while (j < n && (v[j] === ' ' || v[j] === '\t')) j++;
      if (v[j] === '=' && cur) {
        // a parameter of the current challenge
        i = j + 1;
        while (i < n && (v[i] === ' ' || v[i] === '\t')) i++;
        let val = '';
        if (v[i] === '"') {
          i++;
          while (i < n && v[i] !== '"') {
            if (v[i] === '\\' && i + 1 < n) i++;
            val += v[i];
            i++;
          }
          i++; // closing quote
        } else {
          const s = i;
          while (i < n && v[i] !== ',') i++;
          val = v.slice(s, i).trim();
        }
        cur.params[word.toLowerCase()] = val;
      } else {
        cur = { scheme: word.toLowerCase(), params: {} };
        out.push(cur);
      }
    }
  }
  return out;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Bearer tokens by realm, service, scopes and identity; an entry is dropped a little before it expires. */
export class TokenCache {
  private readonly entries = new Map<string, CachedToken>();

  constructor(
    private readonly max = 512,
    private readonly now: () => number = Date.now,
  ) {}

  static key(realm: string, service: string, scopes: string[], identity: string): string {
    return JSON.stringify([realm, service, [...scopes].sort(), identity]);
  }

  get(key: string): string | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (this.now() >= e.expiresAt) {
      this.entries.delete(key);
      return undefined;
    }
    return e.token;
  }

  set(key: string, token: string, expiresInSec: number, issuedAt?: string): void {
    // the spec's minimum lifetime is 60 s; keep a margin so a token never expires in flight
    const life = Math.max(Number.isFinite(expiresInSec) && expiresInSec > 0 ? expiresInSec : 60, 60);
    const now = this.now();
    const issued = issuedAt ? Date.parse(issuedAt) : NaN;
    const start = Number.isFinite(issued) && issued <= now + 5_000 ? Math.min(issued, now) : now;
    const expiresAt = start + life * 1000 - Math.min(30_000, life * 100);
    if (this.entries.size >= this.max) {
      for (const [k, v] of this.entries) if (v.expiresAt <= now) this.entries.delete(k);
      if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
    }
    this.entries.set(key, { token, expiresAt });
  }

  delete(key: string): void {
    this.entries.delete(key);
  }
}
