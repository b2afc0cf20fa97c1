import { promises as fs } from 'node:fs';
import { invalid } from '../../lib/errors.js';
import { which } from '../../lib/which.js';
import { BtrfsQuota } from './btrfs.js';
import { Ext4ImageQuota } from './ext4image.js';
import { parseBytes } from '../../lib/units.js';
import type { QuotaBackend } from './backend.js';

const BTRFS_MAGIC = 0x9123683e;
/** Small sizes cannot hold an ext4 journal and metadata, nor are they a useful writable layer. */
export const MIN_QUOTA = 16 * 1024 * 1024;

/**
 * Picks the backend for a directory tree once: btrfs qgroups where the tree is on btrfs (exact and cheap),
 * else an ext4 image per limited directory on a loop device (works on any host file system).
 */
export class DiskQuotas {
  private chosen?: Promise<QuotaBackend | string>;

  constructor(private readonly root: string) {}

  private detect(): Promise<QuotaBackend | string> {
    this.chosen ??= (async () => {
      const st = await fs.statfs(this.root);
      if (st.type === BTRFS_MAGIC) {
        const btrfs = await which('btrfs');
        return btrfs ? new BtrfsQuota(btrfs, this.root) : 'the engine root is on btrfs but the btrfs tool is missing (apt-get install btrfs-progs)';
      }
      const [mkfs, resize2fs, dumpe2fs] = await Promise.all(['mkfs.ext4', 'resize2fs', 'dumpe2fs'].map(which));
      const loop = await fs.access('/dev/loop-control').then(() => true, () => false);
      if (mkfs && resize2fs && dumpe2fs && loop) return new Ext4ImageQuota({ mkfs, resize2fs, dumpe2fs });
      return `the engine root is not on btrfs and ${loop ? 'e2fsprogs is missing (apt-get install e2fsprogs)' : 'this host has no loop devices'}`;
    })();
    return this.chosen;
  }

  /** The backend, or a 400 that says why there is none. */
  async backend(): Promise<QuotaBackend> {
    const b = await this.detect();
    if (typeof b === 'string') throw invalid(`--storage-opt size is not available: ${b}`);
    return b;
  }

  async kind(): Promise<string> {
    const b = await this.detect();
    return typeof b === 'string' ? 'none' : b.kind;
  }
}

/** `--storage-opt size=64m` / `-o size=64m`: the size in bytes, or undefined when no size is asked for. */
export function quotaSize(opts: Record<string, string> | null | undefined, what: 'storage-opt' | 'volume'): number | undefined {
  if (!opts) return undefined;
  let size: number | undefined;
  for (const [k, v] of Object.entries(opts)) {
    if (k.toLowerCase() !== 'size') {
      if (what === 'storage-opt') throw invalid(`Unknown option ${k}`);
      continue;
    }
    size = parseBytes(v);
    if (size < MIN_QUOTA) throw invalid(`invalid size ${JSON.stringify(v)}: the smallest quota is ${MIN_QUOTA / 1024 / 1024} MiB`);
  }
  return size;
}
