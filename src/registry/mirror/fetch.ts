/**
 * Mirror mode's blob fetches: the first pull of a blob streams it from the upstream into an upload
 * session of the local store (verified by digest when it ends, then made the blob and linked into
 * the repository), and every client asking for that blob meanwhile reads the session's bytes as they
 * land, so the client gets the blob while it is being fetched and concurrent requests share one
 * upstream fetch. A slow client does not slow the fetch (it reads from disk at its own pace), and a
 * client that goes away does not stop it: the cache is filled either way.
 *
 * The last byte of a blob is handed out only once the whole blob is verified: a client never gets a
 * complete wrong blob, it sees a truncated response when the upstream sent bad bytes.
 */
import { Readable } from 'node:stream';
import type { Digest } from '../../lib/digest.js';
import type { Logger } from '../../lib/log.js';
import { isKind, regError } from '../errors.js';
import type { PositionalReader, StorageDriver } from '../storage/driver.js';

const CHUNK = 256 << 10;
/** A finished fetch is remembered this long: a request that looked before it was stored then joins it, not a new one. */
const RECENT_MS = 60_000;

/** One blob being fetched from the upstream into the local store. */
export class BlobFetch {
  /** Bytes in the upload file so far. */
  received = 0;
  state: 'starting' | 'running' | 'done' | 'failed' = 'starting';
  uploadId?: string;
  error?: Error;
  /** Repositories (besides the fetching one) to link the blob into once it is stored. */
  private readonly others = new Set<string>();
  private version = 0;
  private waiters: Array<() => void> = [];
  /** Resolves when the fetch has ended (done or failed); never rejects. */
  readonly ended: Promise<void>;
  private end!: () => void;

  constructor(
    readonly repository: string,
    readonly digest: Digest,
    readonly size: number,
    private readonly storage: StorageDriver,
    private readonly log: Logger,
  ) {
    this.ended = new Promise<void>((r) => (this.end = r));
  }

  /** Something changed (bytes, state): wake the readers. */
  changed(): void {
    this.version++;
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  get stamp(): number {
    return this.version;
  }

  /** Resolves at the next change after `stamp` (at once when one happened already). */
  wait(stamp: number): Promise<void> {
    if (this.version !== stamp) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }

  /** The blob is readable in `repository` too once it is stored. */
  addRepository(repository: string): void {
    if (repository === this.repository) return;
    if (this.state === 'done') void this.link(repository);
    else this.others.add(repository);
  }

  finish(ok: boolean, err?: Error): void {
    this.state = ok ? 'done' : 'failed';
    this.error = err;
    if (ok) for (const r of this.others) void this.link(r);
    this.others.clear();
    this.changed();
    this.end();
  }

  private async link(repository: string): Promise<void> {
    await this.storage.linkBlob(repository, this.digest).catch((err: unknown) => this.log.warn({ err, repository, digest: this.digest }, 'mirror: linking a fetched blob failed'));
  }

  failure(): Error {
    return this.error ?? new Error(`upstream fetch of ${this.digest} failed`);
  }
}

export class BlobFetcher {
  private readonly inflight = new Map<string, BlobFetch>();
  private readonly recent = new Map<string, BlobFetch>();

  constructor(
    private readonly storage: StorageDriver,
    /** Open the upstream's body of a blob (200, the whole blob). */
    private readonly open: (repository: string, digest: Digest) => Promise<Readable>,
    private readonly log: Logger,
  ) {}

  /** The fetch of `digest` in flight (or just done), if any. */
  get(digest: Digest): BlobFetch | undefined {
    return this.inflight.get(digest) ?? this.recent.get(digest);
  }

  get active(): number {
    return this.inflight.size;
  }

  /** Join the fetch of `digest` in flight, or start one into `repository`. Synchronous: two callers never start two. */
  join(repository: string, digest: Digest, size: number): BlobFetch {
    let f = this.get(digest);
    if (f) {
      f.addRepository(repository);
      return f;
    }
    f = new BlobFetch(repository, digest, size, this.storage, this.log);
    this.inflight.set(digest, f);
    void this.run(f);
    return f;
  }

