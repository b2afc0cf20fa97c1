/**
 * New images from existing ones: `docker commit` (a container's writable layer on top of its image) and the
 * derivation the builder shares (a parent, maybe a layer, a config, one more history entry).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import type { Digest } from '../../lib/digest.js';
import { internal, invalid, notFound } from '../../lib/errors.js';
import { MediaType, type HealthConfig, type HistoryEntry, type ImageConfig, type ImageRuntimeConfig } from '../../lib/oci.js';
import { parseReference } from '../../lib/reference.js';
import type { Image, ImageStore, LayerRef } from './store.js';
import { addImage, Rollback } from './archive-common.js';
import { applyChanges } from './changes.js';
import { overlayEnv } from '../containers/parse.js';
import { changes as upperChanges, isOpaque, lowerExistsIn, lowerStat, treeToTar, upperToLayer, type Change } from '../snapshots/diff.js';
import type { ContainerService } from '../containers/service.js';
import type { ContainerConfig, ContainerRecord } from '../containers/model.js';
import type { EventBus } from '../events.js';
import { KeyedLock } from '../../lib/keyedlock.js';

export interface DeriveOptions {
  /** The new layer as an uncompressed tar; none (or a tar without entries) adds no layer. */
  layer?: Readable;
  /** The new image's runtime config, as is. */
  config: ImageRuntimeConfig;
  /** The history entry this step adds (`empty_layer` is set when no layer is added). */
  history: { created_by: string; comment?: string; author?: string };
  author?: string;
  comment?: string;
  /** A name to tag the new image with. */
  ref?: string;
  /** Defaults to now. */
  created?: string;
  /** Allow device nodes in the layer (it holds a local container's own files). */
  devices?: boolean;
}

/** Refuse a reference an image cannot be tagged with, before any work is done. */
export function checkTagRef(ref: string | undefined): void {
  if (!ref) return;
  const r = parseReference(ref);
  if (r.digest) throw invalid(`refusing to create a tag with a digest reference: ${ref}`);
}

/** Passes bytes through, noting whether any is non-zero: a tar of zero blocks only has no entries. */
class ContentWatch extends Transform {
  sawContent = false;
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    if (!this.sawContent && chunk.some((b) => b !== 0)) this.sawContent = true;
    cb(null, chunk);
  }
}

/**
 * A new image: the parent's layers (plus `layer` unless it is empty, as Docker drops empty commit layers), the
 * parent's history plus one entry, `config` as its runtime config, and the parent recorded as its parent.
 * The layer blob stays uncompressed (as dockerd keeps local diffs). All or nothing: a failure leaves no blob,
 * layer, image or tag behind.
 */
