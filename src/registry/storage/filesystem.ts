/**
 * The filesystem storage driver. Layout under the root:
 *
 *   blobs/sha256/<hex[0:2]>/<hex>/data                              content-addressed bytes
 *   repositories/<name>/_layers/sha256/<hex>/link                     blobs the repository may read
 *   repositories/<name>/_manifests/revisions/sha256/<hex>/link        manifests (bytes are a blob)
 *   repositories/<name>/_manifests/revisions/sha256/<hex>/mediatype   ... and the type they were pushed with
 *   repositories/<name>/_manifests/tags/<tag>/current/link            tag -> manifest digest
 *   repositories/<name>/_referrers/sha256/<subject hex>/<hex>         descriptor of a manifest with that subject
 *   repositories/<name>/_uploads/<uuid>/data, state                   upload sessions (offset, times)
 *
 * Every file that becomes visible under a real name is written to a temp file in the same directory,
 * fsynced and renamed. A blob reaches blobs/ only by a rename of bytes that were fsynced and whose
 * digest was verified first, so `kill -9` at any moment never leaves a wrong blob under a digest.
 * Upload sessions keep their running SHA-256 in memory; after a restart it is rebuilt from the
 * session's data file (up to the durable offset, which is in `state`).
 * One file over ~500 lines: every operation follows this layout and these crash-safety rules, stated once here.
 */
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { promises as fs, constants as fsc } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Digest } from '../../lib/digest.js';
import { atomicWrite } from '../../lib/fsutil.js';
import { KeyedLock } from '../../lib/keyedlock.js';
import type { Descriptor } from '../../lib/oci.js';
import { regError } from '../errors.js';
import { isSha256, isTag, isUploadId, isValidName } from '../names.js';
import type { AppendOptions, BlobStat, ByteRange, PositionalReader, StorageDriver, StoredManifest, UploadState } from './driver.js';

const isEnoent = (err: unknown) => {
  const c = (err as NodeJS.ErrnoException | undefined)?.code;
  return c === 'ENOENT' || c === 'ENOTDIR';
};

/** Read buffer for blob streams: large reads keep big GETs fast. */
const READ_CHUNK = 1 << 20;

interface RunningHash {
  hash: Hash;
  offset: number;
}

export class FilesystemDriver implements StorageDriver {
  readonly kind = 'filesystem';
  readonly root: string;
  private readonly blobsDir: string;
  private readonly reposDir: string;
  private readonly uploadLock = new KeyedLock();
  /** Running digests of upload sessions, by id. */
  private readonly hashes = new Map<string, RunningHash>();

  constructor(root: string) {
    this.root = path.resolve(root);
    this.blobsDir = path.join(this.root, 'blobs', 'sha256');
    this.reposDir = path.join(this.root, 'repositories');
  }

  async init(): Promise<void> {
    await fs.mkdir(this.blobsDir, { recursive: true });
    await fs.mkdir(this.reposDir, { recursive: true });
  }

  // ---------------------------------------------------------------- paths (only from validated parts)

  private blobDir(d: Digest): string {
    if (!isSha256(d)) throw regError('DIGEST_INVALID', `invalid digest ${d}`);
    const hex = d.slice(7);
    return path.join(this.blobsDir, hex.slice(0, 2), hex);
  }

  blobPath(d: Digest): string {
    return path.join(this.blobDir(d), 'data');
  }

  private repoDir(name: string): string {
    if (!isValidName(name)) throw regError('NAME_INVALID', `invalid repository name ${JSON.stringify(name)}`);
    return path.join(this.reposDir, name);
  }

  private layerLink(name: string, d: Digest): string {
    return path.join(this.repoDir(name), '_layers', 'sha256', this.hex(d), 'link');
  }

  private revisionDir(name: string, d: Digest): string {
    return path.join(this.repoDir(name), '_manifests', 'revisions', 'sha256', this.hex(d));
  }

  private tagDir(name: string, tag: string): string {
    if (!isTag(tag)) throw regError('MANIFEST_INVALID', `invalid tag ${JSON.stringify(tag)}`);
    return path.join(this.repoDir(name), '_manifests', 'tags', tag);
  }

  private referrersDir(name: string, subject: Digest): string {
    return path.join(this.repoDir(name), '_referrers', 'sha256', this.hex(subject));
  }

  private uploadDir(name: string, id: string): string {
    if (!isUploadId(id)) throw regError('BLOB_UPLOAD_UNKNOWN', `invalid upload id ${JSON.stringify(id)}`);
    return path.join(this.repoDir(name), '_uploads', id);
  }

