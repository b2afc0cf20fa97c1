import { promises as fs } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ensureDir } from '../../lib/fsutil.js';
import { invalid, internal } from '../../lib/errors.js';
import { mountAt } from '../../lib/mounts.js';
import { which } from '../../lib/which.js';

const exec = promisify(execFile);

/**
 * Put the engine root on btrfs held in a sparse image beside it (`<root>.btrfs`), made on first use and mounted
 * again after a reboot, so that writable layers get exact qgroup quotas on hosts whose own disk has none.
 */
export async function mountBtrfsRoot(root: string, bytes: number): Promise<string> {
  const img = `${root.replace(/\/+$/, '')}.btrfs`;
  const mounted = await mountAt(root);
  if (mounted?.fstype === 'btrfs') return img;
  if (mounted) throw invalid(`${root} is already a ${mounted.fstype} mount; --btrfs-image needs a root of its own`);
  const mkfs = await which('mkfs.btrfs');
  if (!mkfs) throw invalid('--btrfs-image needs mkfs.btrfs (apt-get install btrfs-progs)');
  const fresh = !(await fs.stat(img).catch(() => undefined));
  if (fresh) {
    const held = await fs.readdir(root).catch(() => []);
    if (held.length) throw invalid(`${root} already holds engine state; --btrfs-image needs a new or empty root`);
    await fs.writeFile(`${img}.tmp`, '');
    await fs.truncate(`${img}.tmp`, bytes);
    await run(mkfs, ['-q', '-f', `${img}.tmp`]);
    await fs.rename(`${img}.tmp`, img);
  }
  await ensureDir(root, 0o711);
  await run('mount', ['-t', 'btrfs', '-o', 'loop', img, root]);
  return img;
}

async function run(bin: string, args: string[]): Promise<void> {
  try {
    await exec(bin, args);
  } catch (err) {
    throw internal(`${bin} ${args[0]}: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`, err);
  }
}