export async function deriveImage(store: ImageStore, parent: Image | undefined, o: DeriveOptions): Promise<Image> {
  try {
    checkTagRef(o.ref);
  } catch (err) {
    o.layer?.destroy();
    throw err;
  }
  const tx = new Rollback(store);
  try {
    const layers: LayerRef[] = [...(parent?.layers ?? [])];
    const diffIds: Digest[] = [...(parent?.config.rootfs.diff_ids ?? [])];
    let added = false;
    if (o.layer) {
      // one pass: the tar goes into the content store and into its layer directory at once (no temp copy)
      const watch = new ContentWatch();
      const toBlob = new PassThrough({ highWaterMark: 1 << 20 });
      const toLayer = new PassThrough({ highWaterMark: 1 << 20 });
      const src = o.layer.pipe(watch);
      src.pipe(toBlob);
      src.pipe(toLayer);
      o.layer.once('error', (err) => {
        toBlob.destroy(err);
        toLayer.destroy(err);
      });
      const below = layers[layers.length - 1]?.chainId;
      const [blob, layer] = await Promise.allSettled([store.content.put(toBlob), store.layers.apply(toLayer, below, undefined, { devices: o.devices })]);
      if (blob.status === 'fulfilled' && blob.value.created) tx.blobs.push(blob.value.digest);
      if (layer.status === 'fulfilled' && layer.value.created) tx.chains.push(layer.value.chainId);
      if (blob.status === 'rejected') throw blob.reason;
      if (layer.status === 'rejected') throw layer.reason;
      const diffId = blob.value.digest;
      if (layer.value.diffId !== diffId) throw internal(`layer ${layer.value.diffId} and blob ${diffId} of one commit differ`);
      if (watch.sawContent) {
        layers.push({ chainId: layer.value.chainId, diffId, size: layer.value.size, blob: { mediaType: MediaType.OciLayer, digest: diffId, size: blob.value.size } });
        diffIds.push(diffId);
        added = true;
      } else {
        // nothing changed: Docker adds no layer (what was stored for it goes, unless it was there before)
        await tx.undo();
        tx.blobs.length = 0;
        tx.chains.length = 0;
      }
    }
    const created = o.created ?? new Date().toISOString();
    const entry: HistoryEntry = { created, created_by: o.history.created_by };
    if (o.history.author) entry.author = o.history.author;
    if (o.history.comment) entry.comment = o.history.comment;
    if (!added) entry.empty_layer = true;
    const config: ImageConfig = {
      architecture: parent?.config.architecture ?? 'amd64',
      os: parent?.config.os ?? 'linux',
      ...(parent?.config.variant ? { variant: parent.config.variant } : {}),
      created,
      ...(o.author ? { author: o.author } : {}),
      ...(o.comment ? { comment: o.comment } : {}),
      config: o.config,
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: [...historyOf(parent), entry],
    };
    return await addImage(store, tx, config, layers, { ref: o.ref, parent: parent?.id });
  } catch (err) {
    o.layer?.destroy();
    await tx.undo();
    throw err;
  }
}

/** The parent's history; one entry per layer when it has none, so entries and layers still line up. */
function historyOf(parent: Image | undefined): HistoryEntry[] {
  if (!parent) return [];
  if (parent.config.history?.length) return parent.config.history;
  return parent.layers.map(() => ({ created: parent.created, created_by: '' }));
}

/** The image-config part of a container's Config. */
export function runtimeConfigOf(c: Partial<ContainerConfig>): ImageRuntimeConfig {
  const out: ImageRuntimeConfig = {};
  if (c.User) out.User = c.User;
  if (c.ExposedPorts && Object.keys(c.ExposedPorts).length) out.ExposedPorts = { ...c.ExposedPorts };
  if (c.Env?.length) out.Env = [...c.Env];
  if (c.Entrypoint) out.Entrypoint = [...c.Entrypoint];
  if (c.Cmd) out.Cmd = [...c.Cmd];
  if (c.Volumes && Object.keys(c.Volumes).length) out.Volumes = { ...c.Volumes };
  if (c.WorkingDir) out.WorkingDir = c.WorkingDir;
  if (c.Labels && Object.keys(c.Labels).length) out.Labels = { ...c.Labels };
  if (c.StopSignal) out.StopSignal = c.StopSignal;
  if (c.Healthcheck) out.Healthcheck = { ...c.Healthcheck };
  if (c.OnBuild?.length) out.OnBuild = [...c.OnBuild];
  return out;
}

