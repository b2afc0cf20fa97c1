/** ADD's local archives: recognised by their first bytes and unpacked (safely) into the destination. */
import { createReadStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { extractLayer } from '../../lib/tarsafe.js';
import { invalid, errorMessage } from '../../lib/errors.js';
import { copySource, type CopyOptions } from './sources.js';

type Kind = 'tar' | 'gzip' | 'bzip2' | 'xz' | 'zstd';

async function kindOf(file: string): Promise<Kind | undefined> {
  const fh = await fs.open(file, 'r');
  try {
    const b = Buffer.alloc(512);
    const { bytesRead } = await fh.read(b, 0, 512, 0);
    if (b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
    if (b.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
    if (b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
    if (b.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
    if (bytesRead >= 262 && b.subarray(257, 262).toString('latin1') === 'ustar') return 'tar';
    return undefined;
  } finally {
    await fh.close();
  }
}

export async function isArchive(file: string): Promise<boolean> {
  return (await kindOf(file)) !== undefined;
}

/** bzip2 and xz through their tools; gzip, zstd and plain tar the layer extractor reads itself. */
function open(file: string, kind: Kind): Readable {
  if (kind !== 'bzip2' && kind !== 'xz') return createReadStream(file);
  const p = spawn(kind, ['-d', '-c', file], { stdio: ['ignore', 'pipe', 'ignore'] });
  return p.stdout;
}

/**
 * Unpack into a fresh directory first (the extractor refuses escaping names and links there), then copy into the
 * container root with the same symlink-safe copier as COPY: an image's own symlinks never lead a write out of it.
 */
export async function extractArchive(file: string, rootfs: string, dest: string, o: CopyOptions): Promise<void> {
  const kind = (await kindOf(file))!;
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'sampan-add-'));
  try {
    await extractLayer(open(file, kind), tmp).catch((err: unknown) => {
      throw invalid(`ADD ${path.basename(file)}: cannot unpack the archive: ${errorMessage(err)}`);
    });
    await copySource(rootfs, { name: path.basename(file), abs: tmp, stat: await fs.stat(tmp) }, dest, true, { ...o, keepOwner: true });
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}
