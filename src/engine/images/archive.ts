/**
 * Image archives: `docker load` (docker-archive and OCI image layout tars), `docker save`
 * (the Docker 25+ layout, readable as both), and `docker import` (a rootfs tar as a one-layer image).
 */
import { promises as fs, createReadStream, createWriteStream } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { Hasher, HashingStream, hexOf, isDigest, sha256, type Digest } from '../../lib/digest.js';
import { SampanError, errorMessage, invalid, notFound } from '../../lib/errors.js';
import { MediaType, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest, type ImageRuntimeConfig } from '../../lib/oci.js';
import { familiarRepo, familiarTagged, parseReference } from '../../lib/reference.js';
import { decompressed, safeEntryPath } from '../../lib/tarsafe.js';
import { removeTree } from '../../lib/fsutil.js';
import type { Image, ImageStore, LayerRef } from './store.js';

const BLOB_PATH_RE = /^blobs\/sha256\/([a-f0-9]{64})$/;
const LEGACY_CONFIG_RE = /^([a-f0-9]{64})\.json$/;
const ANN_CONTAINERD_NAME = 'io.containerd.image.name';
const ANN_REF_NAME = 'org.opencontainers.image.ref.name';
const MAX_LINK_HOPS = 16;
const MAX_INDEX_DEPTH = 8;
/** A tar's entries are dated to keep `docker save` output reproducible. */
const SAVE_MTIME = new Date(0);

// ---------------------------------------------------------------------------------------------
// shared helpers

/** Any failure of a load or import surfaces as INVALID_ARGUMENT with one clear message. */
function loadError(what: string, err: unknown): SampanError {
  const msg = errorMessage(err);
  return new SampanError('INVALID_ARGUMENT', msg.startsWith(what) ? msg : `${what}: ${msg}`, err);
}