/** Docker's commit merge: what the user's config leaves unset comes from the container's (daemon/commit.go). */
export function mergeRuntimeConfig(user: ImageRuntimeConfig, base: ImageRuntimeConfig): ImageRuntimeConfig {
  const u: ImageRuntimeConfig = { ...user };
  if (!u.User && base.User) u.User = base.User;
  if (!u.ExposedPorts || !Object.keys(u.ExposedPorts).length) {
    if (base.ExposedPorts) u.ExposedPorts = { ...base.ExposedPorts };
  } else if (base.ExposedPorts) u.ExposedPorts = { ...base.ExposedPorts, ...u.ExposedPorts };
  if (u.Env?.length || base.Env) u.Env = overlayEnv(u.Env, base.Env);
  if (base.Labels) u.Labels = { ...base.Labels, ...(u.Labels ?? {}) };
  if (!u.Entrypoint?.length) {
    if (!u.Cmd?.length && base.Cmd) u.Cmd = base.Cmd;
    if (u.Entrypoint === undefined && base.Entrypoint) u.Entrypoint = base.Entrypoint;
  }
  if (base.Healthcheck) u.Healthcheck = fillHealthcheck(u.Healthcheck, base.Healthcheck);
  if (!u.WorkingDir && base.WorkingDir) u.WorkingDir = base.WorkingDir;
  if (base.Volumes) u.Volumes = { ...(u.Volumes ?? {}), ...base.Volumes };
  if (!u.StopSignal && base.StopSignal) u.StopSignal = base.StopSignal;
  return u;
}

function fillHealthcheck(user: HealthConfig | undefined, base: HealthConfig): HealthConfig {
  if (!user) return { ...base };
  const h = { ...user };
  if (!h.Test?.length) h.Test = base.Test;
  for (const k of ['Interval', 'Timeout', 'StartPeriod', 'StartInterval', 'Retries'] as const) if (!h[k] && base[k]) h[k] = base[k];
  return h;
}

export interface CommitOptions {
  /** The image's runtime config as is (the builder's). Without it: the container's config, Docker's way. */
  config?: ImageRuntimeConfig;
  /** A container Config sent with the API request: taken over the container's, which fills what it leaves unset. */
  containerConfig?: Partial<ContainerConfig> | null;
  /** `--change` Dockerfile instructions, applied to the config. */
  changes?: string[];
  /** `-m`: the image's and the history entry's comment. */
  comment?: string;
  /** `-a`. */
  author?: string;
  /** Freeze a running container while its layer is read (default true). */
  pause?: boolean;
  /** `repo[:tag]` for the new image. */
  ref?: string;
  /** The history entry's created_by; default the container's command, as Docker. */
  createdBy?: string;
}

/**
 * Mount points the runtime makes in a container's root when the image lacks them: Docker keeps them in an init
 * layer, so they are no change of the container's. Relative paths.
 */
const RUNTIME_MOUNT_POINTS = ['etc/hosts', 'etc/hostname', 'etc/resolv.conf', 'sbin/docker-init', 'proc', 'sys', 'dev', '.dockerenv'];

/** `docker commit`, `docker diff`, `docker export`: a container's filesystem, read while it stays put. */
export class CommitService {
  private readonly lock = new KeyedLock();

  constructor(
    private readonly d: {
      containers: ContainerService;
      store: ImageStore;
      /** A layer's diff dir by chain ID. */
      diffDir: (chainId: Digest) => string;
      events: EventBus;
    },
  ) {}

  private upperOf(rec: ContainerRecord): string {
    return this.d.containers.d.snapshots.dirs(this.d.containers.fsBase(rec.Id)).upper;
  }

  /** The image's layer dirs, top first. */
  private lowersOf(rec: ContainerRecord): string[] {
    return rec.ImageChain.map((c) => this.d.diffDir(c as Digest)).reverse();
  }

  /**
   * The runtime's own mount points in the upper dir (empty, and not in the image), and a directory copied up only
   * to hold them with its mode and owner unchanged: left out of commits and diffs.
   */
  private async runtimeEntries(upper: string, lowers: string[]): Promise<Set<string>> {
    const out = new Set<string>();
    for (const p of RUNTIME_MOUNT_POINTS) {
      const st = await fs.lstat(path.join(upper, p)).catch(() => undefined);
      if (!st) continue;
      const empty = st.isFile() ? st.size === 0 : st.isDirectory() ? (await fs.readdir(path.join(upper, p))).length === 0 : false;
      if (empty && !(await lowerStat(lowers, p))) out.add(p);
    }
    for (const dir of new Set([...out].map((p) => path.posix.dirname(p)).filter((d) => d !== '.'))) {
      const names = await fs.readdir(path.join(upper, dir)).catch(() => [] as string[]);
      if (!names.every((n) => out.has(`${dir}/${n}`))) continue;
      const st = await fs.lstat(path.join(upper, dir));
      const low = await lowerStat(lowers, dir);
      if (!low?.isDirectory() || (low.mode & 0o7777) !== (st.mode & 0o7777) || low.uid !== st.uid || low.gid !== st.gid) continue;
      if (await isOpaque(path.join(upper, dir))) continue;
      out.add(dir);
    }
    return out;
  }

