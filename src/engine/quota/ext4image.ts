import { promises as fs } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ensureDir, removeTree } from '../../lib/fsutil.js';
import { errorMessage, internal, invalid } from '../../lib/errors.js';
import { mountAt } from '../../lib/mounts.js';
import type { QuotaBackend } from './backend.js';

const exec = promisify(execFile);
const MiB = 1024 * 1024;

async function sh(bin: string, args: string[]): Promise<void> {
  try {
    await exec(bin, args);
  } catch (err) {
    throw internal(`${bin.split('/').pop()} failed: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`, err);
  }
}

/**
 * A sparse ext4 image per limited directory, loop-mounted on it: a hard size on any host file system.
 * The image is larger than the asked size by ext4's own overhead, so the directory really offers that much.
 */
export class Ext4ImageQuota implements QuotaBackend {
  readonly kind = 'ext4-image';

  constructor(private readonly tools: { mkfs: string; resize2fs: string; dumpe2fs: string }) {}

  private image(dir: string): string {
    return `${dir}.ext4`;
  }

  async create(dir: string, bytes: number): Promise<void> {
    const img = this.image(dir);
    // make the file system again, larger by what ext4 kept for itself, until it offers the asked size
    let size = bytes;
    for (let i = 0; i < 4; i++) {
      await fs.writeFile(img, '');
      await fs.truncate(img, size);
      // lazy init keeps the image sparse: untouched inode tables never take host disk
      await sh(this.tools.mkfs, ['-q', '-F', '-m', '0', '-E', 'lazy_itable_init=1,lazy_journal_init=1,nodiscard', img]);
      const short = bytes - (await this.capacity(img));
      if (short <= 0) break;
      size += Math.ceil(short / MiB) * MiB;
    }
    await ensureDir(dir);
    await this.mount(dir);
    await fs.rmdir(`${dir}/lost+found`).catch(() => undefined); // a volume's user should see an empty directory
  }

  /** Bytes the new file system offers: its blocks less ext4's overhead (what statfs and df report). */
  private async capacity(img: string): Promise<number> {
    const { stdout } = await exec(this.tools.dumpe2fs, ['-h', img]);
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(stdout)?.[1] ?? NaN);
    const cap = (field('Block count') - (field('Overhead clusters') || 0)) * field('Block size');
    if (!Number.isFinite(cap)) throw internal(`cannot read the size of ${img} from dumpe2fs`);
    return cap;
  }

  private async mount(dir: string): Promise<void> {
    await sh('mount', ['-t', 'ext4', '-o', 'loop,noinit_itable', this.image(dir), dir]);
  }

  async grow(dir: string, bytes: number, inUse: boolean): Promise<void> {
    const img = this.image(dir);
    for (let i = 0; i < 3; i++) {
      const st = await fs.statfs(dir);
      const short = bytes - st.blocks * st.bsize;
      if (short <= 0) return;
      const dev = (await mountAt(dir))?.source;
      if (!dev?.startsWith('/dev/loop')) throw internal(`${dir} is not on its loop-mounted image`);
      await fs.truncate(img, (await fs.stat(img)).size + Math.ceil(short / MiB) * MiB);
      await sh('losetup', ['-c', dev]);
      try {
        await sh(this.tools.resize2fs, [dev]);
      } catch (err) {
        // growing a mounted ext4 needs CAP_SYS_RESOURCE; unused, it can be grown unmounted instead
        if (!/Permission denied|Operation not permitted/.test(errorMessage(err))) throw err;
        if (inUse) throw invalid(`growing the ext4 image of a running container needs CAP_SYS_RESOURCE, which this engine lacks: stop it first, or put the engine root on btrfs`);
        await sh('umount', [dir]);
        try {
          await sh(this.tools.resize2fs, ['-f', img]);
        } finally {
          await this.mount(dir);
        }
      }
    }
  }

  async ensure(dir: string): Promise<void> {
    if (await mountAt(dir)) return;
    await ensureDir(dir);
    await this.mount(dir);
  }

  async remove(dir: string): Promise<void> {
    if (await mountAt(dir)) {
      // mount -o loop set autoclear, so the loop device goes with the mount
      await sh('umount', [dir]).catch(() => sh('umount', ['-l', dir]));
    }
    await fs.rm(this.image(dir), { force: true });
    await removeTree(dir);
  }
}

