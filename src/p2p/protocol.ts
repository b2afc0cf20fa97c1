/**
 * The wire contract between P2P peers and the scheduler (JSON over HTTP). A task is one blob, named by its
 * digest; the first peer to announce it is its seed, the only one that goes to the registry.
 */

/** "sha256:<64 hex>". */
export type TaskId = string;

export interface PeerRef {
  peerId: string;
  /** Base URL of the peer's peer API, e.g. http://10.0.0.2:65002 */
  addr: string;
  zone?: string;
}

/** What a task's pieces are: decided by its seed from the blob size, the digests as the seed read them. */
export interface TaskMeta {
  size: number;
  pieceSize: number;
  /** sha256 hex of every piece, in order; filled as the seed reads them (shorter until it finishes). */
  pieceDigests: string[];
}

// ---------- scheduler API (base path /api/v1) ----------

/** POST /api/v1/peers: a peer says it is up (again after a scheduler restart); the scheduler may send it preheat jobs. */
export interface RegisterPeerRequest extends PeerRef {
  uploadSlots: number;
}

/** POST /api/v1/tasks/{taskId}/announce */
export interface AnnounceRequest extends PeerRef {
  /** The blob URL at the upstream registry (what the seed fetches). */
  url: string;
  uploadSlots: number;
  /** Pieces this peer already holds (after a scheduler restart, or a partial blob in its store). */
  pieces?: number[];
  finished?: boolean;
  meta?: TaskMeta;
}

export interface AnnounceResponse {
  /** seed: fetch from the upstream; child: fetch pieces from the parents. */
  role: 'seed' | 'child';
  parents: PeerRef[];
  meta?: TaskMeta;
}

/** POST /api/v1/tasks/{taskId}/peers/{peerId}/progress */
export interface ProgressRequest {
  /** Pieces finished (and verified) since the last report. */
  pieces?: number[];
  /** Pieces that failed, and from which parent: a digest mismatch blocks that parent for this child. */
  failed?: Array<{ piece: number; parent: string; reason: 'digest' | 'timeout' | 'gone' | 'busy' }>;
  /** The seed's view of the blob, as its pieces come in. */
  meta?: TaskMeta;
  /** Piece digests the peer has already: the answer leaves the meta out unless the task knows more. */
  digestsKnown?: number;
  finished?: boolean;
  /** The peer gave up on the P2P path (it went to the upstream itself). */
  failedTask?: boolean;
}

export interface ProgressResponse {
  parents: PeerRef[];
  meta?: TaskMeta;
  /** The seed stalled: this peer may go to the upstream itself (a bounded number of peers are told so). */
  backToSource?: boolean;
}

/**
 * GET /api/v1/traffic: per task (blob) the scheduler knows, the bytes its peers hold by where they came from: a
 * seed's and a back-to-source peer's from the upstream registry, every other peer's from other peers. Counted in
 * whole pieces, as the peers report them (the cluster manager's dashboard plots it, per repository).
 */
export interface TrafficView {
  tasks: Array<{ taskId: TaskId; url: string; fromPeers: number; fromSource: number }>;
}

/** POST /api/v1/preheat: fetch an image's blobs onto seeds of a zone before a release. */
export interface PreheatRequest {
  /** registry/repo:tag or @digest, e.g. 127.0.0.1:5000/app/web:2.0 */
  image: string;
  zone?: string;
  /** Authorization header value to use at the registry, if it needs one. */
  authorization?: string;
}

export interface PreheatJob {
  id: string;
  image: string;
  zone?: string;
  state: 'pending' | 'running' | 'done' | 'failed';
  blobs: Array<{ digest: TaskId; size?: number; peers: string[]; state: 'pending' | 'running' | 'done' | 'failed' }>;
  error?: string;
}

// ---------- peer API (base path /p2p/v1), what other peers and the scheduler call ----------

/** GET /p2p/v1/tasks/{taskId}: 404 when the peer knows nothing of it. */
export interface PeerTaskView {
  meta?: TaskMeta;
  /** Pieces held (verified), ascending. */
  pieces: number[];
  complete: boolean;
}

/**
 * GET /p2p/v1/tasks/{taskId}/pieces?after=N&wait=MS: long-poll until the peer holds more than N pieces (or MS pass);
 * answers a PeerTaskView. GET /p2p/v1/tasks/{taskId}/pieces/{n}: the piece's bytes (header X-Piece-Digest),
 * 503 with Retry-After when all upload slots are busy (or, code PIECE_ELSEWHERE, when a seed sent that piece already),
 * 404 when it does not hold it.
 */
export const PIECE_DIGEST_HEADER = 'x-piece-digest';
/** The error code of a 503 for one piece (not the whole parent): a seed sent it already, other peers have it. */
export const PIECE_ELSEWHERE = 'PIECE_ELSEWHERE';

/** GET /p2p/v1/tasks: what a peer holds and is fetching, with where the bytes came from (for `sampan p2p status`). */
export interface PeerTaskSummary {
  id: TaskId;
  size?: number;
  pieces: number;
  total?: number;
  complete: boolean;
  /** While it downloads: its role, and blob bytes from other peers and from the upstream so far. */
  active?: { role: 'seed' | 'child' | 'alone'; fromPeers: number; fromUpstream: number };
}

/** POST /p2p/v1/preheat (scheduler → peer): fetch this blob from the upstream into the store, as a seed. */
export interface PeerPreheatRequest {
  taskId: TaskId;
  url: string;
  authorization?: string;
}

/** About nextPow2(size / 500), within 1–16 MiB: a few hundred pieces for any blob. */
export function pieceSizeFor(size: number): number {
  const MiB = 1024 * 1024;
  const want = Math.max(1, Math.ceil(size / 500));
  let p = MiB;
  while (p < want && p < 16 * MiB) p *= 2;
  return p;
}

export function pieceCount(size: number, pieceSize: number): number {
  return size === 0 ? 0 : Math.ceil(size / pieceSize);
}