  /** `docker commit`. Checks its input first: a bad reference or change fails with nothing made. */
  async commit(ref: string, o: CommitOptions = {}): Promise<Image> {
    const rec = this.d.containers.get(ref);
    checkTagRef(o.ref);
    const own = runtimeConfigOf(rec.Config);
    let config: ImageRuntimeConfig;
    if (o.config) config = applyChanges(structuredClone(o.config), o.changes ?? []);
    else {
      const user = o.containerConfig ? runtimeConfigOf(o.containerConfig) : structuredClone(own);
      config = mergeRuntimeConfig(applyChanges(user, o.changes ?? []), own);
    }
    const parent = this.d.store.byId(rec.Image as Digest);
    if (!parent) throw notFound(`image ${rec.Image} of container ${rec.Name} is no longer there`);
    // one commit of a container at a time: another's unpause must not thaw it while this one reads
    return this.lock.run(rec.Id, () => this.commitLocked(rec, parent, config, o));
  }

  private async commitLocked(rec: ContainerRecord, parent: Image, config: ImageRuntimeConfig, o: CommitOptions): Promise<Image> {
    // as in Docker, one that cannot be paused (it has just exited) is committed as it is
    const pause = (o.pause ?? true) && rec.State.Status === 'running' && (await this.d.containers.pause(rec.Id).then(() => true, () => false));
    let img: Image;
    try {
      img = await this.d.containers.withRootfs(rec.Id, async () => {
        const upper = this.upperOf(rec);
        const exclude = await this.runtimeEntries(upper, this.lowersOf(rec));
        return deriveImage(this.d.store, parent, {
          layer: upperToLayer(upper, { exclude }),
          config,
          history: { created_by: o.createdBy ?? (rec.Config.Cmd ?? []).join(' '), comment: o.comment, author: o.author },
          author: o.author,
          comment: o.comment,
          ref: o.ref,
          devices: true,
        });
      });
      // Docker's order: pause, commit, (tag), unpause
      this.d.events.emit('container', 'commit', rec.Id, { ...this.d.containers.attrs(rec), comment: o.comment ?? '', imageID: img.id, imageRef: o.ref ? this.d.store.tagKey(o.ref) : '' });
      if (o.ref) this.d.events.emit('image', 'tag', img.id, { name: this.d.store.tagKey(o.ref) });
    } finally {
      if (pause) await this.d.containers.unpause(rec.Id).catch(() => undefined);
    }
    return img;
  }

  /** `docker diff`. */
  async changes(ref: string): Promise<Change[]> {
    return this.d.containers.withRootfs(ref, async (_root, rec) => {
      const upper = this.upperOf(rec);
      const lowers = this.lowersOf(rec);
      return upperChanges(upper, lowerExistsIn(lowers), { exclude: await this.runtimeEntries(upper, lowers) });
    });
  }

  /** `docker export`: the merged root as a tar, handed to `write` while it stays mounted. */
  async export(ref: string, write: (tar: Readable) => Promise<void>): Promise<void> {
    await this.d.containers.withRootfs(ref, async (root, rec) => {
      await write(treeToTar(root));
      this.d.events.emit('container', 'export', rec.Id, this.d.containers.attrs(rec));
    });
  }
}
