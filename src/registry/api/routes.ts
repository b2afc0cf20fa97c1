/**
 * URL routing for the Distribution API. Repository names contain slashes, so routes are recognised
 * from the right: `/v2/<name>/manifests/<ref>`, `/v2/<name>/blobs/<digest>`,
 * `/v2/<name>/blobs/uploads/[<id>]`, `/v2/<name>/tags/list`, `/v2/<name>/referrers/<digest>`.
 *
 * Path tricks never reach storage: each segment is percent-decoded on its own (so `%2F` cannot make a
 * separator and `%2e%2e` becomes a literal `..`), and the name is then checked against the spec's
 * grammar, which has no empty, dot or dot-dot components.
 */
import { regError } from '../errors.js';
import { checkName } from '../names.js';

export type Route =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'manifest'; name: string; ref: string }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'uploads'; name: string }
  | { kind: 'upload'; name: string; id: string }
  | { kind: 'tags'; name: string }
  | { kind: 'referrers'; name: string; digest: string };

export type RouteKind = Route['kind'];

/** Methods each route answers (others get 405 UNSUPPORTED). */
export const METHODS: Record<RouteKind, readonly string[]> = {
  base: ['GET', 'HEAD'],
  catalog: ['GET'],
  manifest: ['GET', 'HEAD', 'PUT', 'DELETE'],
  blob: ['GET', 'HEAD', 'DELETE'],
  uploads: ['POST'],
  upload: ['GET', 'PATCH', 'PUT', 'DELETE'],
  tags: ['GET'],
  referrers: ['GET'],
};

function decodeSegments(rest: string): string[] {
  const segs = rest.split('/');
  if (rest.includes('%')) {
    for (let i = 0; i < segs.length; i++) {
      let seg: string;
      try {
        seg = decodeURIComponent(segs[i]!);
      } catch {
        throw regError('NAME_INVALID', 'malformed percent-encoding in the path');
      }
      // an encoded separator is never a separator, and never part of a name, tag or digest
      if (seg.includes('/') || seg.includes('\\') || seg.includes('\0')) throw regError('NAME_INVALID', 'encoded separator in the path');
      segs[i] = seg;
    }
  }
  return segs;
}

function nameOf(segs: string[], upTo: number): string {
  return checkName(segs.slice(0, upTo).join('/'));
}

/**
 * Route a request path (without the query). Undefined for paths outside the API (404); throws
 * NAME_INVALID for a route whose repository name is not valid.
 */
export function route(path: string): Route | undefined {
  if (path === '/v2/' || path === '/v2') return { kind: 'base' };
  if (!path.startsWith('/v2/')) return undefined;
  const segs = decodeSegments(path.slice(4));
  const n = segs.length;
  if (n === 1 && segs[0] === '_catalog') return { kind: 'catalog' };
  if (n < 3) return undefined;
  const last = segs[n - 1]!;
  const prev = segs[n - 2]!;
  if (prev === 'manifests') return { kind: 'manifest', name: nameOf(segs, n - 2), ref: last };
  if (prev === 'blobs') {
    if (last === 'uploads') return { kind: 'uploads', name: nameOf(segs, n - 2) };
    return { kind: 'blob', name: nameOf(segs, n - 2), digest: last };
  }
  if (prev === 'uploads' && n >= 4 && segs[n - 3] === 'blobs') {
    if (last === '') return { kind: 'uploads', name: nameOf(segs, n - 3) };
    return { kind: 'upload', name: nameOf(segs, n - 3), id: last };
  }
  if (prev === 'tags' && last === 'list') return { kind: 'tags', name: nameOf(segs, n - 2) };
  if (prev === 'referrers') return { kind: 'referrers', name: nameOf(segs, n - 2), digest: last };
  return undefined;
}
