import { EventEmitter } from 'node:events';
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Hasher } from '../../lib/digest.js';
import { SampanError, conflict, invalid, notFound, errorMessage } from '../../lib/errors.js';
import { atomicWrite, atomicWriteJson } from '../../lib/fsutil.js';
import type { Logger } from '../../lib/log.js';
import { pieceCount, type PeerTaskView, type TaskId, type TaskMeta } from '../protocol.js';
import { PieceSet } from './bitmap.js';
import type { DataFile } from './datafile.js';
import { checkMeta, normalizePieceDigest, pieceLength, type TaskRecord } from './meta.js';
import { TaskStream } from './stream.js';

export const META_FILE = 'meta.json';
export const DATA_FILE = 'data';
export const COMPLETE_FILE = 'complete';

/** meta.json is rewritten at most this often while pieces arrive, or after this many pieces, whichever first. */
const FLUSH_MS = 250;
const FLUSH_PIECES = 32;
/** Chunk size of the whole-blob hash in finish(). */
const HASH_CHUNK = 4 * 1024 * 1024;
/** Bytes of the newest pieces kept in memory: fresh pieces are the ones other peers ask for, several times each. */
const RECENT_BYTES = 16 * 1024 * 1024;

export interface StoredTaskEvents {
  /** Piece n is held (written and verified). */
  piece: [n: number];
  /** The whole blob matched its digest; the task is served as complete from now on. */
  complete: [];
  /** finish() found the blob does not match its digest: every piece was dropped (and the piece digests forgotten). */
  failed: [err: Error];
  /** Held pieces whose self-computed digest disagreed with digests learnt later (setMeta): fetch them again. */
  dropped: [pieces: number[]];
  /** Evicted, removed or the store closed: all I/O on the task fails from now on. */
  removed: [reason: string];
}

/** @internal what the store hands a task */
export interface TaskInit {
  id: TaskId;
  dir: string;
  meta: TaskMeta;
  data: DataFile;
  log: Logger;
  held?: PieceSet;
  own?: Map<number, string>;
  complete?: boolean;
  lastUsed?: number;
  /** meta.json is out of date (recovery changed the held set): the next flush() writes it. */
  dirty?: boolean;
}

/**
 * One blob in the piece store. Pieces land in any order and concurrently; a piece counts as held only once its
 * bytes are on disk and matched a digest, so readers never see a torn or unverified-by-anything piece.
 */
export class StoredTask extends EventEmitter<StoredTaskEvents> {
  readonly id: TaskId;
  readonly dir: string;
  meta: TaskMeta;
  complete: boolean;
  /** For the LRU (ms since epoch). */
  lastUsed: number;
  /** Last piece write (or download start): a task written recently is never evicted. */
  lastWrite = 0;

  /** @internal */
  readonly data: DataFile;
  private readonly log: Logger;
  private readonly heldSet: PieceSet;
  /** Digests computed here for held pieces whose meta digest is not known yet; checked once setMeta brings it. */
  private readonly own: Map<number, string>;
  private readonly writing = new Map<number, Promise<boolean>>();
  private readers = 0;
  /** Bumped whenever held pieces are dropped: a read that overlapped a drop may have seen a rewrite. */
  private gen = 0;
  private readonly recent = new Map<number, Buffer>();
  private recentBytes = 0;
  private finishing?: Promise<boolean>;
  private gone?: SampanError;

  private dirty = false;
  private dirtyPieces = 0;
  private flushTimer?: NodeJS.Timeout;
  private flushChain: Promise<void> = Promise.resolve();

  /** @internal tasks are made by PieceStore */
  constructor(o: TaskInit) {
    super();
    this.setMaxListeners(0); // every stream listens
    this.id = o.id;
    this.dir = o.dir;
    this.meta = o.meta;
    this.data = o.data;
    this.log = o.log;
    this.heldSet = o.held ?? new PieceSet(pieceCount(o.meta.size, o.meta.pieceSize));
    this.own = o.own ?? new Map();
    this.complete = o.complete ?? false;
    this.lastUsed = o.lastUsed ?? Date.now();
    this.dirty = o.dirty ?? false;
  }