  private hex(d: Digest): string {
    if (!isSha256(d)) throw regError('DIGEST_INVALID', `invalid digest ${d}`);
    return d.slice(7);
  }

  // ---------------------------------------------------------------- blobs

  async statBlob(d: Digest): Promise<BlobStat | undefined> {
    try {
      const st = await fs.stat(this.blobPath(d));
      return st.isFile() ? { digest: d, size: st.size, modifiedMs: st.mtimeMs } : undefined;
    } catch (err) {
      if (isEnoent(err)) return undefined;
      throw err;
    }
  }

  async openBlob(d: Digest, range?: ByteRange): Promise<Readable> {
    let fh;
    try {
      fh = await fs.open(this.blobPath(d), 'r');
    } catch (err) {
      if (isEnoent(err)) throw regError('BLOB_UNKNOWN', undefined, { digest: d });
      throw err;
    }
    const start = range?.start ?? 0;
    const end = range?.end ?? (await fh.stat()).size - 1;
    return new PrefetchReader(fh, start, end);
  }

  async readBlobBytes(d: Digest): Promise<Buffer> {
    try {
      return await fs.readFile(this.blobPath(d));
    } catch (err) {
      if (isEnoent(err)) throw regError('BLOB_UNKNOWN', undefined, { digest: d });
      throw err;
    }
  }

  async putBlobBytes(d: Digest, bytes: Buffer): Promise<void> {
    const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (actual !== d) throw regError('DIGEST_INVALID', `content hashes to ${actual}, not ${d}`, { digest: d });
    if (await this.statBlob(d)) return this.touchBlob(d);
    const dir = this.blobDir(d);
    await fs.mkdir(dir, { recursive: true });
    await atomicWrite(path.join(dir, 'data'), bytes);
    await fsyncDir(dir);
  }

  async touchBlob(d: Digest): Promise<void> {
    const now = new Date();
    try {
      await fs.utimes(this.blobPath(d), now, now);
    } catch (err) {
      if (!isEnoent(err)) throw err;
    }
  }

  async deleteBlob(d: Digest): Promise<boolean> {
    const dir = this.blobDir(d);
    try {
      await fs.unlink(path.join(dir, 'data'));
    } catch (err) {
      if (isEnoent(err)) return false;
      throw err;
    }
    // only if empty: a commit of the same digest may be landing in it right now
    await fs.rmdir(dir).catch(() => undefined);
    return true;
  }

  async *listBlobs(): AsyncIterable<BlobStat> {
    for (const prefix of await readdirOr(this.blobsDir)) {
      if (!/^[a-f0-9]{2}$/.test(prefix)) continue;
      for (const hex of await readdirOr(path.join(this.blobsDir, prefix))) {
        const d = `sha256:${hex}`;
        if (!isSha256(d) || !hex.startsWith(prefix)) continue;
        const st = await this.statBlob(d);
        if (st) yield st;
      }
    }
  }

  // ---------------------------------------------------------------- links

  async linkBlob(name: string, d: Digest): Promise<void> {
    const link = this.layerLink(name, d);
    if (await fileExists(link)) return;
    await fs.mkdir(path.dirname(link), { recursive: true });
    await atomicWrite(link, d);
  }

  async unlinkBlob(name: string, d: Digest): Promise<boolean> {
    const link = this.layerLink(name, d);
    if (!(await fileExists(link))) return false;
    await fs.rm(path.dirname(link), { recursive: true, force: true });
    return true;
  }

  hasBlobLink(name: string, d: Digest): Promise<boolean> {
    return fileExists(this.layerLink(name, d));
  }

  async *listBlobLinks(name: string): AsyncIterable<Digest> {
    for (const hex of await readdirOr(path.join(this.repoDir(name), '_layers', 'sha256'))) {
      const d = `sha256:${hex}`;
      if (isSha256(d)) yield d;
    }
  }

  // ---------------------------------------------------------------- manifests

  async putManifest(name: string, d: Digest, mediaType: string, bytes: Buffer): Promise<void> {
    await this.putBlobBytes(d, bytes);
    const dir = this.revisionDir(name, d);
    await fs.mkdir(dir, { recursive: true });
    // the media type first: the link is what makes the revision exist
    await atomicWrite(path.join(dir, 'mediatype'), mediaType);
    await atomicWrite(path.join(dir, 'link'), d);
  }