/** A private scratch directory beside the content store's blobs (same filesystem, never served). */
async function makeTempDir(store: ImageStore, prefix: string): Promise<string> {
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
async function diffIdOf(file: string): Promise<Digest> {
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

async function layerMediaType(file: string): Promise<string> {
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

function parseJson<T>(buf: Buffer, what: string): T {
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
function ociManifest(cfgBytes: Buffer, id: Digest, layers: LayerRef[]): Buffer {
  const m: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: id, size: cfgBytes.length },
    layers: layers.map((l) => l.blob),
  };
  return Buffer.from(JSON.stringify(m));
}

/** Undo log of a load or import: everything listed was created by it and did not exist before. */
class Rollback {
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

// ---------------------------------------------------------------------------------------------
// docker load

interface OuterFile {
  digest: Digest;
  size: number;
}

interface OuterLink {
  kind: 'symlink' | 'hardlink';
  target: string;
}

/** The outer archive unpacked into a scratch directory: regular files with their digests, and links by name. */
class Unpacked {
  readonly files = new Map<string, OuterFile>();
  readonly links = new Map<string, OuterLink>();
  readonly dirs = new Set<string>();
  private readonly diffIds = new Map<string, Promise<Digest>>();

  constructor(readonly dir: string) {}

  /** Follow links (recorded, never created on disk) to a regular file inside the archive. */
  resolve(name: string): string | undefined {
    let rel = safeEntryPath(name);
    for (let hop = 0; hop <= MAX_LINK_HOPS; hop++) {
      if (this.files.has(rel)) return rel;
      const link = this.links.get(rel);
      if (!link) return undefined;
      if (link.kind === 'hardlink') {
        rel = safeEntryPath(link.target);
      } else {
        if (link.target.startsWith('/')) throw invalid(`archive entry ${JSON.stringify(rel)}: absolute symlink ${JSON.stringify(link.target)}`);
        const joined = path.posix.normalize(path.posix.join(path.posix.dirname(rel), link.target));
        if (joined === '..' || joined.startsWith('../')) {
          throw invalid(`archive entry ${JSON.stringify(rel)}: symlink ${JSON.stringify(link.target)} escapes the archive`);
        }
        rel = safeEntryPath(joined);
      }
    }
    throw invalid(`archive entry ${JSON.stringify(name)}: too many levels of links`);
  }

  has(name: string): boolean {
    try {
      return this.resolve(name) !== undefined;
    } catch {
      return false;
    }
  }

  /** Resolve and require a file; `what` names it in the error. */
  file(name: string, what: string): { rel: string; abs: string; info: OuterFile } {
    if (typeof name !== 'string' || !name) throw invalid(`${what}: missing path`);
    const rel = this.resolve(name);
    if (!rel) throw invalid(`${what}: ${JSON.stringify(name)} not found in the archive`);
    return { rel, abs: path.join(this.dir, rel), info: this.files.get(rel)! };
  }

  async read(name: string, what: string): Promise<Buffer> {
    return fs.readFile(this.file(name, what).abs);
  }

  blob(d: Descriptor, what: string): { rel: string; abs: string; info: OuterFile } {
    if (!d || typeof d.digest !== 'string' || !isDigest(d.digest)) throw invalid(`${what}: bad descriptor digest ${JSON.stringify(d?.digest)}`);
    const f = this.file(`blobs/sha256/${hexOf(d.digest)}`, what);
    if (typeof d.size === 'number' && d.size !== f.info.size) {
      throw invalid(`${what}: blob ${d.digest} has ${f.info.size} bytes, descriptor says ${d.size}`);
    }
    return f;
  }

  diffId(rel: string): Promise<Digest> {
    let p = this.diffIds.get(rel);
    if (!p) {
      p = diffIdOf(path.join(this.dir, rel));
      this.diffIds.set(rel, p);
    }
    return p;
  }
}

async function unpackOuter(input: Readable, dir: string): Promise<Unpacked> {
  const out = new Unpacked(dir);
  const extract = tar.extract();
  const consume = (async () => {
    for await (const entry of extract) {
      const h = entry.header;
      const rel = safeEntryPath(h.name);
      if (rel === '') {
        entry.resume();
        continue;
      }
      const target = path.join(dir, rel);
      switch (h.type) {
        case 'directory':
          await fs.mkdir(target, { recursive: true, mode: 0o700 });
          out.dirs.add(rel);
          entry.resume();
          break;
        case 'file':
        case 'contiguous-file': {
          if (out.files.has(rel)) await fs.rm(target, { force: true });
          await fs.mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
          const hashing = new HashingStream();
          await pipeline(entry, hashing, createWriteStream(target, { mode: 0o600, flags: 'wx' }));
          out.links.delete(rel);
          out.files.set(rel, { digest: hashing.hasher.digest(), size: hashing.hasher.size });
          break;
        }
        case 'symlink':
        case 'link':
          // kept as names only, resolved (and checked) when something refers to them
          out.files.delete(rel);
          await fs.rm(target, { force: true }).catch(() => undefined);
          out.links.set(rel, { kind: h.type === 'link' ? 'hardlink' : 'symlink', target: h.linkname ?? '' });
          entry.resume();
          break;
        default:
          entry.resume();
      }
    }
  })().catch((err: unknown) => {
    extract.destroy(err as Error);
    throw err;
  });
  const src = await decompressed(input);
  const [piped, consumed] = await Promise.allSettled([pipeline(src, extract), consume]);
  if (consumed.status === 'rejected') throw consumed.reason;
  if (piped.status === 'rejected') throw invalid(`bad archive: ${errorMessage(piped.reason)}`);
  // every blob of a layout must be what its name says
  for (const [rel, f] of out.files) {
    const m = BLOB_PATH_RE.exec(rel);
    if (m && f.digest !== `sha256:${m[1]}`) throw invalid(`blob ${rel} does not match its digest (content is ${f.digest})`);
  }
  return out;
}

interface PlannedLayer {
  file: string;
  rel: string;
  blob: Descriptor;
  diffId: Digest;
}

interface PlannedImage {
  what: string;
  config: ImageConfig;
  /** Digest of the config as found in the archive, and its file (the bytes are kept: they define the ID). */
  configDigest: Digest;
  configFile: string;
  layers: PlannedLayer[];
  tags: string[];
  repoDigests: string[];
  /** The manifest as found in an OCI layout (kept when it still describes the stored image). */
  manifest?: Buffer;
}

interface DockerManifestEntry {
  Config?: unknown;
  RepoTags?: unknown;
  Layers?: unknown;
}

async function planDockerArchive(u: Unpacked): Promise<PlannedImage[]> {
  const entries = parseJson<DockerManifestEntry[]>(await u.read('manifest.json', 'manifest.json'), 'manifest.json');
  if (!Array.isArray(entries)) throw invalid('manifest.json is not a list');
  const out: PlannedImage[] = [];
  for (const [n, e] of entries.entries()) {
    const what0 = `manifest.json entry ${n}`;
    if (!e || typeof e !== 'object' || typeof e.Config !== 'string') throw invalid(`${what0}: no Config`);
    const tags = e.RepoTags == null ? [] : e.RepoTags;
    if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string')) throw invalid(`${what0}: RepoTags is not a list of names`);
    for (const t of tags as string[]) {
      const r = parseReference(t);
      if (r.digest) throw invalid(`${what0}: RepoTags entry ${JSON.stringify(t)} is a digest reference`);
    }
    const what = tags.length ? `image ${tags[0] as string}` : what0;
    const cfgName = safeEntryPath(e.Config);
    const cfgFile = u.file(cfgName, `${what}: config`);
    const named = LEGACY_CONFIG_RE.exec(path.posix.basename(cfgName)) ?? BLOB_PATH_RE.exec(cfgName);
    if (named && cfgFile.info.digest !== `sha256:${named[1]}`) {
      throw invalid(`${what}: config ${cfgName} does not match its digest (content is ${cfgFile.info.digest})`);
    }
    const config = validateConfig(parseJson(await fs.readFile(cfgFile.abs), `${what}: config ${cfgName}`), what);
    if (!Array.isArray(e.Layers) || e.Layers.some((l) => typeof l !== 'string')) throw invalid(`${what}: Layers is not a list of paths`);
    const layerNames = e.Layers as string[];
    if (layerNames.length !== config.rootfs.diff_ids.length) {
      throw invalid(`${what}: ${layerNames.length} layers but the config lists ${config.rootfs.diff_ids.length} diff IDs`);
    }
    const layers: PlannedLayer[] = [];
    for (const [i, name] of layerNames.entries()) {
      const f = u.file(name, `${what}: layer ${i + 1}`);
      layers.push({
        file: f.abs,
        rel: f.rel,
        blob: { mediaType: await layerMediaType(f.abs), digest: f.info.digest, size: f.info.size },
        diffId: config.rootfs.diff_ids[i]!,
      });
    }
    out.push({ what, config, configDigest: cfgFile.info.digest, configFile: cfgFile.abs, layers, tags: tags as string[], repoDigests: [] });
  }
  return out;
}

const INDEX_TYPES: ReadonlySet<string> = new Set([MediaType.OciIndex, MediaType.DockerManifestList]);
const MANIFEST_TYPES: ReadonlySet<string> = new Set([MediaType.OciManifest, MediaType.DockerManifest]);

export function isAttestation(d: Descriptor): boolean {
  return d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' || d.platform?.os === 'unknown';
}

/** Follow a descriptor from index.json down to an image manifest (nested indexes pick linux/amd64 or the only one). */
async function selectManifest(u: Unpacked, d: Descriptor, what: string, depth = 0): Promise<{ digest: Digest; bytes: Buffer; manifest: ImageManifest }> {
  if (depth > MAX_INDEX_DEPTH) throw invalid(`${what}: indexes nested too deeply`);
  const bytes = await fs.readFile(u.blob(d, what).abs);
  const doc = parseJson<ImageManifest & ImageIndex>(bytes, `${what}: blob ${d.digest}`);
  const type = d.mediaType || doc.mediaType;
  const isIndex = type ? INDEX_TYPES.has(type) : Array.isArray(doc.manifests);
  if (isIndex) {
    if (!Array.isArray(doc.manifests)) throw invalid(`${what}: index ${d.digest} has no manifests`);
    const candidates = doc.manifests.filter((m) => m && !isAttestation(m));
    const pick =
      candidates.find((m) => m.platform?.os === 'linux' && m.platform?.architecture === 'amd64') ??
      (candidates.length === 1 ? candidates[0] : undefined);
    if (!pick) {
      const plats = candidates.map((m) => (m.platform ? `${m.platform.os}/${m.platform.architecture}` : 'unknown')).join(', ');
      throw invalid(`${what}: no linux/amd64 image in index ${d.digest} (has: ${plats || 'nothing'})`);
    }
    return selectManifest(u, pick, what, depth + 1);
  }
  if (type && !MANIFEST_TYPES.has(type)) throw invalid(`${what}: unsupported media type ${JSON.stringify(type)}`);
  if (!doc.config || !Array.isArray(doc.layers)) throw invalid(`${what}: manifest ${d.digest} has no config or layers`);
  return { digest: d.digest, bytes, manifest: doc };
}

/** The name an index.json entry carries, if it is a usable image reference. */
function nameFromAnnotations(a: Record<string, string> | undefined): string | undefined {
  const full = a?.[ANN_CONTAINERD_NAME];
  if (full) return full;
  const ref = a?.[ANN_REF_NAME];
  // a bare "latest" or "1.0" is only a tag of nothing: such images load untagged
  if (ref && (ref.includes('/') || ref.includes(':'))) {
    try {
      parseReference(ref);
      return ref;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

async function planOciLayout(u: Unpacked): Promise<PlannedImage[]> {
  const index = parseJson<ImageIndex>(await u.read('index.json', 'index.json'), 'index.json');
  if (!index || !Array.isArray(index.manifests)) throw invalid('index.json has no manifests');
  const byManifest = new Map<Digest, { bytes: Buffer; manifest: ImageManifest; tags: Set<string>; repoDigests: Set<string> }>();
  for (const [n, d] of index.manifests.entries()) {
    if (!d || typeof d !== 'object') throw invalid(`index.json entry ${n} is not a descriptor`);
    const name = nameFromAnnotations(d.annotations);
    const what = name ? `image ${name}` : `index.json entry ${n}`;
    const sel = await selectManifest(u, d, what);
    let slot = byManifest.get(sel.digest);
    if (!slot) {
      slot = { bytes: sel.bytes, manifest: sel.manifest, tags: new Set(), repoDigests: new Set() };
      byManifest.set(sel.digest, slot);
    }
    if (name) {
      const r = parseReference(name);
      if (r.digest) slot.repoDigests.add(`${familiarRepo(r)}@${r.digest}`);
      else slot.tags.add(name);
    }
  }
  const out: PlannedImage[] = [];
  for (const [digest, slot] of byManifest) {
    const first = [...slot.tags][0];
    const what = first ? `image ${first}` : `image manifest ${digest}`;
    const m = slot.manifest;
    const cfgFile = u.blob(m.config, `${what}: config`);
    const config = validateConfig(parseJson(await fs.readFile(cfgFile.abs), `${what}: config`), what);
    if (m.layers.length !== config.rootfs.diff_ids.length) {
      throw invalid(`${what}: ${m.layers.length} layers but the config lists ${config.rootfs.diff_ids.length} diff IDs`);
    }
    const layers: PlannedLayer[] = [];
    for (const [i, d] of m.layers.entries()) {
      const f = u.blob(d, `${what}: layer ${i + 1}`);
      const mediaType = typeof d.mediaType === 'string' && d.mediaType ? d.mediaType : await layerMediaType(f.abs);
      layers.push({ file: f.abs, rel: f.rel, blob: { mediaType, digest: d.digest, size: f.info.size }, diffId: config.rootfs.diff_ids[i]! });
    }
    out.push({
      what,
      config,
      configDigest: cfgFile.info.digest,
      configFile: cfgFile.abs,
      layers,
      tags: [...slot.tags],
      repoDigests: [...slot.repoDigests],
      manifest: slot.bytes,
    });
  }
  return out;
}

/**
 * A Docker 25+ archive is also an OCI layout: keep its original manifests (and digest names) for the images
 * manifest.json lists. Best effort: manifest.json alone is enough to load.
 */
async function adoptOciManifests(u: Unpacked, plan: PlannedImage[]): Promise<void> {
  let oci: PlannedImage[];
  try {
    oci = await planOciLayout(u);
  } catch {
    return;
  }
  for (const img of plan) {
    const match = oci.find(
      (o) => o.configDigest === img.configDigest && o.layers.length === img.layers.length && o.layers.every((l, i) => l.blob.digest === img.layers[i]!.blob.digest),
    );
    if (!match) continue;
    img.manifest = match.manifest;
    img.repoDigests = match.repoDigests;
    img.layers = img.layers.map((l, i) => ({ ...l, blob: match.layers[i]!.blob }));
  }
}

/**
 * `docker load`: read a docker-archive or OCI layout tar (optionally gzip/zstd-compressed), verify everything,
 * and add its images to the store. On any error nothing this load created is kept.
 */
export async function loadArchive(input: Readable, store: ImageStore): Promise<string[]> {
  const tx = new Rollback(store);
  let tmp: string | undefined;
  try {
    tmp = await makeTempDir(store, 'tmp-load-');
    const u = await unpackOuter(input, tmp);
    let plan: PlannedImage[];
    if (u.has('manifest.json')) {
      plan = await planDockerArchive(u);
      if (u.has('index.json')) await adoptOciManifests(u, plan);
    } else if (u.has('index.json')) plan = await planOciLayout(u);
    else throw invalid('not an image archive: neither manifest.json nor index.json found');
    if (plan.length === 0) throw invalid('the archive holds no images');

    // verify every layer against its diff ID before touching the stores
    for (const img of plan) {
      for (const [i, l] of img.layers.entries()) {
        const got = await u.diffId(l.rel).catch((err: unknown) => {
          throw invalid(`${img.what}: layer ${i + 1} (${l.rel}) cannot be read: ${errorMessage(err)}`);
        });
        if (got !== l.diffId) throw invalid(`${img.what}: layer ${i + 1} (${l.rel}) does not match its diff ID: expected ${l.diffId}, content is ${got}`);
      }
    }

    // blobs and unpacked layers
    const layerRefs: LayerRef[][] = [];
    for (const img of plan) {
      const refs: LayerRef[] = [];
      let parent: Digest | undefined;
      for (const [i, l] of img.layers.entries()) {
        if (!(await store.content.has(l.blob.digest))) {
          tx.blobs.push(l.blob.digest);
          await store.content.put(createReadStream(l.file), l.blob.digest);
        }
        const chainId = parent ? sha256(`${parent} ${l.diffId}`) : l.diffId;
        if (!(await store.layers.has(chainId))) tx.chains.push(chainId);
        const meta = await store.layers.apply(createReadStream(l.file), parent, l.diffId).catch((err: unknown) => {
          throw invalid(`${img.what}: layer ${i + 1} (${l.rel}): ${errorMessage(err)}`);
        });
        refs.push({ chainId: meta.chainId, diffId: meta.diffId, size: meta.size, blob: l.blob });
        parent = meta.chainId;
      }
      layerRefs.push(refs);
    }

    // images and tags
    const lines: string[] = [];
    for (const [k, img] of plan.entries()) {
      const refs = layerRefs[k]!;
      const cfgBytes = await fs.readFile(img.configFile);
      const id = sha256(cfgBytes);
      const manifest = img.manifest ?? ociManifest(cfgBytes, id, refs);
      const existed = store.byId(id) !== undefined;
      for (const d of [id, sha256(manifest)]) {
        if (!(await store.content.has(d)) && !tx.blobs.includes(d)) tx.blobs.push(d);
      }
      await store.add(img.config, refs, { manifest, repoDigests: img.repoDigests, configBytes: cfgBytes });
      if (!existed) tx.images.push(id);
      if (img.tags.length === 0) {
        lines.push(`Loaded image ID: ${id}`);
        continue;
      }
      for (const t of img.tags) {
        const prev = store.hasTag(t) ? store.find(t)?.id : undefined;
        tx.tags.push({ tag: t, prev });
        await store.tag(id, t);
        const shown = familiarTagged(parseReference(t));
        if (prev && prev !== id) lines.push(`The image ${shown} already exists, renaming the old one with ID ${prev} to empty string`);
        lines.push(`Loaded image: ${shown}`);
      }
    }
    return lines;
  } catch (err) {
    await tx.undo();
    throw loadError('invalid image archive', err);
  } finally {
    if (tmp) await removeTree(tmp);
  }
}

// ---------------------------------------------------------------------------------------------
// docker save

interface SaveImage {
  image: Image;
  /** Familiar "repo:tag" names to record. */
  tags: string[];
}

interface PreparedImage extends SaveImage {
  manifestBytes: Buffer;
  manifestDigest: Digest;
  manifestType: string;
  /** Manifest bytes that are not in the content store (generated). */
  manifestGenerated: boolean;
  layerBlobs: Digest[];
  blobs: Digest[];
}

/** Resolve refs to images and the tags to write. A bare repository name means all its tags (as Docker). */
function planSave(store: ImageStore, refs: string[]): SaveImage[] {
  if (refs.length === 0) throw invalid('docker save: no images given');
  const byId = new Map<Digest, SaveImage>();
  const add = (image: Image, tag?: string) => {
    let s = byId.get(image.id);
    if (!s) {
      s = { image, tags: [] };
      byId.set(image.id, s);
    }
    if (tag && !s.tags.includes(tag)) s.tags.push(tag);
  };
  for (const ref of refs) {
    let parsed;
    try {
      parsed = parseReference(ref);
    } catch {
      parsed = undefined;
    }
    const idLike = isDigest(ref) || /^[a-f0-9]{64}$/.test(ref);
    if (parsed && !idLike && !parsed.tag && !parsed.digest) {
      const repo = familiarRepo(parsed);
      let hits = 0;
      for (const img of store.list()) {
        for (const t of img.repoTags) {
          if (familiarRepo(parseReference(t)) === repo) {
            add(img, t);
            hits++;
          }
        }
      }
      if (hits > 0) continue;
    }
    const img = store.resolve(ref);
    const viaTag = parsed && !idLike && !parsed.digest && store.hasTag(ref) && store.find(ref)?.id === img.id;
    add(img, viaTag ? store.tagKey(ref) : undefined);
  }
  return [...byId.values()];
}

export async function prepareImages(store: ImageStore, plan: SaveImage[]): Promise<PreparedImage[]> {
  const out: PreparedImage[] = [];
  for (const s of plan) {
    const { image } = s;
    if (!(await store.content.has(image.id))) throw notFound(`image ${image.id}: config blob is missing`);
    const layerBlobs = image.layers.map((l) => l.blob.digest);
    for (const d of layerBlobs) if (!(await store.content.has(d))) throw notFound(`image ${image.id}: layer blob ${d} is missing`);
    // the stored manifest when it is present and consistent, else one made from the record
    let manifestBytes: Buffer | undefined;
    let manifestGenerated = false;
    let manifest: ImageManifest | undefined;
    if (await store.content.has(image.manifest)) {
      try {
        const bytes = await store.content.read(image.manifest);
        const m = JSON.parse(bytes.toString('utf8')) as ImageManifest;
        let ok = m?.config?.digest === image.id && Array.isArray(m.layers) && m.layers.length === image.layers.length;
        for (const l of ok ? m.layers : []) if (!(await store.content.has(l.digest))) ok = false;
        if (ok) {
          manifestBytes = bytes;
          manifest = m;
        }
      } catch {
        manifestBytes = undefined;
      }
    }
    if (!manifestBytes || !manifest) {
      const cfgBytes = await store.content.read(image.id);
      manifestBytes = ociManifest(cfgBytes, image.id, image.layers);
      manifest = JSON.parse(manifestBytes.toString('utf8')) as ImageManifest;
      manifestGenerated = true;
    }
    const manifestDigest = sha256(manifestBytes);
    const blobs = [...new Set<Digest>([...layerBlobs, ...manifest.layers.map((l) => l.digest), image.id])];
    if (!manifestGenerated) blobs.push(manifestDigest);
    out.push({
      ...s,
      manifestBytes,
      manifestDigest,
      manifestType: manifest.mediaType ?? MediaType.OciManifest,
      manifestGenerated,
      layerBlobs,
      blobs,
    });
  }
  return out;
}

function fullName(tag: string): { name: string; tag: string } {
  const r = parseReference(tag);
  const t = r.tag ?? 'latest';
  return { name: `${r.domain}/${r.path}:${t}`, tag: t };
}

type EntryHeader = Partial<tar.Header> & { name: string };

function writeEntry(pack: tar.Pack, header: EntryHeader, body?: Buffer | Readable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const h: EntryHeader = { mode: 0o644, uid: 0, gid: 0, mtime: SAVE_MTIME, ...header };
    const done = (err?: Error | null) => (err ? reject(err) : resolve());
    if (body === undefined) {
      pack.entry(h, done);
      return;
    }
    if (Buffer.isBuffer(body)) {
      pack.entry(h, body, done);
      return;
    }
    const sink = pack.entry(h, done);
    body.once('error', (err) => {
      sink.destroy(err);
      reject(err);
    });
    body.pipe(sink);
  });
}

async function writeArchive(store: ImageStore, pack: tar.Pack, images: PreparedImage[]): Promise<void> {
  await writeEntry(pack, { name: 'blobs/', type: 'directory', mode: 0o755 });
  await writeEntry(pack, { name: 'blobs/sha256/', type: 'directory', mode: 0o755 });
  const written = new Set<Digest>();
  for (const img of images) {
    for (const d of img.blobs) {
      if (written.has(d)) continue;
      written.add(d);
      const size = await store.content.size(d);
      await writeEntry(pack, { name: `blobs/sha256/${hexOf(d)}`, size }, store.content.stream(d));
    }
    if (img.manifestGenerated && !written.has(img.manifestDigest)) {
      written.add(img.manifestDigest);
      await writeEntry(pack, { name: `blobs/sha256/${hexOf(img.manifestDigest)}` }, img.manifestBytes);
    }
  }
  const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
  const manifestJson: Array<{ Config: string; RepoTags: string[]; Layers: string[] }> = [];
  const repositories: Record<string, Record<string, string>> = {};
  for (const img of images) {
    const desc: Descriptor = { mediaType: img.manifestType, digest: img.manifestDigest, size: img.manifestBytes.length };
    if (img.tags.length === 0) index.manifests.push(desc);
    for (const t of img.tags) {
      const n = fullName(t);
      index.manifests.push({ ...desc, annotations: { [ANN_CONTAINERD_NAME]: n.name, [ANN_REF_NAME]: n.tag } });
      const top = img.layerBlobs[img.layerBlobs.length - 1];
      if (top) {
        const r = parseReference(t);
        (repositories[familiarRepo(r)] ??= {})[r.tag ?? 'latest'] = hexOf(top);
      }
    }
    manifestJson.push({
      Config: `blobs/sha256/${hexOf(img.image.id)}`,
      RepoTags: img.tags,
      Layers: img.layerBlobs.map((d) => `blobs/sha256/${hexOf(d)}`),
    });
  }
  await writeEntry(pack, { name: 'index.json' }, Buffer.from(JSON.stringify(index)));
  await writeEntry(pack, { name: 'manifest.json' }, Buffer.from(JSON.stringify(manifestJson)));
  await writeEntry(pack, { name: 'oci-layout' }, Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
  if (Object.keys(repositories).length) await writeEntry(pack, { name: 'repositories' }, Buffer.from(JSON.stringify(repositories)));
}

function streamArchive(store: ImageStore, prepared: Promise<PreparedImage[]>): Readable {
  const pack = tar.pack();
  void (async () => {
    try {
      await writeArchive(store, pack, await prepared);
      pack.finalize();
    } catch (err) {
      pack.destroy(err as Error);
    }
  })();
  return Readable.from(pack as AsyncIterable<Buffer>, { objectMode: false });
}

/**
 * `docker save` with every check done before the first byte: unknown refs and missing blobs are thrown here.
 */
export async function prepareSave(store: ImageStore, refs: string[]): Promise<Readable> {
  const prepared = await prepareImages(store, planSave(store, refs));
  return streamArchive(store, Promise.resolve(prepared));
}

/**
 * `docker save`: a tar in the Docker 25+ layout (OCI image layout plus manifest.json and repositories).
 * Unknown refs throw synchronously; a blob missing from the store fails the stream (use prepareSave to check first).
 */
export function saveArchive(store: ImageStore, refs: string[]): Readable {
  const plan = planSave(store, refs);
  const prepared = prepareImages(store, plan);
  prepared.catch(() => undefined); // reported through the stream
  return streamArchive(store, prepared);
}

// ---------------------------------------------------------------------------------------------
// docker import

/** Split words shell-style: whitespace separates, quotes group, backslash escapes. */
function splitWords(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
      continue;
    }
    if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw invalid(`unterminated quote in ${JSON.stringify(s)}`);
  if (inWord) out.push(cur);
  return out;
}

/** JSON array form when it parses as a list of strings, otherwise undefined. */
function jsonArray(rest: string): string[] | undefined {
  if (!rest.startsWith('[')) return undefined;
  try {
    const v = JSON.parse(rest) as unknown;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  } catch {
    // shell form
  }
  return undefined;
}

function keyValues(instr: string, rest: string): Array<[string, string]> {
  const words = splitWords(rest);
  if (words.length === 0) throw invalid(`${instr} requires at least one argument`);
  if (!words[0]!.includes('=')) {
    // legacy "KEY value with spaces"
    const m = /^(\S+)\s+([\s\S]*)$/.exec(rest.trim());
    if (!m) throw invalid(`${instr} ${words[0]} needs a value (${instr} key=value or ${instr} key value)`);
    const value = splitWords(m[2]!).join(' ');
    return [[splitWords(m[1]!)[0] ?? m[1]!, value]];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) throw invalid(`${instr}: ${JSON.stringify(w)} is not key=value`);
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}

const CHANGE_INSTRUCTIONS = ['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'LABEL', 'USER', 'VOLUME', 'WORKDIR', 'STOPSIGNAL'];

/** Apply `--change` Dockerfile instructions to a runtime config. */
export function applyChanges(cfg: ImageRuntimeConfig, changes: string[]): ImageRuntimeConfig {
  for (const raw of changes) {
    const line = raw.replace(/\\\r?\n/g, ' ').trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(\S+)(?:\s+([\s\S]*))?$/.exec(line)!;
    const instr = m[1]!.toUpperCase();
    const rest = (m[2] ?? '').trim();
    if (!CHANGE_INSTRUCTIONS.includes(instr)) {
      throw invalid(`${m[1]} is not a valid change command (allowed: ${CHANGE_INSTRUCTIONS.join(', ')})`);
    }
    switch (instr) {
      case 'CMD':
      case 'ENTRYPOINT': {
        if (!rest) throw invalid(`${instr} requires at least one argument`);
        const cmd = jsonArray(rest) ?? ['/bin/sh', '-c', rest];
        if (instr === 'CMD') cfg.Cmd = cmd;
        else cfg.Entrypoint = cmd;
        break;
      }
      case 'ENV': {
        const env = [...(cfg.Env ?? [])];
        for (const [k, v] of keyValues(instr, rest)) {
          const i = env.findIndex((e) => e.split('=')[0] === k);
          if (i >= 0) env[i] = `${k}=${v}`;
          else env.push(`${k}=${v}`);
        }
        cfg.Env = env;
        break;
      }
      case 'LABEL': {
        const labels = { ...(cfg.Labels ?? {}) };
        for (const [k, v] of keyValues(instr, rest)) labels[k] = v;
        cfg.Labels = labels;
        break;
      }
      case 'EXPOSE': {
        const words = splitWords(rest);
        if (words.length === 0) throw invalid('EXPOSE requires at least one argument');
        const ports = { ...(cfg.ExposedPorts ?? {}) };
        for (const w of words) {
          const pm = /^(\d{1,5})(?:-(\d{1,5}))?(?:\/(tcp|udp|sctp))?$/i.exec(w);
          const lo = pm ? Number(pm[1]) : NaN;
          const hi = pm?.[2] ? Number(pm[2]) : lo;
          if (!pm || lo < 1 || hi > 65535 || hi < lo || hi - lo > 1024) throw invalid(`EXPOSE: invalid port ${JSON.stringify(w)}`);
          const proto = (pm[3] ?? 'tcp').toLowerCase();
          for (let p = lo; p <= hi; p++) ports[`${p}/${proto}`] = {};
        }
        cfg.ExposedPorts = ports;
        break;
      }
      case 'VOLUME': {
        const vols = jsonArray(rest) ?? splitWords(rest);
        if (vols.length === 0 || vols.some((v) => !v.trim())) throw invalid('VOLUME requires at least one non-empty path');
        const out = { ...(cfg.Volumes ?? {}) };
        for (const v of vols) out[v] = {};
        cfg.Volumes = out;
        break;
      }
      case 'USER':
        if (!rest || /\s/.test(rest)) throw invalid('USER requires exactly one argument');
        cfg.User = rest;
        break;
      case 'WORKDIR':
        if (!rest) throw invalid('WORKDIR requires exactly one argument');
        cfg.WorkingDir = path.posix.resolve(cfg.WorkingDir || '/', splitWords(rest).join(' ') || rest);
        break;
      case 'STOPSIGNAL':
        if (!/^(?:(?:SIG)?[A-Z][A-Z0-9+-]*|\d{1,2})$/i.test(rest)) throw invalid(`STOPSIGNAL: invalid signal ${JSON.stringify(rest)}`);
        cfg.StopSignal = rest;
        break;
    }
  }
  return cfg;
}

/**
 * `docker import`: a rootfs tar (plain or compressed) becomes a one-layer image. The tar is kept as the layer's blob.
 */
export async function importRootfs(
  input: Readable,
  store: ImageStore,
  opts: { changes?: string[]; message?: string; ref?: string },
): Promise<Image> {
  // check everything the caller gave before reading the body
  let runtime: ImageRuntimeConfig;
  try {
    runtime = applyChanges({}, opts.changes ?? []);
    if (opts.ref) {
      const r = parseReference(opts.ref);
      if (r.digest) throw invalid(`cannot tag with a digest reference: ${opts.ref}`);
    }
  } catch (err) {
    input.resume();
    throw loadError('import', err);
  }
  const tx = new Rollback(store);
  let tmp: string | undefined;
  try {
    tmp = await makeTempDir(store, 'tmp-import-');
    const file = path.join(tmp, 'rootfs.tar');
    const hashing = new HashingStream();
    await pipeline(input, hashing, createWriteStream(file, { mode: 0o600, flags: 'wx' }));
    const blobDigest = hashing.hasher.digest();
    const blobSize = hashing.hasher.size;
    if (blobSize === 0) throw invalid('empty rootfs tar');
    const diffId = await diffIdOf(file).catch((err: unknown) => {
      throw invalid(`cannot read rootfs tar: ${errorMessage(err)}`);
    });
    if (!(await store.content.has(blobDigest))) {
      tx.blobs.push(blobDigest);
      await store.content.put(createReadStream(file), blobDigest);
    }
    if (!(await store.layers.has(diffId))) tx.chains.push(diffId);
    const meta = await store.layers.apply(createReadStream(file), undefined, diffId);
    const created = new Date().toISOString();
    const comment = opts.message ?? 'Imported from -';
    const config: ImageConfig = {
      architecture: 'amd64',
      os: 'linux',
      created,
      comment,
      config: runtime,
      rootfs: { type: 'layers', diff_ids: [diffId] },
      history: [{ created, created_by: '', comment }],
    };
    const refs: LayerRef[] = [
      { chainId: meta.chainId, diffId: meta.diffId, size: meta.size, blob: { mediaType: await layerMediaType(file), digest: blobDigest, size: blobSize } },
    ];
    const cfgBytes = Buffer.from(JSON.stringify(config));
    const id = sha256(cfgBytes);
    const manifest = ociManifest(cfgBytes, id, refs);
    for (const d of [id, sha256(manifest)]) if (!(await store.content.has(d))) tx.blobs.push(d);
    const existed = store.byId(id) !== undefined;
    await store.add(config, refs, { manifest });
    if (!existed) tx.images.push(id);
    if (opts.ref) {
      const prev = store.hasTag(opts.ref) ? store.find(opts.ref)?.id : undefined;
      tx.tags.push({ tag: opts.ref, prev });
      await store.tag(id, opts.ref);
    }
    return store.byId(id)!;
  } catch (err) {
    await tx.undo();
    throw loadError('import', err);
  } finally {
    if (tmp) await removeTree(tmp);
  }
}