  /** Number of pieces of the blob. */
  get total(): number {
    return this.heldSet.size;
  }

  has(n: number): boolean {
    return this.heldSet.has(n);
  }

  /** Held pieces, ascending. */
  held(): number[] {
    return this.heldSet.list();
  }

  count(): number {
    return this.heldSet.count();
  }

  /** The digest (bare hex) of a held piece: from the meta, or computed here; what to send as X-Piece-Digest. */
  pieceDigest(n: number): string | undefined {
    if (!this.heldSet.has(n)) return undefined;
    return this.meta.pieceDigests[n] ?? this.own.get(n);
  }

  view(): PeerTaskView {
    return { meta: this.meta, pieces: this.held(), complete: this.complete };
  }

  touch(): void {
    this.lastUsed = Date.now();
  }

  /**
   * Adopts a newer view of the meta: size and piece size are fixed, known digests never change, more may come.
   * Held pieces accepted on a digest computed here that disagrees with a newly learnt one are dropped ('dropped').
   */
  setMeta(meta: TaskMeta): void {
    this.alive();
    const next = checkMeta(this.id, meta);
    if (next.size !== this.meta.size || next.pieceSize !== this.meta.pieceSize) {
      throw conflict(
        `${this.id}: meta ${next.size}/${next.pieceSize} differs from ${this.meta.size}/${this.meta.pieceSize}`,
      );
    }
    const cur = this.meta.pieceDigests;
    const want = next.pieceDigests;
    for (let i = 0; i < Math.min(cur.length, want.length); i++) {
      if (cur[i] !== want[i]) throw conflict(`${this.id}: digest of piece ${i} changed`);
    }
    if (want.length <= cur.length) return;
    const dropped: number[] = [];
    for (let i = cur.length; i < want.length; i++) {
      const mine = this.own.get(i);
      if (mine === undefined) continue;
      this.own.delete(i);
      if (mine !== want[i]) {
        this.heldSet.delete(i);
        dropped.push(i);
      }
    }
    this.meta = { ...this.meta, pieceDigests: want };
    this.markDirty(0);
    if (dropped.length > 0) {
      this.gen++;
      this.forgetRecent();
      this.log.warn({ task: this.id, pieces: dropped }, 'p2p store: held pieces disagree with their digests, dropped');
      this.emit('dropped', dropped);
    }
  }

  /**
   * Writes piece n: its length must be right and its sha256 must equal meta.pieceDigests[n] when known, else
   * `digest` (what the parent claimed) when given; with neither, the computed digest is kept for a later check.
   * Idempotent (a held piece is not rewritten; a concurrent write of the same piece is waited for). Returns
   * false, writing nothing, when the data is refused. The last piece in starts finish().
   */
  async writePiece(n: number, data: Buffer, digest?: string): Promise<boolean> {
    this.alive();
    if (!Number.isInteger(n) || n < 0 || n >= this.total) throw invalid(`${this.id}: no piece ${n}`);
    for (;;) {
      if (this.heldSet.has(n)) return true;
      const other = this.writing.get(n);
      if (!other) break;
      // someone else is writing it (another parent): theirs counts if it verified, else try ours
      if (await other.catch(() => false)) return true;
      this.alive();
      if (this.writing.get(n) === other) break;
    }
    const p = this.write(n, data, digest);
    this.writing.set(n, p);
    try {
      return await p;
    } finally {
      if (this.writing.get(n) === p) this.writing.delete(n);
    }
  }

