/** `docker import`: a rootfs tar becomes a one-layer image. */
import { createReadStream, createWriteStream } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HashingStream } from '../../lib/digest.js';
import { errorMessage, invalid } from '../../lib/errors.js';
import { type ImageConfig, type ImageRuntimeConfig } from '../../lib/oci.js';
import { parseReference } from '../../lib/reference.js';
import { removeTree } from '../../lib/fsutil.js';
import type { Image, ImageStore, LayerRef } from './store.js';
import { addImage, loadError, makeTempDir, diffIdOf, layerMediaType, Rollback } from './archive-common.js';
import { applyChanges } from './changes.js';
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
    return await addImage(store, tx, config, refs, { ref: opts.ref });
  } catch (err) {
    await tx.undo();
    throw loadError('import', err);
  } finally {
    if (tmp) await removeTree(tmp);
  }
}

