/** `docker load`: docker-archive and OCI image layout tars, verified before anything is kept. */
import { promises as fs, createReadStream, createWriteStream } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { HashingStream, hexOf, isDigest, sha256, type Digest } from '../../lib/digest.js';
import { errorMessage, invalid } from '../../lib/errors.js';
import { MediaType, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest } from '../../lib/oci.js';
import { familiarRepo, familiarTagged, parseReference } from '../../lib/reference.js';
import { decompressed, safeEntryPath } from '../../lib/tarsafe.js';
import { removeTree } from '../../lib/fsutil.js';
import type { ImageStore, LayerRef } from './store.js';
import { BLOB_PATH_RE, LEGACY_CONFIG_RE, ANN_CONTAINERD_NAME, ANN_REF_NAME, MAX_LINK_HOPS, MAX_INDEX_DEPTH, loadError, makeTempDir, diffIdOf, layerMediaType, parseJson, validateConfig, ociManifest, Rollback, isAttestation } from './archive-common.js';
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

