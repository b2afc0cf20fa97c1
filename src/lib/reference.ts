import { invalid } from './errors.js';
import { isDigest, type Digest } from './digest.js';

/** A parsed image reference: [domain/]path[:tag][@digest]. */
export interface Reference {
  domain: string;
  path: string;
  tag?: string;
  digest?: Digest;
}

export const DEFAULT_DOMAIN = 'docker.io';
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
/** Docker's domain: host name components or a bracketed IPv6 address, and an optional port. */
const DOMAIN_RE = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const TAG_RE = /^[\w][\w.-]{0,127}$/;

export function parseReference(input: string): Reference {
  let rest = input.trim();
  if (!rest) throw invalid('invalid reference format: empty');
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) throw invalid(`invalid reference format: bad digest in ${JSON.stringify(input)}`);
    digest = d;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) throw invalid(`invalid reference format: bad tag in ${JSON.stringify(input)}`);
  }
  let domain = DEFAULT_DOMAIN;
  const slash = rest.indexOf('/');
  if (slash > 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()) {
      if (!DOMAIN_RE.test(first)) throw invalid(`invalid reference format: bad registry host in ${JSON.stringify(input)}`);
      domain = first;
      rest = rest.slice(slash + 1);
    }
  }
  if (domain === 'index.docker.io') domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !rest.includes('/')) rest = `library/${rest}`;
  for (const part of rest.split('/')) {
    if (!PATH_COMPONENT.test(part)) {
      throw invalid(`invalid reference format: repository name (${rest}) must be lowercase`);
    }
  }
  if (rest.length > 255) throw invalid('invalid reference format: repository name too long');
  return { domain, path: rest, tag, digest };
}

/** The repository as Docker shows it: "busybox", "user/app", "localhost:5000/app". */
export function familiarRepo(r: Reference): string {
  // library/ goes only from a one-component rest: "library/a/b" would read back as "a/b"
  if (r.domain === DEFAULT_DOMAIN) return /^library\/[^/]+$/.test(r.path) ? r.path.slice(8) : r.path;
  return `${r.domain}/${r.path}`;
}

/** "repo:tag" with the default tag filled in (no digest). */
export function familiarTagged(r: Reference): string {
  return `${familiarRepo(r)}:${r.tag ?? 'latest'}`;
}

export function familiarString(r: Reference): string {
  let s = familiarRepo(r);
  if (r.tag) s += `:${r.tag}`;
  if (r.digest) s += `@${r.digest}`;
  return s;
}
