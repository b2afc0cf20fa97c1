/**
 * `docker pull`: resolve a reference to a linux/amd64 image manifest (mirrors first, then the origin),
 * then fetch its layers, several at a time. Each layer streams from the registry into the content store
 * (blob digest verified) and, at the same time, into the layer store (unpacked, diff ID verified): layers
 * are independent directories keyed by chain ID, so they unpack in parallel and out of order.
 */
import { PassThrough, Readable, Transform, type TransformCallback } from 'node:stream';
import { chainIds, isDigest, type Digest } from '../../lib/digest.js';
import { SampanError, errorMessage, internal, invalid } from '../../lib/errors.js';
import { MediaType, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest } from '../../lib/oci.js';
import { familiarRepo, familiarTagged, parseReference, type Reference } from '../../lib/reference.js';
import type { Logger } from '../../lib/log.js';
import type { Image, ImageStore, LayerRef } from '../images/store.js';
import type { LayerMeta } from '../snapshots/layers.js';
import { isAttestation, validateConfig } from '../images/archive-common.js';
import type { AuthConfig } from '../../lib/distribution/auth.js';
import { DistributionError, type Registries, type RepoClient } from '../../lib/distribution/client.js';
import { shortDigest, type ProgressWriter } from './progress.js';
import { STATUS } from '../../lib/http/status.js';

/** Layers fetched at once (Docker's default max-concurrent-downloads). */
export const PULL_CONCURRENCY = 3;
const MAX_INDEX_DEPTH = 4;
const ATTEMPTS = 3;

const INDEX_TYPES: ReadonlySet<string> = new Set([MediaType.OciIndex, MediaType.DockerManifestList]);
const MANIFEST_TYPES: ReadonlySet<string> = new Set([MediaType.OciManifest, MediaType.DockerManifest]);

export interface PullTarget {
  ref: Reference;
  /** "repo:tag" or "repo@digest" as Docker shows it. */
  display: string;
  client: RepoClient;
  /** What the reference points at (an index or a manifest): the RepoDigest. */
  topDigest: Digest;
  manifest: ImageManifest;
  manifestBytes: Buffer;
  config: ImageConfig;
  configBytes: Buffer;
  configDigest: Digest;
}

/** A reference with `tag` folded in, defaulting to latest when there is neither tag nor digest. */
export function pullReference(image: string, tag?: string): Reference {
  let s = image.trim();
  if (tag) s = isDigest(tag) ? `${s}@${tag}` : `${s}:${tag}`;
  const ref = parseReference(s);
  if (!ref.tag && !ref.digest) ref.tag = 'latest';
  if (ref.tag && ref.digest) delete ref.tag; // a digest names the content; the tag adds nothing
  return ref;
}

function displayOf(ref: Reference): string {
  return ref.digest ? `${familiarRepo(ref)}@${ref.digest}` : familiarTagged(ref);
}

/** Docker's wording for a failed resolve; the status follows what the registry said. */
function pullError(err: unknown, ref: Reference): SampanError {
  if (!(err instanceof DistributionError)) return err instanceof SampanError ? err : internal(errorMessage(err), err);
  const repo = familiarRepo(ref);
  const said = err.said ?? err.message;
  if (err.status === 404 && (err.registryCode === 'MANIFEST_UNKNOWN' || !err.registryCode) && !ref.digest) {
    return new DistributionError('NOT_FOUND', `manifest for ${displayOf(ref)} not found: ${said}`, STATUS.NOT_FOUND, err.registryCode, err);
  }
  if (err.status === 404 && err.registryCode === 'MANIFEST_UNKNOWN') {
    return new DistributionError('NOT_FOUND', `manifest for ${displayOf(ref)} not found: ${said}`, STATUS.NOT_FOUND, err.registryCode, err);
  }
  if (err.status === 404 || err.status === 401 || err.status === 403 || err.registryCode === 'DENIED' || err.registryCode === 'NAME_UNKNOWN') {
    // never 401: the docker CLI answers a 401 to a pull by prompting for a login
    return new DistributionError(
      err.status === 401 || err.status === 403 ? 'FORBIDDEN' : 'NOT_FOUND',
      `pull access denied for ${repo}, repository does not exist or may require 'docker login': ${said}`,
      err.status,
      err.registryCode,
      err,
    );
  }
  return err;
}