  async getManifest(name: string, d: Digest): Promise<StoredManifest | undefined> {
    const dir = this.revisionDir(name, d);
    if (!(await fileExists(path.join(dir, 'link')))) return undefined;
    const [mediaType, bytes] = await Promise.all([fs.readFile(path.join(dir, 'mediatype'), 'utf8').catch(() => ''), this.readBlobBytes(d).catch(() => undefined)]);
    if (!bytes) return undefined;
    return { digest: d, mediaType: mediaType || mediaTypeOfBytes(bytes), bytes };
  }

  hasManifest(name: string, d: Digest): Promise<boolean> {
    return fileExists(path.join(this.revisionDir(name, d), 'link'));
  }

  async deleteManifest(name: string, d: Digest): Promise<boolean> {
    const dir = this.revisionDir(name, d);
    if (!(await fileExists(path.join(dir, 'link')))) return false;
    await fs.rm(dir, { recursive: true, force: true });
    return true;
  }

  async *listManifests(name: string): AsyncIterable<Digest> {
    for (const hex of await readdirOr(path.join(this.repoDir(name), '_manifests', 'revisions', 'sha256'))) {
      const d = `sha256:${hex}`;
      if (isSha256(d) && (await fileExists(path.join(this.revisionDir(name, d), 'link')))) yield d;
    }
  }

  // ---------------------------------------------------------------- tags

  async getTag(name: string, tag: string): Promise<Digest | undefined> {
    try {
      const d = (await fs.readFile(path.join(this.tagDir(name, tag), 'current', 'link'), 'utf8')).trim();
      return isSha256(d) ? d : undefined;
    } catch (err) {
      if (isEnoent(err)) return undefined;
      throw err;
    }
  }

  async setTag(name: string, tag: string, d: Digest): Promise<void> {
    const dir = path.join(this.tagDir(name, tag), 'current');
    await fs.mkdir(dir, { recursive: true });
    await atomicWrite(path.join(dir, 'link'), d);
  }

  async deleteTag(name: string, tag: string): Promise<boolean> {
    const dir = this.tagDir(name, tag);
    if (!(await fileExists(path.join(dir, 'current', 'link')))) return false;
    await fs.rm(dir, { recursive: true, force: true });
    return true;
  }

  async listTags(name: string): Promise<string[] | undefined> {
    const dir = path.join(this.repoDir(name), '_manifests');
    let entries: string[];
    try {
      entries = await fs.readdir(path.join(dir, 'tags'));
    } catch (err) {
      if (!isEnoent(err)) throw err;
      return (await dirExists(dir)) ? [] : undefined;
    }
    return entries.filter(isTag).sort(compareStrings);
  }

  // ---------------------------------------------------------------- referrers

  async addReferrer(name: string, subject: Digest, desc: Descriptor): Promise<void> {
    const dir = this.referrersDir(name, subject);
    await fs.mkdir(dir, { recursive: true });
    await atomicWrite(path.join(dir, this.hex(desc.digest)), JSON.stringify(desc));
  }

  async removeReferrer(name: string, subject: Digest, d: Digest): Promise<void> {
    await fs.rm(path.join(this.referrersDir(name, subject), this.hex(d)), { force: true });
  }

  async listReferrers(name: string, subject: Digest): Promise<Descriptor[]> {
    const dir = this.referrersDir(name, subject);
    const out: Descriptor[] = [];
    for (const hex of (await readdirOr(dir)).sort()) {
      if (!isSha256(`sha256:${hex}`)) continue;
      try {
        out.push(JSON.parse(await fs.readFile(path.join(dir, hex), 'utf8')) as Descriptor);
      } catch (err) {
        if (!isEnoent(err)) throw err;
      }
    }
    return out;
  }

  // ---------------------------------------------------------------- repositories

  repositoryExists(name: string): Promise<boolean> {
    return dirExists(path.join(this.repoDir(name), '_manifests'));
  }

  async listRepositories(): Promise<string[]> {
    const out: string[] = [];
    await this.walkRepos(this.reposDir, '', async (name, meta) => {
      if (meta.includes('_manifests')) out.push(name);
    });
    return out.sort(compareStrings);
  }

