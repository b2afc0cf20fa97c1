import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { removeTree } from '../../lib/fsutil.js';
import { internal } from '../../lib/errors.js';
import type { QuotaBackend } from './backend.js';

const exec = promisify(execFile);

/** A btrfs subvolume per limited directory, capped by its qgroup (the engine root must be on btrfs). */
export class BtrfsQuota implements QuotaBackend {
  readonly kind = 'btrfs';
  private enabled?: Promise<void>;

  constructor(
    private readonly bin: string,
    /** Any path on the file system, for the commands that act on the whole of it. */
    private readonly fsPath: string,
  ) {}

  private async btrfs(...args: string[]): Promise<string> {
    try {
      return (await exec(this.bin, args)).stdout;
    } catch (err) {
      throw internal(`btrfs ${args.slice(0, 2).join(' ')}: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`, err);
    }
  }

  async create(dir: string, bytes: number): Promise<void> {
    this.enabled ??= this.btrfs('quota', 'enable', this.fsPath).then(() => undefined);
    await this.enabled.catch((err: unknown) => {
      this.enabled = undefined;
      throw err;
    });
    await this.btrfs('subvolume', 'create', dir);
    await this.btrfs('qgroup', 'limit', String(bytes), dir);
  }

  async grow(dir: string, bytes: number): Promise<void> {
    await this.btrfs('qgroup', 'limit', String(bytes), dir);
  }

  async ensure(): Promise<void> {
    // a subvolume and its qgroup live in the file system itself: nothing to redo after a reboot
  }

  async remove(dir: string): Promise<void> {
    const id = (await this.btrfs('inspect-internal', 'rootid', dir).catch(() => '')).trim();
    if (!id) return removeTree(dir); // never became a subvolume
    await this.btrfs('subvolume', 'delete', dir);
    // the qgroup outlives its subvolume until the cleaner is done with it; drop it then, off the caller's path
    void this.btrfs('subvolume', 'sync', this.fsPath, id)
      .then(() => this.btrfs('qgroup', 'destroy', `0/${id}`, this.fsPath))
      .catch(() => undefined);
  }
}
