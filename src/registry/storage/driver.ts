/**
 * The registry's storage interface. The filesystem driver (filesystem.ts) is the default; an object
 * store backend implements the same interface later. Names, tags, digests and upload ids reach a
 * driver already validated (src/registry/names.ts); a driver still refuses anything else.
 *
 * Contract every driver keeps:
 * - Blobs are content-addressed and global: the bytes stored under a digest always hash to it. A blob
 *   is written somewhere private and made visible under its digest only after it is verified and
 *   durable, so a crash at any moment never leaves a wrong or partial blob under a digest.
 * - A repository may read a blob only through a link (its layers, or its manifests' revisions);
 *   linking is cheap and idempotent, which is what cross-repository mounts use.
 * - Manifests keep their exact bytes (as a blob) and the media type they were pushed with.
 * - Uploads are resumable sessions in one repository: bytes are appended at the session's offset, the
 *   driver keeps the running digest, and committing verifies it before the blob becomes visible.
 */
import type { Readable } from 'node:stream';
import type { Digest } from '../../lib/digest.js';
import type { Descriptor } from '../../lib/oci.js';

export interface BlobStat {
  digest: Digest;
  size: number;
  /** Last write or touch (ms since the epoch): GC spares blobs younger than its grace period. */
  modifiedMs: number;
}

export interface StoredManifest {
  digest: Digest;
  mediaType: string;
  bytes: Buffer;
}

export interface UploadState {
  id: string;
  repository: string;
  /** Bytes received and durable so far. */
  offset: number;
  startedMs: number;
  updatedMs: number;
}

/** An inclusive byte range of a blob. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface AppendOptions {
  /** The offset the client says this body starts at (Content-Range); BLOB_UPLOAD_RANGE when it is not the session's. */
  expectedOffset?: number;
  /** Exact number of bytes the body must carry (Content-Range / Content-Length); SIZE_INVALID otherwise. */
  expectedLength?: number;
  /** Told about every chunk once it is in the file (metrics; readers of a growing upload). */
  onBytes?: (n: number) => void;
}

/** Positional reads of bytes that may still be growing (an upload being appended to). */
export interface PositionalReader {
  /** Read up to `buffer.length` bytes at `position` into `buffer`; how many were read (0 at the current end). */
  read(buffer: Buffer, position: number): Promise<number>;
  close(): Promise<void>;
}

export interface StorageDriver {
  /** 'filesystem', 's3', ... */
  readonly kind: string;
  /** Create what the driver needs; recover from a crash (drop half-written temp files). */
  init(): Promise<void>;

  // ---- blobs (global, content-addressed) ----
  statBlob(digest: Digest): Promise<BlobStat | undefined>;
  /** The blob's bytes (all, or one range); BLOB_UNKNOWN when absent. */
  openBlob(digest: Digest, range?: ByteRange): Promise<Readable>;
  /** A small blob in memory (manifests); BLOB_UNKNOWN when absent. */
  readBlobBytes(digest: Digest): Promise<Buffer>;
  /** Store small verified bytes under their digest (manifests). DIGEST_INVALID when they do not hash to it. */
  putBlobBytes(digest: Digest, bytes: Buffer): Promise<void>;
  /** Mark a blob as just used, so that a GC running now spares it. */
  touchBlob(digest: Digest): Promise<void>;
  deleteBlob(digest: Digest): Promise<boolean>;
  listBlobs(): AsyncIterable<BlobStat>;

  // ---- a repository's links to the blobs it may read ----
  linkBlob(repository: string, digest: Digest): Promise<void>;
  unlinkBlob(repository: string, digest: Digest): Promise<boolean>;
  hasBlobLink(repository: string, digest: Digest): Promise<boolean>;
  listBlobLinks(repository: string): AsyncIterable<Digest>;

  // ---- manifests (exact bytes + media type) ----
  putManifest(repository: string, digest: Digest, mediaType: string, bytes: Buffer): Promise<void>;
  getManifest(repository: string, digest: Digest): Promise<StoredManifest | undefined>;
  hasManifest(repository: string, digest: Digest): Promise<boolean>;
  /** Removes the repository's revision (not the bytes: those go with GC). */
  deleteManifest(repository: string, digest: Digest): Promise<boolean>;
  listManifests(repository: string): AsyncIterable<Digest>;

  // ---- tags ----
  getTag(repository: string, tag: string): Promise<Digest | undefined>;
  setTag(repository: string, tag: string, digest: Digest): Promise<void>;
  deleteTag(repository: string, tag: string): Promise<boolean>;
  /** All tags in lexical order; undefined when the repository has no manifests at all. */
  listTags(repository: string): Promise<string[] | undefined>;

  // ---- referrers (manifests whose subject is a digest) ----
  addReferrer(repository: string, subject: Digest, descriptor: Descriptor): Promise<void>;
  removeReferrer(repository: string, subject: Digest, digest: Digest): Promise<void>;
  listReferrers(repository: string, subject: Digest): Promise<Descriptor[]>;

  // ---- repositories ----
  repositoryExists(repository: string): Promise<boolean>;
  /** Repositories that hold manifests, in lexical order. */
  listRepositories(): Promise<string[]>;

  // ---- upload sessions ----
  createUpload(repository: string): Promise<UploadState>;
  getUpload(repository: string, id: string): Promise<UploadState | undefined>;
  /** Append a body at the session's offset; durable when it resolves. BLOB_UPLOAD_UNKNOWN when the session is gone. */
  appendUpload(repository: string, id: string, body: Readable, opts?: AppendOptions): Promise<UploadState>;
  /**
   * Verify the session's bytes hash to `digest`, then make them the blob (and link it into the
   * repository). DIGEST_INVALID when they do not (the session is left as it was).
   */
  commitUpload(repository: string, id: string, digest: Digest): Promise<BlobStat>;
  deleteUpload(repository: string, id: string): Promise<boolean>;
  listUploads(): AsyncIterable<UploadState>;
  /**
   * Optional: read an upload session's bytes while they are still being appended (mirror mode streams
   * a blob to clients while it is fetched from the upstream into an upload). The reader keeps working
   * after the session is committed or removed. BLOB_UPLOAD_UNKNOWN when the session is gone.
   */
  openUploadReader?(repository: string, id: string): Promise<PositionalReader>;
}