  /** Visit every directory under repositories/ that has metadata (`_manifests`, `_layers`, `_uploads`...). */
  private async walkRepos(dir: string, prefix: string, visit: (name: string, meta: string[]) => Promise<void>): Promise<void> {
    const entries = await fs.readdir(dir, { withFileTypes: true }).catch((err: unknown) => {
      if (isEnoent(err)) return [];
      throw err;
    });
    const meta = entries.filter((e) => e.isDirectory() && e.name.startsWith('_')).map((e) => e.name);
    if (prefix && meta.length) await visit(prefix, meta);
    for (const e of entries) {
      if (!e.isDirectory() || e.name.startsWith('_') || e.name.startsWith('.')) continue;
      const name = prefix ? `${prefix}/${e.name}` : e.name;
      if (!isValidName(name)) continue;
      await this.walkRepos(path.join(dir, e.name), name, visit);
    }
  }

  // ---------------------------------------------------------------- uploads

  async createUpload(name: string): Promise<UploadState> {
    const id = randomUUID();
    const dir = this.uploadDir(name, id);
    await fs.mkdir(dir, { recursive: true });
    await (await fs.open(path.join(dir, 'data'), 'w')).close();
    const now = Date.now();
    const state: UploadState = { id, repository: name, offset: 0, startedMs: now, updatedMs: now };
    await this.writeState(dir, state);
    this.hashes.set(id, { hash: createHash('sha256'), offset: 0 });
    return state;
  }

  async getUpload(name: string, id: string): Promise<UploadState | undefined> {
    if (!isUploadId(id)) return undefined;
    return this.readState(name, id);
  }

  appendUpload(name: string, id: string, body: Readable, opts: AppendOptions = {}): Promise<UploadState> {
    return this.uploadLock.run(id, async () => {
      const state = await this.mustState(name, id);
      if (opts.expectedOffset !== undefined && opts.expectedOffset !== state.offset) {
        body.resume();
        throw regError('BLOB_UPLOAD_RANGE', `chunk starts at ${opts.expectedOffset}, the upload is at ${state.offset}`);
      }
      const dir = this.uploadDir(name, id);
      const running = await this.runningHash(dir, id, state.offset);
      const fh = await fs.open(path.join(dir, 'data'), 'r+');
      let written = 0;
      try {
        await fh.truncate(state.offset); // drop what a failed append left past the durable offset
        let pos = state.offset;
        const writeAll = async (bufs: Buffer[]) => {
          for (const b of bufs) {
            running.hash.update(b);
            written += b.length;
          }
          let off = 0;
          const total = bufs.reduce((n, b) => n + b.length, 0);
          while (off < total) {
            const rest = off === 0 ? bufs : [Buffer.concat(bufs).subarray(off)];
            const { bytesWritten } = await fh.writev(rest, pos);
            if (bytesWritten <= 0) throw new Error('short write to upload data');
            off += bytesWritten;
            pos += bytesWritten;
          }
          // only now: a reader told of these bytes finds them in the file (a mirror's clients read it as it grows)
          opts.onBytes?.(total);
        };
        const sink = new Writable({
          highWaterMark: READ_CHUNK,
          write(chunk: Buffer, _enc, cb) {
            writeAll([chunk]).then(() => cb(), cb);
          },
          writev(chunks, cb) {
            writeAll(chunks.map((c) => c.chunk as Buffer)).then(() => cb(), cb);
          },
          final(cb) {
            fh.sync().then(() => cb(), cb);
          },
        });
        await pipeline(body, sink);
      } catch (err) {
        this.hashes.delete(id); // the running hash saw bytes that are not durable: rebuild it next time
        throw err;
      } finally {
        await fh.close();
      }
      if (opts.expectedLength !== undefined && written !== opts.expectedLength) {
        this.hashes.delete(id);
        throw regError('SIZE_INVALID', `the body had ${written} bytes, ${opts.expectedLength} were announced`);
      }
      running.offset = state.offset + written;
      const next: UploadState = { ...state, offset: running.offset, updatedMs: Date.now() };
      await this.writeState(dir, next);
      return next;
    });
  }

  commitUpload(name: string, id: string, d: Digest): Promise<BlobStat> {
    return this.uploadLock.run(id, async () => {
      const state = await this.mustState(name, id);
      const dir = this.uploadDir(name, id);
      const running = await this.runningHash(dir, id, state.offset);
      const actual = `sha256:${running.hash.copy().digest('hex')}` as Digest;
      if (actual !== d) throw regError('DIGEST_INVALID', `the uploaded content hashes to ${actual}, not ${d}`, { digest: d });
      const data = path.join(dir, 'data');
      // exactly the verified bytes: cut whatever a failed append left past the durable offset
      const fh = await fs.open(data, 'r+');
      try {
        await fh.truncate(state.offset);
        await fh.sync();
        const st = await fh.stat();
        if (st.size !== state.offset) throw regError('BLOB_UPLOAD_INVALID', `upload data is ${st.size} bytes, expected ${state.offset}`);
      } finally {
        await fh.close();
      }
      if (await this.statBlob(d)) {
        await this.touchBlob(d);
      } else {
        const bdir = this.blobDir(d);
        await fs.mkdir(bdir, { recursive: true });
        await fs.rename(data, path.join(bdir, 'data'));
        await fsyncDir(bdir);
      }
      await fs.rm(dir, { recursive: true, force: true });
      this.hashes.delete(id);
      await this.linkBlob(name, d);
      const st = await this.statBlob(d);
      if (!st) throw regError('BLOB_UNKNOWN', `blob ${d} vanished while committing`, { digest: d });
      return st;
    });
  }

