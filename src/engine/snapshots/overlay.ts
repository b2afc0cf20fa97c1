import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ensureDir, removeTree } from '../../lib/fsutil.js';
import { internal } from '../../lib/errors.js';
import { isMounted } from '../../lib/mounts.js';
import type { Digest } from '../../lib/digest.js';
import type { LayerStore } from './layers.js';
import type { SnapshotDirs, Snapshotter } from './snapshotter.js';

const run = promisify(execFile);

/** A container's writable overlay on top of image layers: upper, work and the merged mount point. */
export class OverlaySnapshots implements Snapshotter {
  constructor(
    private readonly layers: LayerStore,
    private readonly emptyDir: string,
  ) {}

  dirs(base: string): SnapshotDirs {
    return { upper: path.join(base, 'upper'), work: path.join(base, 'work'), merged: path.join(base, 'merged') };
  }

  async prepare(base: string): Promise<void> {
    const d = this.dirs(base);
    await ensureDir(d.upper);
    await ensureDir(d.work);
    await ensureDir(d.merged);
  }

  /** Mount the merged view; chain IDs are bottom-most first. Idempotent. */
  async mount(base: string, chain: Digest[], readonly = false): Promise<string> {
    const d = this.dirs(base);
    if (await isMounted(d.merged)) return d.merged;
    await ensureDir(this.emptyDir);
    const lowers = chain.length ? [...chain].reverse().map((c) => this.layers.relDiffDir(c)) : [path.relative(this.layers.dir, this.emptyDir)];
    const opts = readonly && chain.length >= 2
      ? `lowerdir=${lowers.join(':')}`
      : `lowerdir=${lowers.join(':')},upperdir=${d.upper},workdir=${d.work}`;
    if (opts.length > 4000) throw internal(`image has too many layers for one overlay mount (${chain.length})`);
    try {
      await run('mount', ['-t', 'overlay', 'overlay', '-o', opts, d.merged], { cwd: this.layers.dir });
    } catch (err) {
      throw internal(`mounting overlay failed: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`, err);
    }
    return d.merged;
  }

  async unmount(base: string): Promise<void> {
    const { merged } = this.dirs(base);
    if (!(await isMounted(merged))) return;
    try {
      await run('umount', [merged]);
    } catch {
      await run('umount', ['-l', merged]).catch(() => undefined);
    }
  }

  async remove(base: string): Promise<void> {
    await this.unmount(base);
    await removeTree(base);
  }
}