  private async run(f: BlobFetch): Promise<void> {
    const t0 = Date.now();
    try {
      const body = await this.open(f.repository, f.digest);
      let up;
      try {
        up = await this.storage.createUpload(f.repository);
      } catch (err) {
        body.destroy();
        throw err;
      }
      f.uploadId = up.id;
      f.state = 'running';
      f.changed();
      try {
        await this.storage.appendUpload(f.repository, up.id, body, {
          expectedLength: f.size,
          onBytes: (n) => {
            f.received += n;
            f.changed();
          },
        });
        await this.storage.commitUpload(f.repository, up.id, f.digest); // verifies the digest; links the repository
      } catch (err) {
        body.destroy();
        await this.storage.deleteUpload(f.repository, up.id).catch(() => undefined);
        throw err;
      }
      this.log.info({ repository: f.repository, digest: f.digest, size: f.size, ms: Date.now() - t0 }, 'mirror: blob fetched from the upstream');
      f.finish(true);
    } catch (err) {
      this.log.warn({ err, repository: f.repository, digest: f.digest, received: f.received }, 'mirror: blob fetch from the upstream failed');
      f.finish(false, err instanceof Error ? err : new Error(String(err)));
    } finally {
      this.inflight.delete(f.digest);
    }
    if (f.state === 'done') {
      this.recent.set(f.digest, f);
      setTimeout(() => this.recent.get(f.digest) === f && this.recent.delete(f.digest), RECENT_MS).unref();
    }
  }
}

/**
 * The bytes of a fetch as they land, from its upload session (or from the stored blob once the fetch
 * has ended, for a driver that cannot read sessions). Lazy: nothing starts before the first read, so a
 * HEAD that drops the stream fetches nothing.
 */
export function fetchStream(start: () => BlobFetch, storage: StorageDriver): Readable {
  return Readable.from(tail(start, storage), { objectMode: false, highWaterMark: CHUNK });
}

async function* tail(start: () => BlobFetch, storage: StorageDriver): AsyncGenerator<Buffer> {
  const f = start();
  const reader = await openTail(f, storage);
  let pos = 0;
  if (reader) {
    try {
      for (;;) {
        const stamp = f.stamp;
        if (f.state === 'failed') throw f.failure();
        if (f.state === 'done' && pos >= f.size) return;
        // hold the last byte back until the blob is verified
        const limit = f.state === 'done' ? f.size : Math.min(f.received, f.size - 1);
        if (pos < limit) {
          const buf = Buffer.allocUnsafe(Math.min(CHUNK, limit - pos));
          const n = await reader.read(buf, pos);
          if (n > 0) {
            pos += n;
            yield n === buf.length ? buf : buf.subarray(0, n);
            continue;
          }
          if (f.state === 'done') throw regError('INTERNAL', `mirror: stored blob ${f.digest} is shorter than ${f.size} bytes`);
        }
        await f.wait(stamp);
      }
    } finally {
      await reader.close().catch(() => undefined);
    }
  }
  // no session to read: the stored blob once the fetch has ended
  await f.ended;
  if (f.state === 'failed') throw f.failure();
  if (f.size === 0) return;
  for await (const chunk of await storage.openBlob(f.digest, { start: pos, end: f.size - 1 })) yield chunk as Buffer;
}

/** A reader of the fetch's upload session, or undefined when the stored blob is to be read instead. */
async function openTail(f: BlobFetch, storage: StorageDriver): Promise<PositionalReader | undefined> {
  if (!storage.openUploadReader) return undefined;
  for (;;) {
    const stamp = f.stamp;
    if (f.state === 'done' || f.state === 'failed') return undefined;
    if (f.state === 'running') {
      try {
        return await storage.openUploadReader(f.repository, f.uploadId!);
      } catch (err) {
        if (isKind(err, 'BLOB_UPLOAD_UNKNOWN')) return undefined; // committed (or failed) meanwhile
        throw err;
      }
    }
    await f.wait(stamp);
  }
}