function parseDoc<T>(bytes: Buffer, what: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch {
    throw invalid(`${what} is not valid JSON`);
  }
}

function checkDescriptor(d: Descriptor | undefined, what: string): Descriptor {
  if (!d || typeof d !== 'object' || typeof d.digest !== 'string' || !isDigest(d.digest) || typeof d.size !== 'number' || d.size < 0 || !Number.isSafeInteger(d.size)) {
    throw invalid(`${what}: bad descriptor`);
  }
  return d;
}

function isLayerType(t: string | undefined): boolean {
  return !t || /(^application\/vnd\.oci\.image\.layer\.|rootfs\.diff\.tar|^application\/vnd\.docker\.image\.rootfs\.)/.test(t);
}

/**
 * Resolve a reference to an image (manifest and config), trying mirrors of its registry before the origin.
 * Throws with Docker's status and wording; nothing has been written yet.
 */
export function resolvePull(registries: Registries, ref: Reference, auth: AuthConfig | undefined, opts: { signal?: AbortSignal; log?: Logger } = {}): Promise<PullTarget> {
  return onPullEndpoints(registries, ref, auth, opts, (client) => resolveOn(client, ref));
}

export interface DistributionInfo {
  Descriptor: { mediaType: string; digest: Digest; size: number };
  Platforms: Array<{ architecture: string; os: string; variant?: string }>;
}

/** Docker's `GET /distribution/{name}/json`: what the reference points at in its registry, and for which platforms. */
export function distributionInfo(registries: Registries, ref: Reference, auth: AuthConfig | undefined, opts: { signal?: AbortSignal; log?: Logger } = {}): Promise<DistributionInfo> {
  return onPullEndpoints(registries, ref, auth, opts, async (client) => {
    const top = await client.getManifest(ref.digest ?? ref.tag ?? 'latest');
    const Descriptor = { mediaType: top.mediaType, digest: top.digest, size: top.bytes.length };
    if (INDEX_TYPES.has(top.mediaType)) {
      const index = parseDoc<ImageIndex>(top.bytes, `index ${top.digest}`);
      const platforms = (Array.isArray(index.manifests) ? index.manifests : []).filter((m) => m?.platform && !isAttestation(m)).map((m) => m.platform!);
      return { Descriptor, Platforms: platforms.map((p) => ({ architecture: p.architecture, os: p.os, ...(p.variant ? { variant: p.variant } : {}) })) };
    }
    const manifest = parseDoc<ImageManifest>(top.bytes, `manifest ${top.digest}`);
    checkDescriptor(manifest.config, `manifest ${top.digest}: config`);
    const config = parseDoc<{ architecture?: string; os?: string; variant?: string }>(await client.readBlob(manifest.config.digest), `image config ${manifest.config.digest}`);
    return { Descriptor, Platforms: [{ architecture: config.architecture ?? '', os: config.os ?? '', ...(config.variant ? { variant: config.variant } : {}) }] };
  });
}

/** Run `job` against the reference's mirrors, then its origin: a mirror's failure moves on, the origin's is final. */
async function onPullEndpoints<T>(registries: Registries, ref: Reference, auth: AuthConfig | undefined, opts: { signal?: AbortSignal; log?: Logger }, job: (client: RepoClient) => Promise<T>): Promise<T> {
  const endpoints = registries.pullEndpoints(ref.domain);
  for (const ep of endpoints) {
    const client = registries.repo(ep, ref.path, auth, ['pull'], opts.signal);
    try {
      return await job(client);
    } catch (err) {
      if (ep.mirror && !opts.signal?.aborted) {
        opts.log?.warn({ mirror: ep.base.href, ref: displayOf(ref), err: errorMessage(err) }, 'mirror failed; trying the next endpoint');
        continue;
      }
      throw pullError(err, ref);
    }
  }
  throw internal(`no endpoint for ${ref.domain}`);
}

