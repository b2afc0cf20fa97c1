/**
 * The registry's rules, independent of HTTP: what a manifest must reference, tags, referrers,
 * uploads and mounts, pagination, deletes; and the hot-path caches in front of the storage driver.
 * The API layer (api/) parses requests and renders responses; it never touches storage directly.
 * One file over ~500 lines: the Registry's operations share its locks and caches, one set of invariants.
 */
import type { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import type { Digest } from '../lib/digest.js';
import type { Logger } from '../lib/log.js';
import { MediaType, type Descriptor } from '../lib/oci.js';
import { KeyedLock } from '../lib/keyedlock.js';
import { LruCache } from './cache.js';
import { regError, isKind } from './errors.js';
import type { Upstream, UpstreamBlob } from './hooks.js';
import { isSha256, type Reference } from './names.js';
import type { BlobStat, ByteRange, StorageDriver, UploadState } from './storage/driver.js';

/** A manifest as served: exact bytes, media type, digest. `wire` is the API's prebuilt response for it. */
export interface ManifestEntry {
  digest: Digest;
  mediaType: string;
  bytes: Buffer;
  /** For tags resolved through an upstream: when to re-check. */
  expiresMs?: number;
  /** Filled in by the API layer once (response headers), reused on every hit. */
  wire?: unknown;
}

export interface RegistryOptions {
  maxManifestBytes: number;
  enableDelete: boolean;
  cacheMaxBytes: number;
  cacheMaxEntries: number;
  upstream?: Upstream;
  log: Logger;
  /** The clock of the caches' TTLs (tests pass a fake one). Default Date.now. */
  now?: () => number;
}

export interface Page<T> {
  items: T[];
  /** The `last` for the next page, when there is one. */
  next?: string;
}

const MANIFEST_TYPES = new Set<string>([MediaType.OciManifest, MediaType.DockerManifest]);
const INDEX_TYPES = new Set<string>([MediaType.OciIndex, MediaType.DockerManifestList]);
/** Layers that live elsewhere (`urls`): not required to be in the registry. */
const FOREIGN_LAYER = /foreign|nondistributable/;
/** Positive blob lookups are cached briefly (an offline GC in another process may remove blobs). */
const BLOB_CACHE_TTL_MS = 30_000;

interface BlobCacheEntry {
  size: number;
  until: number;
}

export class Registry {
  readonly storage: StorageDriver;
  private readonly opts: RegistryOptions;
  private readonly log: Logger;
  private readonly now: () => number;
  /** Manifests by `<repo> <tag|digest>`, and tag lists by `<repo>\n`. */
  readonly manifests: LruCache<ManifestEntry>;
  private readonly tagLists: LruCache<string[]>;
  private readonly blobs: LruCache<BlobCacheEntry>;
  private repositories?: string[];
  /** While a GC runs: digests that manifests pushed meanwhile reference (the sweep spares them). */
  private pins?: Set<string>;
  /** Digests the sweep is deleting right now (a push referencing one waits and re-checks). */
  private readonly deleting = new Map<string, Promise<unknown>>();
  private readonly repoLock = new KeyedLock();
  /** Per repository, bumped around every manifest/tag write (see `writing`). */
  private readonly generations = new Map<string, number>();

  constructor(storage: StorageDriver, opts: RegistryOptions) {
    this.storage = storage;
    this.opts = opts;
    this.log = opts.log;
    this.now = opts.now ?? Date.now;
    this.manifests = new LruCache(opts.cacheMaxEntries, opts.cacheMaxBytes);
    this.tagLists = new LruCache(Math.max(16, opts.cacheMaxEntries >> 4), Math.max(1 << 20, opts.cacheMaxBytes >> 4));
    this.blobs = new LruCache(opts.cacheMaxEntries, Number.MAX_SAFE_INTEGER);
  }

  get deleteEnabled(): boolean {
    return this.opts.enableDelete;
  }

  get maxManifestBytes(): number {
    return this.opts.maxManifestBytes;
  }

  /** Mirror mode: blob GETs answered from the store (hits) and fetched from the upstream (misses), for /metrics. */
  readonly mirrorBlobs = { hits: 0, misses: 0 };

  get isMirror(): boolean {
    return !!this.opts.upstream;
  }

  get readOnly(): boolean {
    return this.opts.upstream?.readOnly ?? false;
  }

  // ================================================================ manifests

  /** The hot path: a cache hit costs one Map lookup. */
  cachedManifest(repo: string, ref: string): ManifestEntry | undefined {
    const e = this.manifests.get(`${repo} ${ref}`);
    if (e && e.expiresMs !== undefined && e.expiresMs < this.now()) {
      this.manifests.delete(`${repo} ${ref}`);
      return undefined;
    }
    return e;
  }

  async getManifest(repo: string, ref: Reference): Promise<ManifestEntry> {
    const key = ref.tag ?? ref.digest;
    const hit = this.cachedManifest(repo, key);
    if (hit) return hit;
    const up = this.opts.upstream;
    let upstreamErr: unknown;
    if (up && ref.tag !== undefined) {
      // mirror: a tag is re-checked upstream whenever it is not (or no longer) in the cache
      try {
        const fromUp = await this.fromUpstream(repo, ref);
        if (fromUp) return fromUp;
      } catch (err) {
        upstreamErr = err;
        this.log.warn({ repo, ref: key, error: (err as Error).message }, 'upstream manifest lookup failed; serving the local copy');
      }
    }
    const generation = this.generations.get(repo);
    const digest = ref.digest ?? (await this.storage.getTag(repo, ref.tag));
    const stored = digest ? await this.storage.getManifest(repo, digest) : undefined;
    if (!stored) {
      if (upstreamErr !== undefined) throw upstreamErr; // no local copy: say why the upstream did not answer
      if (up && ref.digest !== undefined) {
        const fromUp = await this.fromUpstream(repo, ref);
        if (fromUp) return fromUp;
      }
      throw regError('MANIFEST_UNKNOWN', `manifest unknown: ${repo}:${key}`, { name: repo, reference: key });
    }
    const entry: ManifestEntry = { digest: stored.digest, mediaType: stored.mediaType, bytes: stored.bytes };
    // mirror: a tag served from the store (upstream failed or does not know it) is checked again after the TTL too
    if (up && ref.tag !== undefined && up.tagTtlMs !== undefined) entry.expiresMs = this.now() + up.tagTtlMs;
    if (this.generations.get(repo) === generation) this.remember(repo, key, entry); // no write overlapped this read
    return entry;
  }

  private async fromUpstream(repo: string, ref: Reference): Promise<ManifestEntry | undefined> {
    const up = this.opts.upstream!;
    const m = await up.getManifest(repo, ref);
    if (!m) return undefined;
    const digest = sha256(m.bytes);
    if (ref.digest !== undefined && digest !== ref.digest) throw regError('DIGEST_INVALID', `upstream sent a manifest hashing to ${digest}, not ${ref.digest}`);
    return this.repoLock.run(repo, () =>
      this.writing(repo, async () => {
        // a tag re-checked and unchanged upstream: nothing to write
        const unchanged = ref.tag !== undefined && (await this.storage.getTag(repo, ref.tag)) === digest && (await this.storage.hasManifest(repo, digest));
        if (!unchanged) {
          await this.storage.putManifest(repo, digest, m.mediaType, m.bytes);
          if (ref.tag !== undefined) await this.storage.setTag(repo, ref.tag, digest);
        }
        this.repositories = undefined;
        this.tagLists.delete(`${repo}\n`);
        const entry: ManifestEntry = { digest, mediaType: m.mediaType, bytes: m.bytes };
        if (ref.tag !== undefined && up.tagTtlMs !== undefined) entry.expiresMs = this.now() + up.tagTtlMs;
        this.remember(repo, ref.tag ?? digest, entry);
        return entry;
      }),
    );
  }

  private remember(repo: string, key: string, entry: ManifestEntry): void {
    const size = entry.bytes.length + 512;
    this.manifests.set(`${repo} ${key}`, entry, size);
    if (key !== entry.digest && entry.expiresMs === undefined) this.manifests.set(`${repo} ${entry.digest}`, entry, size);
  }

  /**
   * Push a manifest: validate it, check that what it references is in the repository, store the exact
   * bytes and media type, tag it, index its subject. Returns its digest and subject.
   */
  async putManifest(repo: string, ref: Reference, contentType: string | undefined, bytes: Buffer): Promise<{ digest: Digest; subject?: Digest }> {
    this.refuseIfReadOnly();
    if (bytes.length > this.opts.maxManifestBytes) throw regError('MANIFEST_TOO_LARGE', `manifest is over the ${this.opts.maxManifestBytes} byte limit`, { limit: this.opts.maxManifestBytes });
    const digest = sha256(bytes);
    if (ref.digest !== undefined && ref.digest !== digest) throw regError('DIGEST_INVALID', `manifest hashes to ${digest}, not ${ref.digest}`, { digest: ref.digest });
    const parsed = parseManifest(bytes, contentType);
    const { manifest } = parsed;

    // everything it references must be readable in this repository
    const pins = this.pins;
    const wanted: { d: Digest; size?: number; kind: 'blob' | 'manifest' }[] = [];
    if (parsed.kind === 'manifest') {
      for (const desc of [manifest.config as Descriptor & { urls?: unknown }, ...(manifest.layers as (Descriptor & { urls?: unknown })[])]) {
        if (Array.isArray(desc.urls) && desc.urls.length > 0 && FOREIGN_LAYER.test(desc.mediaType ?? '')) continue;
        wanted.push({ d: desc.digest, size: desc.size, kind: 'blob' });
      }
    } else {
      for (const desc of manifest.manifests as Descriptor[]) wanted.push({ d: desc.digest, size: desc.size, kind: 'manifest' });
    }
    for (const w of wanted) pins?.add(w.d);
    await Promise.all(wanted.map((w) => this.deleting.get(w.d)));
    const missing = await Promise.all(
      wanted.map(async (w) => {
        if (!isSha256(w.d)) return { w, why: 'unsupported digest algorithm' };
        const linked = w.kind === 'blob' ? await this.storage.hasBlobLink(repo, w.d) : await this.storage.hasManifest(repo, w.d);
        const st = linked ? await this.storage.statBlob(w.d) : undefined;
        if (!st) return { w, why: w.kind === 'blob' ? 'blob unknown to the repository' : 'manifest unknown to the repository' };
        if (w.size !== undefined && st.size !== w.size) return { w, why: `size ${w.size} does not match the stored ${st.size}`, invalid: true };
        return undefined;
      }),
    );
    const bad = missing.find((m) => m !== undefined);
    if (bad) {
      if ('invalid' in bad) throw regError('MANIFEST_INVALID', `descriptor ${bad.w.d}: ${bad.why}`, { digest: bad.w.d });
      throw regError('MANIFEST_BLOB_UNKNOWN', `${bad.w.kind} ${bad.w.d}: ${bad.why}`, { digest: bad.w.d });
    }
    // a GC sweeping now must spare what this manifest references
    await Promise.all(wanted.map((w) => this.storage.touchBlob(w.d)));
    pins?.add(digest);
    // one writer per repository at a time: storage and cache always end up naming the same manifest
    return this.repoLock.run(repo, () => this.writing(repo, () => this.storeManifest(repo, ref, parsed, digest, bytes)));
  }

  /**
   * Run a write to a repository's manifests or tags between two bumps of its generation: a read that
   * overlapped it (and may have seen the old state) then does not put what it read in the cache.
   */
  private async writing<T>(repo: string, fn: () => Promise<T>): Promise<T> {
    this.generations.set(repo, (this.generations.get(repo) ?? 0) + 1);
    try {
      return await fn();
    } finally {
      this.generations.set(repo, (this.generations.get(repo) ?? 0) + 1);
    }
  }

  private async storeManifest(repo: string, ref: Reference, parsed: ParsedManifest, digest: Digest, bytes: Buffer): Promise<{ digest: Digest; subject?: Digest }> {
    const { mediaType, manifest } = parsed;
    await this.storage.putManifest(repo, digest, mediaType, bytes);
    if (ref.tag !== undefined) await this.storage.setTag(repo, ref.tag, digest);
    const subject = manifest.subject as Descriptor | undefined;
    if (subject) {
      const artifactType = typeof manifest.artifactType === 'string' ? manifest.artifactType : parsed.kind === 'manifest' ? (manifest.config as Descriptor).mediaType : undefined;
      const desc: Descriptor = { mediaType, digest, size: bytes.length };
      if (artifactType) desc.artifactType = artifactType;
      if (manifest.annotations && typeof manifest.annotations === 'object') desc.annotations = manifest.annotations as Record<string, string>;
      await this.storage.addReferrer(repo, subject.digest, desc);
    }
    // caches: this tag now names this manifest; the tag list and catalog may have changed
    const entry: ManifestEntry = { digest, mediaType, bytes };
    this.manifests.delete(`${repo} ${digest}`);
    if (ref.tag !== undefined) {
      this.manifests.delete(`${repo} ${ref.tag}`);
      this.tagLists.delete(`${repo}\n`);
    }
    this.remember(repo, ref.tag ?? digest, entry);
    if (this.repositories && !this.repositories.includes(repo)) this.repositories = undefined;
    return { digest, subject: subject?.digest };
  }

  /** Delete a tag (by tag) or a manifest and every tag naming it (by digest). */
  async deleteManifest(repo: string, ref: Reference): Promise<void> {
    this.refuseDelete();
    return this.repoLock.run(repo, () => this.writing(repo, () => this.removeManifest(repo, ref)));
  }

  private async removeManifest(repo: string, ref: Reference): Promise<void> {
    if (ref.tag !== undefined) {
      const ok = await this.storage.deleteTag(repo, ref.tag);
      this.manifests.delete(`${repo} ${ref.tag}`);
      this.tagLists.delete(`${repo}\n`);
      if (!ok) throw regError('MANIFEST_UNKNOWN', `tag unknown: ${repo}:${ref.tag}`, { name: repo, reference: ref.tag });
      return;
    }
    const stored = await this.storage.getManifest(repo, ref.digest);
    if (!stored) throw regError('MANIFEST_UNKNOWN', `manifest unknown: ${repo}@${ref.digest}`, { name: repo, reference: ref.digest });
    for (const tag of (await this.storage.listTags(repo)) ?? []) {
      if ((await this.storage.getTag(repo, tag)) === ref.digest) await this.storage.deleteTag(repo, tag);
    }
    await this.storage.deleteManifest(repo, ref.digest);
    try {
      const m = JSON.parse(stored.bytes.toString('utf8')) as { subject?: { digest?: unknown } };
      if (typeof m.subject?.digest === 'string' && isSha256(m.subject.digest)) await this.storage.removeReferrer(repo, m.subject.digest, ref.digest);
    } catch {
      /* stored bytes were validated on push; nothing to unindex otherwise */
    }
    this.manifests.deletePrefix(`${repo} `);
    this.tagLists.delete(`${repo}\n`);
  }

  // ================================================================ blobs

  /** Size of a blob the repository may read; BLOB_UNKNOWN otherwise. */
  async statBlob(repo: string, d: Digest): Promise<number> {
    const key = `${repo} ${d}`;
    const hit = this.blobs.get(key);
    const now = this.now();
    if (hit && hit.until > now) return hit.size;
    const [linked, st] = await Promise.all([this.readable(repo, d), this.storage.statBlob(d)]);
    if (!linked || !st) throw regError('BLOB_UNKNOWN', `blob unknown: ${repo}@${d}`, { digest: d });
    this.blobs.set(key, { size: st.size, until: now + BLOB_CACHE_TTL_MS });
    return st.size;
  }

  /** Whether the repository may read the blob: a layer link, or one of its manifests. */
  private async readable(repo: string, d: Digest): Promise<boolean> {
    return (await this.storage.hasBlobLink(repo, d)) || (await this.storage.hasManifest(repo, d));
  }

  /** Stat, or ask the upstream (mirror). */
  async statBlobOrUpstream(repo: string, d: Digest): Promise<{ size: number } | UpstreamBlob> {
    try {
      return { size: await this.statBlob(repo, d) };
    } catch (err) {
      if (!isKind(err, 'BLOB_UNKNOWN') || !this.opts.upstream) throw err;
      const up = await this.opts.upstream.getBlob(repo, d);
      if (!up) throw err;
      return up;
    }
  }

  async openBlob(repo: string, d: Digest, range?: ByteRange): Promise<Readable> {
    try {
      return await this.storage.openBlob(d, range);
    } catch (err) {
      if (isKind(err, 'BLOB_UNKNOWN')) this.blobs.delete(`${repo} ${d}`);
      throw err;
    }
  }

  async deleteBlob(repo: string, d: Digest): Promise<void> {
    this.refuseDelete();
    this.blobs.delete(`${repo} ${d}`);
    if (!(await this.storage.unlinkBlob(repo, d))) throw regError('BLOB_UNKNOWN', `blob unknown: ${repo}@${d}`, { digest: d });
  }

  // ================================================================ uploads

  async startUpload(repo: string): Promise<UploadState> {
    this.refuseIfReadOnly();
    return this.storage.createUpload(repo);
  }

  /**
   * Mount a blob into `repo`: from `from` when it may read it, or (anonymous mount, `from` absent)
   * from anywhere in the registry. Undefined when it cannot (the caller starts an upload instead).
   */
  async mount(repo: string, d: Digest, from: string | undefined): Promise<BlobStat | undefined> {
    this.refuseIfReadOnly();
    if (from !== undefined && !(await this.readable(from, d))) return undefined;
    this.pins?.add(d);
    await this.deleting.get(d);
    const st = await this.storage.statBlob(d);
    if (!st) return undefined;
    await this.storage.touchBlob(d);
    await this.storage.linkBlob(repo, d);
    return st;
  }

  async uploadStatus(repo: string, id: string): Promise<UploadState> {
    const st = await this.storage.getUpload(repo, id);
    if (!st) throw regError('BLOB_UPLOAD_UNKNOWN', `upload unknown: ${id}`, { id });
    return st;
  }

  appendUpload(repo: string, id: string, body: Readable, opts: { start?: number; length?: number; onBytes?: (n: number) => void }): Promise<UploadState> {
    this.refuseIfReadOnly();
    return this.storage.appendUpload(repo, id, body, { expectedOffset: opts.start, expectedLength: opts.length, onBytes: opts.onBytes });
  }

  /** Finish an upload (after appending a last body, if any): verify the digest, make it the blob. */
  async completeUpload(repo: string, id: string, d: Digest, body?: { stream: Readable; start?: number; length?: number; onBytes?: (n: number) => void }): Promise<BlobStat> {
    this.refuseIfReadOnly();
    if (body) await this.appendUpload(repo, id, body.stream, body);
    this.pins?.add(d);
    await this.deleting.get(d); // a sweep removing this very digest finishes first
    try {
      const st = await this.storage.commitUpload(repo, id, d);
      this.blobs.delete(`${repo} ${d}`);
      return st;
    } catch (err) {
      // the client sent bytes that are not what it claimed: the session is of no further use
      if (isKind(err, 'DIGEST_INVALID')) await this.storage.deleteUpload(repo, id).catch(() => undefined);
      throw err;
    }
  }

  async cancelUpload(repo: string, id: string): Promise<void> {
    if (!(await this.storage.deleteUpload(repo, id))) throw regError('BLOB_UPLOAD_UNKNOWN', `upload unknown: ${id}`, { id });
  }

  /** Remove upload sessions not written to for `maxAgeMs`. */
  async purgeUploads(maxAgeMs: number, dryRun = false): Promise<UploadState[]> {
    const cutoff = Date.now() - maxAgeMs; // the storage's own timestamps: real time
    const purged: UploadState[] = [];
    for await (const u of this.storage.listUploads()) {
      if (Math.max(u.updatedMs, u.startedMs) >= cutoff) continue;
      if (!dryRun) await this.storage.deleteUpload(u.repository, u.id);
      purged.push(u);
    }
    return purged;
  }

  // ================================================================ content discovery

  async listTags(repo: string, n: number | undefined, last: string | undefined): Promise<Page<string>> {
    const up = this.opts.upstream;
    if (up?.listTags) {
      // mirror: the upstream's tags; the store's when the upstream fails or does not know the repository
      const fromUp = await up.listTags(repo).catch((err: unknown) => {
        this.log.warn({ repo, error: (err as Error).message }, 'upstream tag list failed; serving the local tags');
        return undefined;
      });
      if (fromUp) return paginate(fromUp, n, last);
    }
    let tags = this.tagLists.get(`${repo}\n`);
    if (!tags) {
      tags = await this.storage.listTags(repo);
      if (!tags) throw regError('NAME_UNKNOWN', `repository unknown: ${repo}`, { name: repo });
      this.tagLists.set(`${repo}\n`, tags, tags.length * 32 + 64);
    }
    return paginate(tags, n, last);
  }

  async listRepositories(n: number | undefined, last: string | undefined): Promise<Page<string>> {
    this.repositories ??= await this.storage.listRepositories();
    return paginate(this.repositories, n, last);
  }

  async referrers(repo: string, subject: Digest, artifactType: string | undefined): Promise<Descriptor[]> {
    const all = await this.storage.listReferrers(repo, subject);
    return artifactType === undefined ? all : all.filter((d) => d.artifactType === artifactType);
  }

  // ================================================================ GC support

  /** Run `fn` (a GC) with pinning on: digests referenced by pushes and mounts meanwhile are recorded. */
  async withPins<T>(fn: (pins: Set<string>) => Promise<T>): Promise<T> {
    if (this.pins) throw regError('UNAVAILABLE', 'a garbage collection is already running');
    const pins = new Set<string>();
    this.pins = pins;
    try {
      return await fn(pins);
    } finally {
      this.pins = undefined;
      this.blobs.clear();
    }
  }

  /** Delete a blob unless a push pinned it meanwhile; pushes that reference it wait for this. */
  async sweepBlob(d: Digest): Promise<boolean> {
    if (this.pins?.has(d)) return false;
    const p = this.storage.deleteBlob(d);
    this.deleting.set(d, p.catch(() => undefined));
    try {
      return await p;
    } finally {
      this.deleting.delete(d);
    }
  }

  // ================================================================ policy

  private refuseDelete(): void {
    if (!this.opts.enableDelete) throw regError('UNSUPPORTED', 'deletes are disabled on this registry');
    this.refuseIfReadOnly();
  }

  private refuseIfReadOnly(): void {
    if (this.readOnly) throw regError('UNSUPPORTED', 'this registry is a read-only mirror (a pull-through cache of an upstream registry): push to the upstream instead');
  }
}

// ================================================================== helpers

export function sha256(b: Buffer): Digest {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

/** One page of a sorted list: entries after `last`, at most `n`. */
export function paginate(sorted: string[], n: number | undefined, last: string | undefined): Page<string> {
  let start = 0;
  if (last !== undefined && last !== '') {
    // first index with value > last (binary search)
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid]! <= last) lo = mid + 1;
      else hi = mid;
    }
    start = lo;
  }
  if (n === undefined) return { items: sorted.slice(start) };
  const items = sorted.slice(start, start + n);
  const more = start + n < sorted.length && items.length > 0;
  return more ? { items, next: items[items.length - 1] } : { items };
}