  deleteUpload(name: string, id: string): Promise<boolean> {
    if (!isUploadId(id)) return Promise.resolve(false);
    return this.uploadLock.run(id, async () => {
      const dir = this.uploadDir(name, id);
      this.hashes.delete(id);
      if (!(await dirExists(dir))) return false;
      await fs.rm(dir, { recursive: true, force: true });
      return true;
    });
  }

  /** The session's data file, opened for reading: the descriptor survives the commit's rename and removal. */
  async openUploadReader(name: string, id: string): Promise<PositionalReader> {
    let fh: FileHandle;
    try {
      fh = await fs.open(path.join(this.uploadDir(name, id), 'data'), 'r');
    } catch (err) {
      if (isEnoent(err)) throw regError('BLOB_UPLOAD_UNKNOWN', `upload unknown: ${id}`, { id });
      throw err;
    }
    return {
      read: async (buf, position) => (await fh.read(buf, 0, buf.length, position)).bytesRead,
      close: () => fh.close(),
    };
  }

  async *listUploads(): AsyncIterable<UploadState> {
    const found: { name: string; ids: string[] }[] = [];
    await this.walkRepos(this.reposDir, '', async (name, meta) => {
      if (meta.includes('_uploads')) found.push({ name, ids: (await readdirOr(path.join(this.repoDir(name), '_uploads'))).filter(isUploadId) });
    });
    for (const { name, ids } of found) {
      for (const id of ids) {
        const st = await this.readState(name, id);
        if (st) {
          yield st;
          continue;
        }
        // a session whose state never got written (crash right at creation): age from the directory
        const ds = await fs.stat(this.uploadDir(name, id)).catch(() => undefined);
        if (ds) yield { id, repository: name, offset: 0, startedMs: ds.mtimeMs, updatedMs: ds.mtimeMs };
      }
    }
  }

  private async mustState(name: string, id: string): Promise<UploadState> {
    const st = await this.getUpload(name, id);
    if (!st) throw regError('BLOB_UPLOAD_UNKNOWN', undefined, { id });
    return st;
  }

  private async readState(name: string, id: string): Promise<UploadState | undefined> {
    try {
      const raw = JSON.parse(await fs.readFile(path.join(this.uploadDir(name, id), 'state'), 'utf8')) as Partial<UploadState>;
      if (typeof raw.offset !== 'number' || raw.offset < 0) return undefined;
      return { id, repository: name, offset: raw.offset, startedMs: Number(raw.startedMs) || 0, updatedMs: Number(raw.updatedMs) || 0 };
    } catch (err) {
      if (isEnoent(err) || err instanceof SyntaxError) return undefined;
      throw err;
    }
  }

  private writeState(dir: string, st: UploadState): Promise<void> {
    return atomicWrite(path.join(dir, 'state'), JSON.stringify({ offset: st.offset, startedMs: st.startedMs, updatedMs: st.updatedMs }));
  }

  /** The session's running hash at `offset`; rebuilt from the data file after a restart or a failed append. */
  private async runningHash(dir: string, id: string, offset: number): Promise<RunningHash> {
    const have = this.hashes.get(id);
    if (have && have.offset === offset) return have;
    const hash = createHash('sha256');
    if (offset > 0) {
      const fh = await fs.open(path.join(dir, 'data'), 'r');
      try {
        const st = await fh.stat();
        if (st.size < offset) throw regError('BLOB_UPLOAD_INVALID', `upload data is ${st.size} bytes, its state says ${offset}`);
        for await (const chunk of fh.createReadStream({ start: 0, end: offset - 1, highWaterMark: READ_CHUNK, autoClose: false })) hash.update(chunk as Buffer);
      } finally {
        await fh.close();
      }
    }
    const rh = { hash, offset };
    this.hashes.set(id, rh);
    return rh;
  }
}