async function resolveOn(client: RepoClient, ref: Reference): Promise<PullTarget> {
  const top = await client.getManifest(ref.digest ?? ref.tag ?? 'latest');
  let cur = top;
  for (let depth = 0; ; depth++) {
    if (!INDEX_TYPES.has(cur.mediaType)) break;
    if (depth >= MAX_INDEX_DEPTH) throw invalid(`${displayOf(ref)}: image indexes nested too deeply`);
    const index = parseDoc<ImageIndex>(cur.bytes, `index ${cur.digest}`);
    if (!Array.isArray(index.manifests)) throw invalid(`index ${cur.digest} has no manifests`);
    const candidates = index.manifests.filter((m) => m && typeof m === 'object' && !isAttestation(m));
    const linux = candidates.filter((m) => m.platform?.os === 'linux' && m.platform?.architecture === 'amd64');
    const pick = linux.find((m) => !m.platform?.variant || m.platform.variant === 'v1') ?? linux[0] ?? (candidates.length === 1 && !candidates[0]!.platform ? candidates[0] : undefined);
    if (!pick) throw new DistributionError('NOT_FOUND', `no matching manifest for linux/amd64 in the manifest list entries`, STATUS.NOT_FOUND, 'MANIFEST_UNKNOWN');
    checkDescriptor(pick, `index ${cur.digest}`);
    cur = await client.getManifest(pick.digest);
  }
  if (!MANIFEST_TYPES.has(cur.mediaType)) throw invalid(`${displayOf(ref)}: unsupported manifest media type ${JSON.stringify(cur.mediaType)}`);
  const manifest = parseDoc<ImageManifest>(cur.bytes, `manifest ${cur.digest}`);
  checkDescriptor(manifest.config, `manifest ${cur.digest}: config`);
  if (!Array.isArray(manifest.layers)) throw invalid(`manifest ${cur.digest} has no layers`);
  manifest.layers.forEach((l, i) => {
    checkDescriptor(l, `manifest ${cur.digest}: layer ${i + 1}`);
    if (!isLayerType(l.mediaType)) throw invalid(`${displayOf(ref)}: layer ${i + 1} has unsupported media type ${JSON.stringify(l.mediaType)}`);
  });
  const cfgType = manifest.config.mediaType;
  if (cfgType && cfgType !== MediaType.OciConfig && cfgType !== MediaType.DockerConfig) {
    throw invalid(`${displayOf(ref)} is not a container image (config media type ${cfgType})`);
  }
  const configBytes = await client.readBlob(manifest.config.digest);
  const config = validateConfig(parseDoc(configBytes, `image config ${manifest.config.digest}`), displayOf(ref));
  if (config.os && config.os !== 'linux') throw invalid(`image operating system "${config.os}" cannot be used on this platform`);
  if (config.rootfs.diff_ids.length !== manifest.layers.length) {
    throw invalid(`${displayOf(ref)}: the manifest has ${manifest.layers.length} layers but the config lists ${config.rootfs.diff_ids.length} diff IDs`);
  }
  return {
    ref,
    display: displayOf(ref),
    client,
    topDigest: top.digest,
    manifest,
    manifestBytes: cur.bytes,
    config,
    configBytes,
    configDigest: manifest.config.digest,
  };
}

/**
 * Counts bytes, reports them, and refuses more (or, at the end, fewer) than the descriptor's size. Small network
 * chunks are gathered into ~1 MiB ones: every later stage (hashing, file writes, decompression) costs per chunk.
 */
export class Meter extends Transform {
  bytes = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  constructor(
    private readonly size: number,
    private readonly what: string,
    private readonly onBytes: (n: number) => void,
    private readonly gather = 1 << 20,
  ) {
    super({ highWaterMark: 2 << 20 });
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.size) return cb(invalid(`${this.what}: more bytes than its descriptor's ${this.size}`));
    this.onBytes(this.bytes);
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= this.gather) this.release();
    cb();
  }
  private release(): void {
    if (this.pendingBytes === 0) return;
    this.push(this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingBytes));
    this.pending = [];
    this.pendingBytes = 0;
  }
  override _flush(cb: TransformCallback): void {
    if (this.bytes !== this.size) return cb(invalid(`${this.what}: got ${this.bytes} bytes, its descriptor says ${this.size}`));
    this.release();
    cb();
  }
}

/** Two readers of one stream, with backpressure from both. */
function tee(src: Readable): [PassThrough, PassThrough] {
  const a = new PassThrough({ highWaterMark: 2 << 20 });
  const b = new PassThrough({ highWaterMark: 2 << 20 });
  src.pipe(a);
  src.pipe(b);
  src.once('error', (err) => {
    a.destroy(err);
    b.destroy(err);
  });
  return [a, b];
}

