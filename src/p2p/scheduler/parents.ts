/**
 * Parent choice for one child of a task, as a pure function of what the scheduler knows: re-run on every
 * progress report, so children move to better parents as others get pieces or finish.
 *
 * Candidates: the task's other peers that hold a piece the child lacks, or that are still downloading
 * (they get pieces soon, and a child that waits on them is what makes a mesh), minus the ones this child
 * found corrupt or gone. Ranked: finished first, then more pieces the child lacks (up to a few: beyond that
 * they count the same), then free upload slots,
 * then the child's zone, then fewer children. A peer that has its share of children (childrenPerSlot per
 * upload slot) is left out unless nobody else is left: that, more than the ranking, is what keeps the seed
 * from becoming a star.
 */
import type { PieceSet } from './pieceset.js';

export interface Candidate {
  peerId: string;
  zone?: string;
  /** Holds the whole blob. */
  finished: boolean;
  pieces: PieceSet;
  uploadSlots: number;
  /** Children it serves now (over all tasks: upload slots belong to the host), not counting this child. */
  children: number;
}

export interface Child {
  peerId: string;
  zone?: string;
  pieces: PieceSet;
  finished?: boolean;
  /** A seed gets its bytes from the upstream: only peers holding pieces it lacks are worth naming to it. */
  seed?: boolean;
}

export interface ChoiceOptions {
  /** How many parents to return (K). */
  max: number;
  /** Peers this child must not get (it saw them serve a corrupt piece, or found them gone). */
  blocked?: (peerId: string) => boolean;
  /** Pieces in the blob, when known (a finished peer holds them all even before its pieces were listed). */
  total?: number;
  /** Children a candidate takes per upload slot (default 1). */
  childrenPerSlot?: number;
}

interface Ranked {
  c: Candidate;
  useful: number;
  free: number;
  sameZone: boolean;
  tie: number;
}

export function chooseParents(child: Child, candidates: readonly Candidate[], opts: ChoiceOptions): Candidate[] {
  if (child.finished || opts.max <= 0) return [];
  const ranked: Ranked[] = [];
  for (const c of candidates) {
    if (c.peerId === child.peerId || opts.blocked?.(c.peerId)) continue;
    const useful = c.finished ? (opts.total !== undefined ? Math.max(0, opts.total - child.pieces.size) : Number.MAX_SAFE_INTEGER) : c.pieces.countMissingFrom(child.pieces);
    if (useful === 0 && (c.finished || child.seed)) continue;
    ranked.push({ c, useful, free: c.uploadSlots * (opts.childrenPerSlot ?? 1) - c.children, sameZone: child.zone !== undefined && c.zone === child.zone, tie: mix(child.peerId, c.peerId) });
  }
  const open = ranked.filter((r) => r.free > 0);
  // everyone is busy: the least overloaded ones, rather than nothing (the child retries busy parents)
  const pool = open.length > 0 ? open : ranked;
  pool.sort(open.length > 0 ? byRank : (a, b) => b.free - a.free || byRank(a, b));
  return pool.slice(0, opts.max).map((r) => r.c);
}

const USEFUL_ENOUGH = 8;

function byRank(a: Ranked, b: Ranked): number {
  return (
    Number(b.c.finished) - Number(a.c.finished) ||
    // past a few useful pieces, more is no better: load decides, so children spread over the mesh instead of
    // all picking the few most advanced peers (whose uploads then cap everyone)
    Math.min(b.useful, USEFUL_ENOUGH) - Math.min(a.useful, USEFUL_ENOUGH) ||
    b.free - a.free ||
    Number(b.sameZone) - Number(a.sameZone) ||
    a.c.children - b.c.children ||
    a.tie - b.tie
  );
}

/**
 * A stable per-(child, parent) number for the last tie-break: equal candidates are ordered differently
 * for each child, so children that all look alike do not all pick the same peers.
 */
function mix(child: string, parent: string): number {
  let h = 0x811c9dc5;
  const s = `${child}\0${parent}`;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
