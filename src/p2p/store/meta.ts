import { isDigest, sha256 } from '../../lib/digest.js';
import { invalid } from '../../lib/errors.js';
import { pieceCount, type TaskId, type TaskMeta } from '../protocol.js';

/** The digest of the 0-byte blob: a task of size 0 has no pieces and is complete as soon as it is opened. */
export const EMPTY_BLOB_DIGEST: TaskId = sha256('');

/** Bounds a bitmap and a meta.json from a hostile or broken peer; protocol pieces are 1–16 MiB anyway. */
export const MAX_PIECES = 1 << 20;
export const MAX_PIECE_SIZE = 64 * 1024 * 1024;

const HEX_RE = /^[a-f0-9]{64}$/;

/** The directory name of a task: its digest hex (validated, so an id can never walk out of the store). */
export function taskHex(id: TaskId): string {
  if (!isDigest(id)) throw invalid(`invalid task id ${JSON.stringify(id)}: expected sha256:<64 hex>`);
  return id.slice(7);
}

/** Piece digests travel as bare hex (protocol) or sometimes prefixed (headers): compare them as bare hex. */
export function normalizePieceDigest(d: string): string {
  const hex = (d.startsWith('sha256:') ? d.slice(7) : d).toLowerCase();
  if (!HEX_RE.test(hex)) throw invalid(`invalid piece digest ${JSON.stringify(d)}`);
  return hex;
}

/** A validated copy of a TaskMeta with bare-hex digests. */
export function checkMeta(id: TaskId, m: TaskMeta): TaskMeta {
  if (!m || typeof m !== 'object') throw invalid('task meta: not an object');
  if (!Number.isSafeInteger(m.size) || m.size < 0) throw invalid(`task meta: bad size ${m.size}`);
  if (!Number.isSafeInteger(m.pieceSize) || m.pieceSize < 1 || m.pieceSize > MAX_PIECE_SIZE) {
    throw invalid(`task meta: bad piece size ${m.pieceSize}`);
  }
  const total = pieceCount(m.size, m.pieceSize);
  if (total > MAX_PIECES) throw invalid(`task meta: ${total} pieces is too many`);
  const digests = Array.isArray(m.pieceDigests) ? m.pieceDigests : [];
  if (digests.length > total) throw invalid(`task meta: ${digests.length} piece digests for ${total} pieces`);
  if (m.size === 0 && id !== EMPTY_BLOB_DIGEST) throw invalid(`task meta: size 0 but ${id} is not the empty blob`);
  return { size: m.size, pieceSize: m.pieceSize, pieceDigests: digests.map(normalizePieceDigest) };
}

/** Byte length of piece n (the last one is shorter unless the size is a multiple of the piece size). */
export function pieceLength(m: TaskMeta, n: number): number {
  return Math.min(m.pieceSize, m.size - n * m.pieceSize);
}

/** meta.json of a task directory. */
export interface TaskRecord {
  version: 1;
  id: TaskId;
  meta: TaskMeta;
  /** base64 bitmap of the pieces held (verified) when the record was written; lags the truth by one batch. */
  held: string;
  /** Digests this peer computed for held pieces whose meta digest was not known yet (piece number → hex). */
  own: Record<string, string>;
  lastUsed: number;
}

/** Parses a meta.json; undefined when it is not a record of this task (it is then unverifiable and dropped). */
export function parseRecord(id: TaskId, raw: unknown): TaskRecord | undefined {
  try {
    const r = raw as TaskRecord;
    if (!r || r.version !== 1 || r.id !== id || typeof r.held !== 'string') return undefined;
    const meta = checkMeta(id, r.meta);
    const total = pieceCount(meta.size, meta.pieceSize);
    const own: Record<string, string> = {};
    for (const [k, v] of Object.entries(r.own ?? {})) {
      const n = Number(k);
      if (Number.isInteger(n) && n >= 0 && n < total && typeof v === 'string') own[n] = normalizePieceDigest(v);
    }
    const lastUsed = Number.isFinite(r.lastUsed) ? r.lastUsed : 0;
    return { version: 1, id, meta, held: r.held, own, lastUsed };
  } catch {
    return undefined;
  }
}
