/** `docker save`: the Docker 25+ layout, readable both as a docker-archive and as an OCI layout. */
import type { Readable } from 'node:stream';
import type tar from 'tar-stream';
import { hexOf, isDigest, sha256, type Digest } from '../../lib/digest.js';
import { invalid, notFound } from '../../lib/errors.js';
import { MediaType, type Descriptor, type ImageIndex, type ImageManifest } from '../../lib/oci.js';
import { familiarRepo, parseReference } from '../../lib/reference.js';
import type { Image, ImageStore } from './store.js';
import { packEntry, packStream, type EntryHeader } from '../../lib/streams.js';
import { ANN_CONTAINERD_NAME, ANN_REF_NAME, SAVE_MTIME, ociManifest } from './archive-common.js';
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

function writeEntry(pack: tar.Pack, header: EntryHeader, body?: Buffer | Readable): Promise<void> {
  return packEntry(pack, { mode: 0o644, uid: 0, gid: 0, mtime: SAVE_MTIME, ...header }, body);
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
  return packStream(async (pack) => writeArchive(store, pack, await prepared));
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