interface ParsedManifest {
  kind: 'manifest' | 'index';
  mediaType: string;
  manifest: Record<string, unknown>;
}

const JSONISH = new Set(['', 'application/json', 'application/octet-stream', 'text/plain']);

/** Validate a manifest's shape; MANIFEST_INVALID with the reason otherwise. */
export function parseManifest(bytes: Buffer, contentType: string | undefined): ParsedManifest {
  let m: unknown;
  try {
    m = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw regError('MANIFEST_INVALID', `manifest is not JSON: ${(err as Error).message}`);
  }
  if (!m || typeof m !== 'object' || Array.isArray(m)) throw regError('MANIFEST_INVALID', 'manifest is not a JSON object');
  const obj = m as Record<string, unknown>;
  if (obj.schemaVersion !== 2) throw regError('MANIFEST_INVALID', `unsupported schemaVersion ${JSON.stringify(obj.schemaVersion)}: only schema 2 manifests are accepted`);
  const ct = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  const own = typeof obj.mediaType === 'string' ? obj.mediaType : undefined;
  if (obj.mediaType !== undefined && own === undefined) throw regError('MANIFEST_INVALID', 'mediaType must be a string');
  if (own !== undefined && !JSONISH.has(ct) && own !== ct) throw regError('MANIFEST_INVALID', `manifest mediaType ${own} does not match Content-Type ${ct}`);
  const mediaType = !JSONISH.has(ct) ? ct : own ?? (Array.isArray(obj.manifests) ? MediaType.OciIndex : MediaType.OciManifest);
  let kind: 'manifest' | 'index';
  if (MANIFEST_TYPES.has(mediaType)) kind = 'manifest';
  else if (INDEX_TYPES.has(mediaType)) kind = 'index';
  else throw regError('MANIFEST_INVALID', `unsupported manifest media type ${mediaType}`);
  if (kind === 'manifest') {
    checkDescriptor(obj.config, 'config');
    if (!Array.isArray(obj.layers)) throw regError('MANIFEST_INVALID', 'layers must be an array');
    obj.layers.forEach((l, i) => checkDescriptor(l, `layers[${i}]`));
  } else {
    if (!Array.isArray(obj.manifests)) throw regError('MANIFEST_INVALID', 'manifests must be an array');
    obj.manifests.forEach((l, i) => checkDescriptor(l, `manifests[${i}]`));
  }
  if (obj.subject !== undefined) checkDescriptor(obj.subject, 'subject', true);
  if (obj.artifactType !== undefined && typeof obj.artifactType !== 'string') throw regError('MANIFEST_INVALID', 'artifactType must be a string');
  if (obj.annotations !== undefined && (typeof obj.annotations !== 'object' || obj.annotations === null || Array.isArray(obj.annotations))) throw regError('MANIFEST_INVALID', 'annotations must be an object');
  return { kind, mediaType, manifest: obj };
}

function checkDescriptor(d: unknown, where: string, sha256Only = false): void {
  if (!d || typeof d !== 'object' || Array.isArray(d)) throw regError('MANIFEST_INVALID', `${where} must be a descriptor object`);
  const desc = d as Record<string, unknown>;
  if (typeof desc.digest !== 'string' || !/^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(desc.digest)) throw regError('MANIFEST_INVALID', `${where}.digest is not a digest`);
  if (sha256Only && !isSha256(desc.digest)) throw regError('MANIFEST_INVALID', `${where}.digest must be sha256`);
  if (typeof desc.size !== 'number' || !Number.isSafeInteger(desc.size) || desc.size < 0) throw regError('MANIFEST_INVALID', `${where}.size must be a non-negative integer`);
  if (desc.mediaType !== undefined && typeof desc.mediaType !== 'string') throw regError('MANIFEST_INVALID', `${where}.mediaType must be a string`);
}