/** Wait for all; on the first failure call abort (so the others stop) and throw that failure. */
async function allOrAbort(ps: Array<Promise<unknown>>, abort: (err: unknown) => void): Promise<void> {
  let first: { err: unknown } | undefined;
  await Promise.allSettled(
    ps.map((p) =>
      p.catch((err: unknown) => {
        if (!first) {
          first = { err };
          abort(err);
        }
      }),
    ),
  );
  if (first) throw first.err;
}

/** Run jobs with at most `n` at a time; the first failure stops new starts and is thrown after the running ones end. */
export async function pool<T>(items: T[], n: number, job: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: { err: unknown } | undefined;
  const worker = async () => {
    while (!failed && next < items.length) {
      const item = items[next++]!;
      try {
        await job(item);
      } catch (err) {
        failed ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  if (failed) throw failed.err;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Worth another try: the connection, not the content, failed. */
function retriable(err: unknown): boolean {
  if (err instanceof DistributionError) return err.status === 0 || err.status >= 500;
  const code = (err as NodeJS.ErrnoException)?.code;
  return typeof code === 'string' && /^(ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|ECONNABORTED|ERR_STREAM_PREMATURE_CLOSE)$/.test(code) || /aborted|socket hang up/i.test(errorMessage(err));
}

export interface PullResult {
  image: Image;
  upToDate: boolean;
}

/**
 * Fetch what the store lacks of a resolved image and add it (with its RepoDigest, and its tag when pulled
 * by tag). Progress goes to `progress` as Docker's messages. On failure, layers and blobs this pull created
 * that no image uses are removed again.
 */
export async function pullImage(
  store: ImageStore,
  t: PullTarget,
  progress: ProgressWriter,
  opts: { signal?: AbortSignal; concurrency?: number } = {},
): Promise<PullResult> {
  const { manifest, config } = t;
  const diffIds = config.rootfs.diff_ids;
  const chains = chainIds(diffIds);
  progress.status(`Pulling from ${t.ref.path}`, t.ref.digest ?? t.ref.tag ?? 'latest');

  const layers = manifest.layers;
  const metas: Array<LayerMeta | undefined> = new Array(layers.length);
  const have = await Promise.all(layers.map(async (l, i) => ({ layer: await store.layers.has(chains[i]!), blob: await store.content.has(l.digest) })));
  // an image that is all here already says nothing per layer (as Docker)
  const complete = !!store.byId(t.configDigest) && have.every((h) => h.layer && h.blob);
  const created = { chains: new Set<Digest>(), blobs: new Set<Digest>() };
  const todo: number[] = [];
  const announced = new Set<string>();
  for (const [i, l] of layers.entries()) {
    const id = shortDigest(l.digest);
    if (have[i]!.layer && have[i]!.blob) {
      metas[i] = await store.layers.meta(chains[i]!);
      if (!announced.has(id) && !complete) progress.status('Already exists', id);
      announced.add(id);
      continue;
    }
    todo.push(i);
    if (!announced.has(id)) progress.status('Pulling fs layer', id);
    announced.add(id);
  }
  const concurrency = opts.concurrency ?? PULL_CONCURRENCY;
  for (const i of todo.slice(concurrency)) progress.status('Waiting', shortDigest(layers[i]!.digest));

  const label = (what: string, err: unknown): SampanError =>
    err instanceof SampanError
      ? new SampanError(err.code, err.message.startsWith(what) ? err.message : `${what}: ${err.message}`, err)
      : internal(`${what}: ${errorMessage(err)}`, err);
  /** Unpacking that goes on after a layer's download ended (the download slot is free by then). */
  const unpacking: Array<Promise<void>> = [];

  /** One layer: download (a pool slot) while unpacking; the unpacking's tail is left in `unpacking`. */
  const fetchOne = async (i: number): Promise<void> => {
    const l = layers[i]!;
    const id = shortDigest(l.digest);
    const parent = i > 0 ? chains[i - 1] : undefined;
    const what = `layer ${i + 1} (${l.digest})`;
    const done = (m: LayerMeta) => {
      metas[i] = m;
      progress.bytes('Extracting', id, l.size, l.size, true);
      progress.status('Pull complete', id);
    };
    if (!have[i]!.layer) created.chains.add(chains[i]!);
    if (have[i]!.blob) {
      // the blob is here (another image has it): unpack it from the store
      const meter = new Meter(l.size, what, (n) => progress.bytes('Extracting', id, n, l.size));
      const src = store.content.stream(l.digest);
      src.once('error', (err) => meter.destroy(err));
      done(await store.layers.apply(src.pipe(meter), parent, diffIds[i]).catch((err: unknown) => {
        throw label(what, err);
      }));
      return;
    }
    created.blobs.add(l.digest);
    for (let attempt = 1; ; attempt++) {
      let failure: { err: unknown } | undefined;
      let apply: Promise<LayerMeta> | undefined;
      try {
        const res = await t.client.getBlob(l.digest, opts.signal);
        const meter = new Meter(l.size, what, (n) => progress.bytes('Downloading', id, n, l.size));
        meter.once('finish', () => progress.status('Verifying Checksum', id));
        res.once('error', (err) => meter.destroy(err));
        res.pipe(meter);
        const [toContent, toLayer] = tee(meter);
        const abort = (err: unknown) => {
          failure ??= { err };
          const e = err instanceof Error ? err : new Error(String(err));
          for (const s of [res, meter, toContent, toLayer]) if (!s.destroyed) s.destroy(e);
        };
        apply = store.layers.apply(toLayer, parent, diffIds[i]);
        apply.catch(abort);
        // the slot is held until the blob is all here and stored (verified against its digest)
        await store.content.put(toContent, l.digest).catch((err: unknown) => {
          abort(err);
          throw failure!.err;
        });
        progress.status('Download complete', id);
        const tail = apply.then(done, () => {
          throw label(what, failure?.err);
        });
        tail.catch(() => undefined); // collected (and thrown) after the downloads
        unpacking.push(tail);
        return;
      } catch (err) {
        await apply?.catch(() => undefined); // its scratch directory is gone before anything else happens
        if (attempt >= ATTEMPTS || opts.signal?.aborted || !retriable(err)) throw label(what, err);
        progress.status(`Retrying in ${attempt} second${attempt > 1 ? 's' : ''}`, id);
        await sleep(attempt * 1000);
      }
    }
  };

  const tagKey = t.ref.digest ? undefined : familiarTagged(t.ref);
  const before = store.byId(t.configDigest);
  const taggedBefore = tagKey && store.hasTag(tagKey) ? store.find(tagKey)?.id : undefined;
  const repoDigest = `${familiarRepo(t.ref)}@${t.topDigest}`;
  try {
    try {
      await pool(todo, concurrency, fetchOne);
    } finally {
      // nothing of this pull may still be writing when it is cleaned up after a failure
      await Promise.allSettled(unpacking);
    }
    await allOrAbort(unpacking, () => undefined);
    const refs: LayerRef[] = layers.map((l, i) => ({
      chainId: chains[i]!,
      diffId: diffIds[i]!,
      size: metas[i]!.size,
      blob: { mediaType: l.mediaType || MediaType.OciLayerGzip, digest: l.digest, size: l.size },
    }));
    const image = await store.add(config, refs, { manifest: t.manifestBytes, configBytes: t.configBytes, repoDigests: [repoDigest] });
    if (image.id !== t.configDigest) throw internal(`image config digest mismatch: expected ${t.configDigest}, stored ${image.id}`);
    if (tagKey) await store.tag(image.id, tagKey);
    const upToDate = !!before && (tagKey ? taggedBefore === image.id : before.repoDigests.includes(repoDigest));
    progress.status(`Digest: ${t.topDigest}`);
    progress.status(upToDate ? `Status: Image is up to date for ${t.display}` : `Status: Downloaded newer image for ${t.display}`);
    return { image: store.byId(image.id)!, upToDate };
  } catch (err) {
    await forgetUnused(store, created);
    throw err;
  }
}

/** Remove layers and blobs a failed pull created, unless an image uses them meanwhile. */
async function forgetUnused(store: ImageStore, created: { chains: Set<Digest>; blobs: Set<Digest> }): Promise<void> {
  const usedChains = new Set<Digest>();
  const usedBlobs = new Set<Digest>();
  for (const img of store.list()) {
    for (const l of img.layers) {
      usedChains.add(l.chainId);
      usedBlobs.add(l.blob.digest);
    }
  }
  for (const c of created.chains) if (!usedChains.has(c)) await store.layers.remove(c).catch(() => undefined);
  for (const b of created.blobs) if (!usedBlobs.has(b)) await store.content.delete(b).catch(() => undefined);
}