  private async write(n: number, data: Buffer, claimed?: string): Promise<boolean> {
    const len = pieceLength(this.meta, n);
    if (data.length !== len) {
      this.log.debug({ task: this.id, piece: n, got: data.length, want: len }, 'p2p store: piece length refused');
      return false;
    }
    const hex = createHash('sha256').update(data).digest('hex');
    let expect = this.meta.pieceDigests[n];
    if (expect === undefined && claimed !== undefined) {
      try {
        expect = normalizePieceDigest(claimed);
      } catch {
        return false;
      }
    }
    if (expect !== undefined && expect !== hex) {
      this.log.debug({ task: this.id, piece: n }, 'p2p store: piece digest mismatch');
      return false;
    }
    this.lastWrite = Date.now();
    await this.data.write(data, n * this.meta.pieceSize);
    this.alive();
    // the digest may have been learnt while the bytes went down
    const known = this.meta.pieceDigests[n];
    if (known !== undefined && known !== hex) return false;
    this.heldSet.add(n);
    this.remember(n, data);
    if (known === undefined) this.own.set(n, hex);
    this.lastWrite = this.lastUsed = Date.now();
    this.markDirty(1);
    this.emit('piece', n);
    if (this.heldSet.full() && !this.complete) {
      this.finish().catch((err) =>
        this.log.warn({ task: this.id, err: errorMessage(err) }, 'p2p store: finish failed'),
      );
    }
    return true;
  }

  /** The bytes of a held piece. */
  async readPiece(n: number): Promise<Buffer> {
    this.alive();
    if (!this.heldSet.has(n)) throw notFound(`${this.id}: piece ${n} not held`);
    this.touch();
    this.readers++;
    try {
      return await this.readRange(n * this.meta.pieceSize, pieceLength(this.meta, n));
    } finally {
      this.readers--;
    }
  }

  /** @internal bytes of held pieces; fails if pieces were dropped meanwhile (they may be mid-rewrite). */
  async readRange(position: number, length: number): Promise<Buffer> {
    this.alive();
    // a range inside one recent piece (a piece for a peer, or what a stream reads as pieces arrive): no disk, no copy
    const n = Math.floor(position / this.meta.pieceSize);
    const hit = this.recent.get(n);
    const off = position - n * this.meta.pieceSize;
    if (hit && off + length <= hit.length) return hit.subarray(off, off + length);
    const gen = this.gen;
    const buf = await this.data.read(position, length);
    this.alive();
    if (gen !== this.gen) throw conflict(`${this.id}: pieces dropped during a read`);
    return buf;
  }

  /**
   * Verifies the whole blob against the task id once every piece is in. On success the data is synced, the
   * meta gets every piece digest, the `complete` marker is written and 'complete' fires. On a mismatch every
   * piece is dropped and the piece digests forgotten (they were consistent with the pieces, so it is they that
   * lie), and 'failed' fires. False without an event while pieces are missing. Concurrent calls share one run.
   */
  finish(): Promise<boolean> {
    if (this.complete) return Promise.resolve(true);
    this.finishing ??= this.verify().finally(() => (this.finishing = undefined));
    return this.finishing;
  }

