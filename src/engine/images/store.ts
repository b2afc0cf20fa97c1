import { promises as fs } from 'node:fs';
import path from 'node:path';
import { atomicWriteJson, ensureDir, readJson, readJsonOr } from '../../lib/fsutil.js';
import { hexOf, isDigest, type Digest } from '../../lib/digest.js';
import { conflict, notFound } from '../../lib/errors.js';
import { familiarRepo, familiarTagged, parseReference } from '../../lib/reference.js';
import { MediaType, type Descriptor, type ImageConfig, type ImageManifest } from '../../lib/oci.js';
import { KeyedLock } from '../../lib/keyedlock.js';
import type { ContentStore } from './content.js';
import type { LayerStore } from '../snapshots/layers.js';

export interface LayerRef {
  chainId: Digest;
  diffId: Digest;
  /** Unpacked size. */
  size: number;
  /** The layer as a blob in the content store (for save and push). */
  blob: Descriptor;
}

export interface ImageRecord {
  id: Digest; // the config digest, as Docker
  manifest: Digest;
  layers: LayerRef[];
  created: string;
  repoDigests: string[];
  /** When the image arrived in this store (Docker's Metadata.LastTagTime is close enough). */
  loadedAt: string;
  /** The image this one was made from here (commit, build): Docker's parent link, local only. */
  parent?: Digest;
}

export interface Image extends ImageRecord {
  config: ImageConfig;
  repoTags: string[];
  size: number;
}

/** Images: records by ID, and the tag → ID map. Survives restarts (everything is on disk). */
export class ImageStore {
  private readonly recordsDir: string;
  private readonly tagsFile: string;
  private records = new Map<Digest, ImageRecord>();
  private configs = new Map<Digest, ImageConfig>();
  private tags = new Map<string, Digest>();
  private readonly lock = new KeyedLock();

  constructor(
    root: string,
    readonly content: ContentStore,
    readonly layers: LayerStore,
  ) {
    this.recordsDir = path.join(root, 'records');
    this.tagsFile = path.join(root, 'tags.json');
  }

  async init(): Promise<void> {
    await ensureDir(this.recordsDir);
    for (const f of await fs.readdir(this.recordsDir)) {
      if (!f.endsWith('.json')) continue;
      try {
        const rec = await readJson<ImageRecord>(path.join(this.recordsDir, f));
        this.records.set(rec.id, rec);
        this.configs.set(rec.id, JSON.parse((await this.content.read(rec.id)).toString('utf8')) as ImageConfig);
      } catch {
        // a record whose config blob is gone is not an image
      }
    }
    const tags = await readJsonOr<Record<string, Digest>>(this.tagsFile, {});
    for (const [t, id] of Object.entries(tags)) if (this.records.has(id)) this.tags.set(t, id);
  }

  private async saveTags(): Promise<void> {
    await atomicWriteJson(this.tagsFile, Object.fromEntries(this.tags));
  }

  private view(rec: ImageRecord): Image {
    const repoTags = [...this.tags].filter(([, id]) => id === rec.id).map(([t]) => t).sort();
    return { ...rec, config: this.configs.get(rec.id)!, repoTags, size: rec.layers.reduce((a, l) => a + l.size, 0) };
  }

  list(): Image[] {
    return [...this.records.values()].map((r) => this.view(r));
  }

  byId(id: Digest): Image | undefined {
    const r = this.records.get(id);
    return r && this.view(r);
  }

  /** Resolve a user's reference: full or short ID, name[:tag], or name@digest. */
  resolve(ref: string): Image {
    const found = this.find(ref);
    if (!found) throw notFound(`No such image: ${ref}`);
    return found;
  }

  find(ref: string): Image | undefined {
    if (isDigest(ref)) return this.byId(ref);
    if (/^[a-f0-9]{64}$/.test(ref)) return this.byId(`sha256:${ref}`);
    let parsed;
    try {
      parsed = parseReference(ref);
    } catch {
      parsed = undefined;
    }
    if (parsed?.digest) {
      const want = `${familiarRepo(parsed)}@${parsed.digest}`;
      for (const r of this.records.values()) if (r.repoDigests.includes(want)) return this.view(r);
    } else if (parsed) {
      const id = this.tags.get(familiarTagged(parsed));
      if (id) return this.byId(id);
    }
    const short = ref.startsWith('sha256:') ? ref.slice(7) : ref;
    if (/^[a-f0-9]{4,63}$/.test(short)) {
      const hits = [...this.records.keys()].filter((id) => hexOf(id).startsWith(short));
      if (hits.length === 1) return this.byId(hits[0]!);
    }
    return undefined;
  }

