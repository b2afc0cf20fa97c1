import { promises as fs } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { atomicWriteJson, ensureDir, exists, readJson, removeTree } from '../../lib/fsutil.js';
import { extractLayer, type ExtractResult } from '../../lib/tarsafe.js';
import { hexOf, sha256, type Digest } from '../../lib/digest.js';
import { KeyedLock } from '../../lib/keyedlock.js';

export interface LayerMeta {
  chainId: Digest;
  diffId: Digest;
  parent?: Digest;
  /** Bytes of regular files in this layer. */
  size: number;
}

/**
 * Unpacked layers, one directory per chain ID, shared by every image that has that layer stack.
 * Each directory holds the layer's files with overlayfs whiteouts, ready to be a lowerdir.
 */
export class LayerStore {
  private readonly lock = new KeyedLock();

  constructor(
    readonly dir: string,
    /** How layers are unpacked: in this thread by default; the engine passes its worker pool's. */
    private readonly extract: (tar: Readable, dest: string, opts: { overlayWhiteouts?: boolean; devices?: boolean }) => Promise<ExtractResult> = extractLayer,
  ) {}

  async init(): Promise<void> {
    await ensureDir(this.dir);
    for (const f of await fs.readdir(this.dir)) if (f.startsWith('tmp-')) await removeTree(path.join(this.dir, f));
  }

  diffDir(chainId: Digest): string {
    return path.join(this.dir, hexOf(chainId), 'diff');
  }

  /** The lowerdir entry for a chain, relative to this store's directory (keeps mount options short). */
  relDiffDir(chainId: Digest): string {
    return `${hexOf(chainId)}/diff`;
  }

  has(chainId: Digest): Promise<boolean> {
    return exists(path.join(this.dir, hexOf(chainId), 'meta.json'));
  }

  async meta(chainId: Digest): Promise<LayerMeta> {
    return readJson<LayerMeta>(path.join(this.dir, hexOf(chainId), 'meta.json'));
  }

  /**
   * Unpack a layer on top of `parent`. The diff ID is computed from the content; if `expectDiffId` is given
   * and differs, nothing is kept. Returns the layer's meta (existing or new). `devices`: allow device nodes
   * (only for layers made from a local container's files).
   */
  async apply(tar: Readable, parent: Digest | undefined, expectDiffId?: Digest, opts: { devices?: boolean } = {}): Promise<LayerMeta & { created?: boolean }> {
    if (expectDiffId) {
      const chainId = parent ? sha256(`${parent} ${expectDiffId}`) : expectDiffId;
      if (await this.has(chainId)) {
        tar.resume();
        return this.meta(chainId);
      }
    }
    const tmp = path.join(this.dir, `tmp-${randomBytes(8).toString('hex')}`);
    try {
      await ensureDir(path.join(tmp, 'diff'));
      const res = await this.extract(tar, path.join(tmp, 'diff'), { overlayWhiteouts: true, devices: opts.devices });
      if (expectDiffId && res.diffId !== expectDiffId) {
        throw Object.assign(new Error(`layer diff ID mismatch: expected ${expectDiffId}, got ${res.diffId}`), { code: 'DIFFID' });
      }
      const chainId = parent ? sha256(`${parent} ${res.diffId}`) : res.diffId;
      const meta: LayerMeta = { chainId, diffId: res.diffId, parent, size: res.size };
      return await this.lock.run(chainId, async () => {
        const final = path.join(this.dir, hexOf(chainId));
        if (await this.has(chainId)) return this.meta(chainId);
        await atomicWriteJson(path.join(tmp, 'meta.json'), meta);
        await removeTree(final); // a partial directory without meta.json is garbage
        await fs.rename(tmp, final);
        return { ...meta, created: true };
      });
    } finally {
      await removeTree(tmp);
    }
  }

  async remove(chainId: Digest): Promise<void> {
    const d = path.join(this.dir, hexOf(chainId));
    // drop meta first so a crash mid-removal leaves garbage, never a half layer that looks whole
    await fs.rm(path.join(d, 'meta.json'), { force: true });
    await removeTree(d);
  }

  async list(): Promise<Digest[]> {
    return (await fs.readdir(this.dir)).filter((f) => /^[a-f0-9]{64}$/.test(f)).map((f) => `sha256:${f}` as Digest);
  }
}
