/** Repository names, tags, digests and upload ids as the OCI Distribution Spec allows them. */
import { regError } from './errors.js';
import type { Digest } from '../lib/digest.js';

/** One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`. */
const COMPONENT_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
/** Any well-formed digest (other algorithms are well-formed but not supported here). */
const ANY_DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const UPLOAD_ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Distribution's limit on a repository name. */
export const MAX_NAME_LENGTH = 255;

const nameCache = new Map<string, boolean>();

/** True when `name` is a valid repository name: components separated by single slashes. */
export function isValidName(name: string): boolean {
  const hit = nameCache.get(name);
  if (hit !== undefined) return hit;
  let ok = name.length > 0 && name.length <= MAX_NAME_LENGTH;
  if (ok) {
    for (const c of name.split('/')) {
      if (!COMPONENT_RE.test(c)) {
        ok = false;
        break;
      }
    }
  }
  if (nameCache.size > 10_000) nameCache.clear();
  nameCache.set(name, ok);
  return ok;
}

export function checkName(name: string): string {
  if (!isValidName(name)) throw regError('NAME_INVALID', `invalid repository name ${JSON.stringify(name.slice(0, 300))}`, { name: name.slice(0, 300) });
  return name;
}

export function isTag(s: string): boolean {
  return TAG_RE.test(s);
}

export function isSha256(s: string): s is Digest {
  return DIGEST_RE.test(s);
}

/** A digest the registry can hold (sha256); DIGEST_INVALID otherwise. */
export function checkDigest(s: string): Digest {
  if (!DIGEST_RE.test(s)) {
    const why = ANY_DIGEST_RE.test(s) ? 'unsupported digest algorithm' : 'invalid digest';
    throw regError('DIGEST_INVALID', `${why} ${JSON.stringify(s.slice(0, 200))}: expected sha256:<64 lowercase hex>`, { digest: s.slice(0, 200) });
  }
  return s as Digest;
}

export type Reference = { tag: string; digest?: undefined } | { digest: Digest; tag?: undefined };

/** A manifest reference: a tag or a digest. A malformed one is MANIFEST_UNKNOWN on reads, MANIFEST_INVALID on a push. */
export function parseReference(ref: string, kind: 'MANIFEST_UNKNOWN' | 'MANIFEST_INVALID' = 'MANIFEST_UNKNOWN'): Reference {
  if (TAG_RE.test(ref)) return { tag: ref };
  if (ref.includes(':')) return { digest: checkDigest(ref) };
  throw regError(kind, `invalid reference ${JSON.stringify(ref.slice(0, 200))}: not a tag or a digest`, { reference: ref.slice(0, 200) });
}

export function isUploadId(s: string): boolean {
  return UPLOAD_ID_RE.test(s);
}