  /**
   * Add an image from its config and its layers (already in the layer store and as blobs).
   * Writes config and manifest blobs, then the record; returns the image.
   */
  async add(config: ImageConfig, layers: LayerRef[], opts: { repoDigests?: string[]; manifest?: Buffer; configBytes?: Buffer; parent?: Digest } = {}): Promise<Image> {
    // the config's exact bytes define the image ID: keep them when they came from elsewhere
    const cfgBytes = opts.configBytes ?? Buffer.from(JSON.stringify(config));
    const { digest: id } = await this.content.put(cfgBytes);
    const manifestBytes = opts.manifest ?? Buffer.from(JSON.stringify(manifestFor(cfgBytes, id, layers)));
    const { digest: manifest } = await this.content.put(manifestBytes);
    return this.lock.run(id, async () => {
      const prev = this.records.get(id);
      const rec: ImageRecord = {
        id,
        manifest: prev?.manifest ?? manifest,
        layers,
        created: config.created ?? new Date().toISOString(),
        repoDigests: [...new Set([...(prev?.repoDigests ?? []), ...(opts.repoDigests ?? [])])],
        loadedAt: prev?.loadedAt ?? new Date().toISOString(),
      };
      const parent = prev?.parent ?? opts.parent;
      if (parent) rec.parent = parent;
      await atomicWriteJson(path.join(this.recordsDir, `${hexOf(id)}.json`), rec);
      this.records.set(id, rec);
      this.configs.set(id, config);
      return this.view(rec);
    });
  }

  /** Point a tag at an image; returns the image it pointed at before, if any. */
  async tag(id: Digest, ref: string): Promise<Digest | undefined> {
    if (!this.records.has(id)) throw notFound(`No such image: ${id}`);
    const parsed = parseReference(ref);
    if (parsed.digest) throw conflict(`refusing to create a tag with a digest reference: ${ref}`);
    const key = familiarTagged(parsed);
    const prev = this.tags.get(key);
    if (prev === id) return undefined; // a rebuild re-tags what it had: nothing to write (and fsync)
    this.tags.set(key, id);
    await this.saveTags();
    return prev;
  }

  async untag(ref: string): Promise<Digest | undefined> {
    const key = familiarTagged(parseReference(ref));
    const id = this.tags.get(key);
    if (!id) return undefined;
    this.tags.delete(key);
    await this.saveTags();
    return id;
  }

  tagKey(ref: string): string {
    return familiarTagged(parseReference(ref));
  }

  hasTag(ref: string): boolean {
    try {
      return this.tags.has(this.tagKey(ref));
    } catch {
      return false;
    }
  }

  /** Remove an image's record, its tags, its blobs, and layers no other image uses. */
  async remove(id: Digest): Promise<void> {
    const rec = this.records.get(id);
    if (!rec) return;
    for (const [t, tid] of [...this.tags]) if (tid === id) this.tags.delete(t);
    await this.saveTags();
    this.records.delete(id);
    this.configs.delete(id);
    await fs.rm(path.join(this.recordsDir, `${hexOf(id)}.json`), { force: true });
    const usedChains = new Set<Digest>();
    const usedBlobs = new Set<Digest>();
    for (const r of this.records.values()) {
      usedBlobs.add(r.id).add(r.manifest);
      for (const l of r.layers) {
        usedChains.add(l.chainId);
        usedBlobs.add(l.blob.digest);
      }
    }
    for (const l of rec.layers) {
      if (!usedChains.has(l.chainId)) await this.layers.remove(l.chainId);
      if (!usedBlobs.has(l.blob.digest)) await this.content.delete(l.blob.digest);
    }
    if (!usedBlobs.has(rec.id)) await this.content.delete(rec.id);
    if (!usedBlobs.has(rec.manifest)) await this.content.delete(rec.manifest);
  }

  /** Images made from this one here (Docker's children: by parent link; pulled and loaded images have none). */
  children(id: Digest): Image[] {
    return [...this.records.values()].filter((r) => r.parent === id && r.id !== id).map((r) => this.view(r));
  }
}

function manifestFor(cfgBytes: Buffer, id: Digest, layers: LayerRef[]): ImageManifest {
  return {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: id, size: cfgBytes.length },
    layers: layers.map((l) => l.blob),
  };
}

