/**
 * `docker push`: upload the blobs a registry lacks (HEAD first), several at a time, streamed from the
 * content store, then PUT the manifest: the image's stored manifest when it still describes it, else one
 * generated from the stored layer blobs (as `docker save` does).
 */
import { pipeline } from 'node:stream';
import type { Digest } from '../../lib/digest.js';
import { SampanError, errorMessage, internal, notFound } from '../../lib/errors.js';
import type { ImageManifest } from '../../lib/oci.js';
import { familiarRepo, parseReference, type Reference } from '../../lib/reference.js';
import type { Image, ImageStore } from '../images/store.js';
import { prepareImages } from '../images/save.js';
import type { AuthConfig } from '../../lib/distribution/auth.js';
import { DistributionError, type Registries, type RepoClient } from '../../lib/distribution/client.js';
import { Meter, pool } from './pull.js';
import { shortDigest, type ProgressWriter } from './progress.js';
import { STATUS } from '../../lib/http/status.js';

/** Blobs uploaded at once (Docker's default max-concurrent-uploads). */
export const PUSH_CONCURRENCY = 5;

export interface PushPlan {
  ref: Reference;
  items: Array<{ image: Image; tag: string }>;
}

/** What to push: one tag, or (no tag) every tag of the repository. Throws before anything is sent. */
export function planPush(store: ImageStore, name: string, tag?: string): PushPlan {
  const parsed = parseReference(name);
  if (parsed.digest) throw new SampanError('INVALID_ARGUMENT', `cannot push a digest reference: ${name}`);
  const t = tag || parsed.tag;
  const ref: Reference = { domain: parsed.domain, path: parsed.path };
  const repo = familiarRepo(ref);
  const items: PushPlan['items'] = [];
  if (t) {
    const image = store.hasTag(`${repo}:${t}`) ? store.find(`${repo}:${t}`) : undefined;
    if (image) items.push({ image, tag: t });
  } else {
    for (const image of store.list()) {
      for (const rt of image.repoTags) {
        const r = parseReference(rt);
        if (familiarRepo(r) === repo && r.tag) items.push({ image, tag: r.tag });
      }
    }
    items.sort((a, b) => a.tag.localeCompare(b.tag));
  }
  if (items.length === 0) throw notFound(`An image does not exist locally with the tag: ${t ? `${repo}:${t}` : repo}`);
  return { ref, items };
}

function pushError(err: unknown): SampanError {
  if (err instanceof DistributionError) {
    if (err.status === 401 && !/unauthorized/i.test(err.message)) return new DistributionError('UNAUTHORIZED', 'unauthorized: authentication required', STATUS.UNAUTHORIZED, err.registryCode, err);
    if (err.status === 403 && !/denied/i.test(err.message)) return new DistributionError('FORBIDDEN', 'denied: requested access to the resource is denied', STATUS.FORBIDDEN, err.registryCode, err);
    return err;
  }
  return err instanceof SampanError ? err : internal(errorMessage(err), err);
}

export interface PushResult {
  tag: string;
  digest: Digest;
  size: number;
}

async function pushOne(store: ImageStore, client: RepoClient, image: Image, tag: string, progress: ProgressWriter): Promise<PushResult> {
  const [prep] = await prepareImages(store, [{ image, tags: [] }]);
  const manifest = JSON.parse(prep!.manifestBytes.toString('utf8')) as ImageManifest;
  // top layer first, as Docker lists them; a blob shared by two layers is sent once
  const layers = [...new Map(manifest.layers.map((l) => [l.digest, l])).values()].reverse();
  for (const l of layers) progress.status('Preparing', shortDigest(l.digest));
  for (const l of layers.slice(PUSH_CONCURRENCY)) progress.status('Waiting', shortDigest(l.digest));
  await pool(layers, PUSH_CONCURRENCY, async (l) => {
    const id = shortDigest(l.digest);
    if (await client.hasBlob(l.digest)) {
      progress.status('Layer already exists', id);
      return;
    }
    const size = await store.content.size(l.digest);
    // pipeline() hands back the meter, and closes the blob's file when the upload is aborted
    await client.uploadBlob(l.digest, size, () => pipeline(store.content.stream(l.digest), new Meter(size, `blob ${l.digest}`, (n) => progress.bytes('Pushing', id, n, size)), () => undefined));
    progress.bytes('Pushing', id, size, size, true);
    progress.status('Pushed', id);
  });
  const cfg = manifest.config.digest;
  if (!(await client.hasBlob(cfg))) {
    const size = await store.content.size(cfg);
    await client.uploadBlob(cfg, size, () => store.content.stream(cfg));
  }
  const digest = await client.putManifest(tag, prep!.manifestBytes, prep!.manifestType);
  return { tag, digest, size: prep!.manifestBytes.length };
}

/**
 * Push the planned tags; progress as Docker's messages, ending with "TAG: digest: D size: N" and the aux
 * record per tag. Each pushed image gains the RepoDigest.
 */
export async function pushImages(
  registries: Registries,
  store: ImageStore,
  plan: PushPlan,
  auth: AuthConfig | undefined,
  progress: ProgressWriter,
  signal?: AbortSignal,
): Promise<PushResult[]> {
  const { ref } = plan;
  progress.status(`The push refers to repository [${ref.domain}/${ref.path}]`);
  const client = registries.repo(registries.originEndpoint(ref.domain), ref.path, auth, ['pull', 'push'], signal);
  const out: PushResult[] = [];
  for (const { image, tag } of plan.items) {
    let r: PushResult;
    try {
      r = await pushOne(store, client, image, tag, progress);
    } catch (err) {
      throw pushError(err);
    }
    progress.status(`${tag}: digest: ${r.digest} size: ${r.size}`);
    progress.send({ progressDetail: {}, aux: { Tag: tag, Digest: r.digest, Size: r.size } });
    const repoDigest = `${familiarRepo(ref)}@${r.digest}`;
    const cur = store.byId(image.id);
    if (cur && !cur.repoDigests.includes(repoDigest)) {
      const manifest = (await store.content.has(cur.manifest)) ? await store.content.read(cur.manifest) : undefined;
      await store.add(cur.config, cur.layers, { configBytes: await store.content.read(cur.id), manifest, repoDigests: [repoDigest] });
    }
    out.push(r);
  }
  return out;
}
