/** The Authorization header (Basic and Bearer), and quoting for WWW-Authenticate challenges. */
import type { IncomingMessage } from 'node:http';

export type Credentials =
  | { scheme: 'basic'; user: string; password: string }
  | { scheme: 'bearer'; token: string }
  /** A header that is present but not understood (another scheme, bad base64, no colon). */
  | { scheme: 'invalid'; reason: string };

/** Anything that can check a user's password (an Htpasswd file, a test double). */
export interface Authenticator {
  verify(user: string, password: string): Promise<boolean>;
}

const MAX_HEADER = 16 * 1024;

/** Parse an Authorization header value; undefined when there is none. */
export function parseAuthorization(value: string | undefined): Credentials | undefined {
  if (value === undefined || value === '') return undefined;
  if (value.length > MAX_HEADER) return { scheme: 'invalid', reason: 'authorization header too long' };
  const sp = value.indexOf(' ');
  const scheme = (sp < 0 ? value : value.slice(0, sp)).toLowerCase();
  const rest = sp < 0 ? '' : value.slice(sp + 1).trim();
  if (scheme === 'basic') {
    if (!/^[A-Za-z0-9+/]+=*$/.test(rest)) return { scheme: 'invalid', reason: 'malformed basic credentials' };
    const decoded = Buffer.from(rest, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return { scheme: 'invalid', reason: 'malformed basic credentials' };
    return { scheme: 'basic', user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (scheme === 'bearer') {
    if (!/^[A-Za-z0-9\-_.~+/]+=*$/.test(rest)) return { scheme: 'invalid', reason: 'malformed bearer token' };
    return { scheme: 'bearer', token: rest };
  }
  return { scheme: 'invalid', reason: `unsupported authorization scheme ${JSON.stringify(scheme.slice(0, 20))}` };
}

/** The request's credentials, if any. */
export function requestCredentials(req: IncomingMessage): Credentials | undefined {
  const h = req.headers.authorization;
  return parseAuthorization(Array.isArray(h) ? h[0] : h);
}

/** A quoted-string for a challenge parameter (RFC 7230): `"` and `\` escaped, controls dropped. */
export function quote(value: string): string {
  // eslint-disable-next-line no-control-regex
  return `"${value.replace(/[\x00-\x1f\x7f]/g, '').replace(/["\\]/g, '\\$&')}"`;
}

/** `Basic realm="..."`. */
export function basicChallenge(realm: string): string {
  return `Basic realm=${quote(realm)}`;
}

/** `Bearer realm="...",service="..."[,scope="..."][,error="..."]`, the parameters in Distribution's order. */
export function bearerChallenge(p: { realm: string; service: string; scope?: string; error?: 'invalid_token' | 'insufficient_scope' }): string {
  let s = `Bearer realm=${quote(p.realm)},service=${quote(p.service)}`;
  if (p.scope) s += `,scope=${quote(p.scope)}`;
  if (p.error) s += `,error=${quote(p.error)}`;
  return s;
}