// ------------------------------------------------------------------ helpers

/**
 * Idle READ_CHUNK buffers of blob streams, taken back from consumers that call `recycle` (the
 * registry's blob GET once the socket has the bytes). Reusing them, instead of a fresh 1 MiB buffer
 * per read, saves the page faults of new memory and, above all, the major GCs that V8 runs under
 * external-memory pressure: 100 fresh buffers per 100 MB GET cost more CPU than the copies did.
 */
const chunkPool: Buffer[] = [];
/** At most this many idle buffers are kept (16 MiB); more in use at once are allocated and left to GC. */
const CHUNK_POOL_MAX = 16;
/** Reads shorter than this (small ranges, small blobs) get a buffer of their own size instead. */
const SMALL_READ = 64 << 10;
/** Backing stores handed out by a PrefetchReader and not yet taken back: a chunk is recycled once at most. */
const lentChunks = new WeakSet<ArrayBuffer>();

function takeChunk(): Buffer {
  const b = chunkPool.pop() ?? Buffer.allocUnsafeSlow(READ_CHUNK);
  lentChunks.add(b.buffer as ArrayBuffer);
  return b;
}

/**
 * Reads a byte range of a file with the next read already in flight while the previous chunk is
 * being written to the socket. Faster for large blob GETs than fs.ReadStream, which reads only when
 * asked. A consumer that is done with a chunk (the socket wrote it) may hand it back with
 * `recycle(chunk)` for reuse by later reads; one that does not simply leaves it to GC.
 */
class PrefetchReader extends Readable {
  private pos: number;
  private next: Promise<Buffer | null>;

  constructor(
    private readonly fh: FileHandle,
    start: number,
    private readonly end: number,
  ) {
    super({ highWaterMark: READ_CHUNK });
    this.pos = start;
    this.next = this.readAhead();
  }

  /**
   * Take back a chunk this stream produced, once nothing refers to its bytes any more: only for the
   * stream's sole consumer (a later read overwrites the bytes).
   */
  recycle(chunk: Buffer): void {
    const ab = chunk.buffer as ArrayBuffer;
    // only whole pool buffers (a short last chunk is a view at offset 0), each once
    if (chunk.byteOffset !== 0 || ab.byteLength !== READ_CHUNK || !lentChunks.delete(ab)) return;
    if (chunkPool.length < CHUNK_POOL_MAX) chunkPool.push(Buffer.from(ab, 0, READ_CHUNK));
  }

  private readAhead(): Promise<Buffer | null> {
    if (this.pos > this.end) return Promise.resolve(null);
    const n = Math.min(READ_CHUNK, this.end - this.pos + 1);
    const at = this.pos;
    this.pos += n;
    const p = this.readFull(at, n);
    p.catch(() => undefined); // handled in _read; never an unhandled rejection if the stream is dropped
    return p;
  }

  private async readFull(at: number, n: number): Promise<Buffer> {
    const buf = n >= SMALL_READ ? takeChunk() : Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const { bytesRead } = await this.fh.read(buf, got, n - got, at + got);
      if (bytesRead === 0) throw new Error('blob ended before its size (truncated on disk?)');
      got += bytesRead;
    }
    return n === READ_CHUNK ? buf : buf.subarray(0, n);
  }

  override _read(): void {
    this.next.then(
      (buf) => {
        if (buf === null) {
          this.push(null);
          return;
        }
        this.next = this.readAhead();
        this.push(buf);
      },
      (err: Error) => this.destroy(err),
    );
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.next.catch(() => undefined).finally(() => this.fh.close().then(() => cb(err), () => cb(err)));
  }
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function readdirOr(dir: string): Promise<string[]> {
  try {
    return await fs.readdir(dir);
  } catch (err) {
    if (isEnoent(err)) return [];
    throw err;
  }
}

async function fileExists(p: string): Promise<boolean> {
  try {
    await fs.access(p, fsc.F_OK);
    return true;
  } catch {
    return false;
  }
}

async function dirExists(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** Make a rename into `dir` durable. */
async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** The media type a manifest names itself (for revisions stored without one). */
export function mediaTypeOfBytes(bytes: Buffer): string {
  try {
    const m = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown; manifests?: unknown };
    if (typeof m.mediaType === 'string') return m.mediaType;
    return Array.isArray(m.manifests) ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.oci.image.manifest.v1+json';
  } catch {
    return 'application/octet-stream';
  }
}