  private async verify(): Promise<boolean> {
    this.alive();
    if (!this.heldSet.full()) return false; // not all in (yet, or again after a failure): nothing to verify
    const gen = this.gen;
    const h = new Hasher();
    this.readers++;
    try {
      await this.data.use(async (fh) => {
        const buf = Buffer.allocUnsafe(Math.min(HASH_CHUNK, Math.max(1, this.meta.size)));
        for (let pos = 0; pos < this.meta.size; ) {
          const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, this.meta.size - pos), pos);
          if (bytesRead === 0) throw new SampanError('INTERNAL', `${this.id}: data file is short`);
          h.update(buf.subarray(0, bytesRead));
          pos += bytesRead;
        }
      });
    } finally {
      this.readers--;
    }
    this.alive();
    // setMeta dropped pieces meanwhile: not a blob failure, they come again and finish runs again
    if (gen !== this.gen || !this.heldSet.full()) return false;
    const got = h.digest();
    if (got !== this.id) {
      const err = conflict(`${this.id}: the assembled blob is ${got}`);
      this.heldSet.clear();
      this.own.clear();
      this.meta = { ...this.meta, pieceDigests: [] };
      this.gen++;
      this.forgetRecent();
      this.markDirty(0);
      await this.flush();
      this.log.warn({ task: this.id, got }, 'p2p store: blob digest mismatch, all pieces dropped');
      this.emit('failed', err);
      return false;
    }
    await this.data.sync();
    this.meta = {
      ...this.meta,
      pieceDigests: Array.from({ length: this.total }, (_, i) => this.meta.pieceDigests[i] ?? this.own.get(i)!),
    };
    this.own.clear();
    this.markDirty(0);
    await this.flush();
    // the marker is what a restart trusts without rehashing: written only after data and meta are durable
    const marker = JSON.stringify({ id: this.id, at: new Date().toISOString() });
    await atomicWrite(path.join(this.dir, COMPLETE_FILE), marker);
    this.alive();
    this.complete = true;
    // a complete blob may sit in the store for days: its pieces come from the page cache from now on
    this.forgetRecent();
    this.log.debug({ task: this.id, size: this.meta.size }, 'p2p store: blob complete');
    this.emit('complete');
    return true;
  }

  /**
   * Bytes [start, end) in order, each piece as soon as it is held. A stream of the whole blob gives its last
   * piece only once the blob is complete, so reading one to its end means the digest matched.
   * Errors when the task fails, drops a piece it already gave, or is removed.
   */
  stream(start = 0, end = this.meta.size): Readable {
    this.alive();
    const ok = Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0 && start <= end;
    if (!ok || end > this.meta.size) {
      throw invalid(`${this.id}: bad range [${start}, ${end}) of ${this.meta.size} bytes`);
    }
    this.touch();
    return new TaskStream(this, start, end);
  }

  /** @internal streams count as readers while open (even while waiting): the LRU keeps such tasks */
  attachReader(): void {
    this.readers++;
  }

  /** @internal */
  detachReader(): void {
    this.readers--;
  }

  /** @internal whether eviction must leave the task alone */
  isActive(now: number, writeGraceMs: number): boolean {
    return (
      this.readers > 0 ||
      this.writing.size > 0 ||
      this.finishing !== undefined ||
      this.data.busy() ||
      now - this.lastWrite < writeGraceMs
    );
  }

  /** @internal the error every operation on a removed task throws, or undefined */
  removedError(): SampanError | undefined {
    return this.gone;
  }

  /** Writes meta.json now if anything changed since the last write. */
  flush(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (!this.dirty) return this.flushChain;
    this.dirty = false;
    this.dirtyPieces = 0;
    // the record is taken when the write runs, so queued flushes coalesce into the newest state
    this.flushChain = this.flushChain
      .then(() => atomicWriteJson(path.join(this.dir, META_FILE), this.record()))
      .catch((err) => {
        this.dirty = true;
        this.log.warn({ task: this.id, err: errorMessage(err) }, 'p2p store: writing meta.json failed');
      });
    return this.flushChain;
  }

  /** @internal ends the task: streams error, in-flight I/O drains, the file closes; `keep` flushes meta.json last */
  async detach(reason: string, keep: boolean): Promise<void> {
    if (this.gone) return;
    this.gone = new SampanError('NOT_FOUND', `task ${this.id} ${reason}`);
    this.forgetRecent();
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    this.emit('removed', reason);
    await this.data.close();
    if (keep) {
      this.dirty = true;
      await this.flush();
    } else {
      await this.flushChain;
    }
  }

  private record(): TaskRecord {
    const own: Record<string, string> = {};
    for (const [n, d] of this.own) own[n] = d;
    return { version: 1, id: this.id, meta: this.meta, held: this.heldSet.toBase64(), own, lastUsed: this.lastUsed };
  }

  private remember(n: number, data: Buffer): void {
    if (data.length > RECENT_BYTES / 4) return;
    this.recent.set(n, data);
    this.recentBytes += data.length;
    for (const [k, b] of this.recent) {
      if (this.recentBytes <= RECENT_BYTES) break;
      this.recent.delete(k);
      this.recentBytes -= b.length;
    }
  }

  private forgetRecent(): void {
    this.recent.clear();
    this.recentBytes = 0;
  }

  private markDirty(pieces: number): void {
    if (this.gone) return;
    this.dirty = true;
    this.dirtyPieces += pieces;
    if (this.dirtyPieces >= FLUSH_PIECES) {
      void this.flush();
    } else if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => void this.flush(), FLUSH_MS);
      this.flushTimer.unref();
    }
  }

  private alive(): void {
    if (this.gone) throw this.gone;
  }
}
