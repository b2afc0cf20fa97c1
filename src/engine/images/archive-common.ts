/** Pieces shared by image load, save and import: archive names, temp dirs, diff IDs, rollback. */
import { promises as fs, createReadStream } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Hasher, isDigest, sha256, type Digest } from '../../lib/digest.js';
import { SampanError, errorMessage, invalid } from '../../lib/errors.js';
import { MediaType, type Descriptor, type ImageConfig, type ImageManifest } from '../../lib/oci.js';
import { decompressed } from '../../lib/tarsafe.js';
import { removeTree } from '../../lib/fsutil.js';
import type { Image, ImageStore, LayerRef } from './store.js';

export const BLOB_PATH_RE = /^blobs\/sha256\/([a-f0-9]{64})$/;
export const LEGACY_CONFIG_RE = /^([a-f0-9]{64})\.json$/;
export const ANN_CONTAINERD_NAME = 'io.containerd.image.name';
export const ANN_REF_NAME = 'org.opencontainers.image.ref.name';
export const MAX_LINK_HOPS = 16;
export const MAX_INDEX_DEPTH = 8;
/** A tar's entries are dated to keep `docker save` output reproducible. */
export const SAVE_MTIME = new Date(0);

// ---------------------------------------------------------------------------------------------
// shared helpers

/** Any failure of a load or import surfaces as INVALID_ARGUMENT with one clear message. */
export function loadError(what: string, err: unknown): SampanError {
  const msg = errorMessage(err);
  return new SampanError('INVALID_ARGUMENT', msg.startsWith(what) ? msg : `${what}: ${msg}`, err);
}

/** A private scratch directory beside the content store's blobs (same filesystem, never served). */
export async function makeTempDir(store: ImageStore, prefix: string): Promise<string> {
  const root = path.dirname(path.dirname(store.content.blobsDir));
  // scratch left by a crash long ago is garbage; a recent one may belong to a load in progress
  try {
    for (const f of await fs.readdir(root)) {
      if (!f.startsWith('tmp-load-') && !f.startsWith('tmp-import-')) continue;
      const p = path.join(root, f);
      const st = await fs.stat(p).catch(() => null);
      if (st && Date.now() - st.mtimeMs > 24 * 3600_000) await removeTree(p);
    }
  } catch {
    // best effort
  }
  const dir = path.join(root, `${prefix}${randomBytes(8).toString('hex')}`);
  await fs.mkdir(dir, { mode: 0o700 });
  return dir;
}

/** Digest of the uncompressed content of a (possibly gzip/zstd) file: a layer's diff ID. */
export async function diffIdOf(file: string): Promise<Digest> {
  const hasher = new Hasher();
  const src = await decompressed(createReadStream(file));
  await pipeline(
    src,
    new Writable({
      write(chunk: Buffer, _e, cb) {
        hasher.update(chunk);
        cb();
      },
    }),
  );
  return hasher.digest();
}

export async function layerMediaType(file: string): Promise<string> {
  const fh = await fs.open(file, 'r');
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await fh.read(head, 0, 4, 0);
    if (bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b) return MediaType.OciLayerGzip;
    if (bytesRead === 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return MediaType.OciLayerZstd;
    return MediaType.OciLayer;
  } finally {
    await fh.close();
  }
}

export function parseJson<T>(buf: Buffer, what: string): T {
  try {
    return JSON.parse(buf.toString('utf8')) as T;
  } catch (err) {
    throw invalid(`${what} is not valid JSON: ${errorMessage(err)}`);
  }
}

export function validateConfig(cfg: unknown, what: string): ImageConfig {
  const c = cfg as ImageConfig;
  if (!c || typeof c !== 'object' || Array.isArray(c)) throw invalid(`${what}: image config is not a JSON object`);
  if (!c.rootfs || c.rootfs.type !== 'layers' || !Array.isArray(c.rootfs.diff_ids)) {
    throw invalid(`${what}: image config has no rootfs.diff_ids`);
  }
  for (const d of c.rootfs.diff_ids) if (typeof d !== 'string' || !isDigest(d)) throw invalid(`${what}: bad diff ID ${JSON.stringify(d)} in image config`);
  return c;
}

/** Build the OCI manifest the image store would build, so its digest is known before add(). */
export function ociManifest(cfgBytes: Buffer, id: Digest, layers: LayerRef[]): Buffer {
  const m: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: id, size: cfgBytes.length },
    layers: layers.map((l) => l.blob),
  };
  return Buffer.from(JSON.stringify(m));
}

/** Undo log of a load or import: everything listed was created by it and did not exist before. */
export class Rollback {
  readonly blobs: Digest[] = [];
  readonly chains: Digest[] = [];
  readonly images: Digest[] = [];
  readonly tags: Array<{ tag: string; prev?: Digest }> = [];

  constructor(private readonly store: ImageStore) {}

  async undo(): Promise<void> {
    const s = this.store;
    for (const { tag, prev } of this.tags.reverse()) {
      await (prev && s.byId(prev) ? s.tag(prev, tag) : s.untag(tag)).catch(() => undefined);
    }
    for (const id of this.images.reverse()) await s.remove(id).catch(() => undefined);
    for (const c of this.chains.reverse()) await s.layers.remove(c).catch(() => undefined);
    for (const b of this.blobs) await s.content.delete(b).catch(() => undefined);
  }
}

/** Add an image (config, manifest and an optional tag), noting in the undo log what did not exist before. */
export async function addImage(store: ImageStore, tx: Rollback, config: ImageConfig, layers: LayerRef[], o: { ref?: string; parent?: Digest } = {}): Promise<Image> {
  const cfgBytes = Buffer.from(JSON.stringify(config));
  const id = sha256(cfgBytes);
  const manifest = ociManifest(cfgBytes, id, layers);
  for (const d of [id, sha256(manifest)]) if (!(await store.content.has(d))) tx.blobs.push(d);
  const existed = store.byId(id) !== undefined;
  await store.add(config, layers, { manifest, configBytes: cfgBytes, parent: o.parent });
  if (!existed) tx.images.push(id);
  if (o.ref) {
    const prev = store.hasTag(o.ref) ? store.find(o.ref)?.id : undefined;
    tx.tags.push({ tag: o.ref, prev });
    await store.tag(id, o.ref);
  }
  return store.byId(id)!;
}


export function isAttestation(d: Descriptor): boolean {
  return d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' || d.platform?.os === 'unknown';
}
