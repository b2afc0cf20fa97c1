import { promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable, pipeline as pipelineTo } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import tar from 'tar-stream';
import { invalid } from './errors.js';
import { HashingStream, type Digest } from './digest.js';

const run = promisify(execFile);

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_WHITEOUT = '.wh..wh..opq';

/**
 * Normalise a tar entry name to a relative path inside the root, or throw.
 * Absolute names and any ".." component are refused: an entry never leaves its root.
 */
export function safeEntryPath(name: string): string {
  if (name.includes('\0')) throw invalid(`tar entry ${JSON.stringify(name)}: NUL in name`);
  if (name.startsWith('/')) throw invalid(`tar entry ${JSON.stringify(name)}: absolute path`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) throw invalid(`tar entry ${JSON.stringify(name)}: path escapes the root`);
  return parts.join('/');
}

/** Does a symlink at rel (relative to root) with this target resolve, lexically, outside the root? */
export function symlinkEscapes(rel: string, target: string): boolean {
  if (target.startsWith('/')) return false; // absolute targets resolve inside the container's root
  let depth = rel.split('/').length - 1;
  for (const part of target.split('/')) {
    if (part === '..') depth--;
    else if (part !== '.' && part !== '') depth++;
    if (depth < 0) return true;
  }
  return false;
}

/** Peek the first bytes and insert a decompressor when the stream is gzip (or zstd, via the zstd tool). */
export async function decompressed(input: Readable): Promise<Readable> {
  const it = input[Symbol.asyncIterator]();
  const first = await it.next();
  const head: Buffer = first.done ? Buffer.alloc(0) : (first.value as Buffer);
  async function* rest(): AsyncGenerator<Buffer> {
    if (head.length) yield head;
    for (;;) {
      const n = await it.next();
      if (n.done) return;
      yield n.value as Buffer;
    }
  }
  const src = Readable.from(rest(), { objectMode: false });
  // pipeline(), not pipe(): an input that fails (a client gone mid-upload) fails the output, never the process
  // large output chunks: fewer callbacks and file writes downstream (the default 16 KiB costs a lot of CPU)
  if (head[0] === 0x1f && head[1] === 0x8b) return pipelineTo(src, createGunzip({ chunkSize: 1 << 20 }), () => undefined);
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) {
    const { spawn } = await import('node:child_process');
    const p = spawn('zstd', ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'inherit'] });
    p.on('error', (err) => p.stdout.destroy(err));
    pipelineTo(src, p.stdin, (err) => {
      if (!err) return;
      p.kill();
      p.stdout.destroy(err);
    });
    return p.stdout;
  }
  return src;
}

/** The process umask (read without setting it: worker threads may not set it). */
function currentUmask(): number {
  return process.umask();
}

export interface ExtractResult {
  diffId: Digest;
  /** Bytes of the uncompressed tar. */
  tarSize: number;
  /** Bytes of the regular files written. */
  size: number;
}

interface ExtractOptions {
  /** Convert OCI whiteouts to overlayfs ones (char 0/0 and the opaque xattr). */
  overlayWhiteouts?: boolean;
  /** Make device nodes (a layer committed from a container's own files); refused otherwise. */
  devices?: boolean;
}

/**
 * Unpack a (possibly compressed) layer tar into an empty directory.
 * Refuses names that escape the root, writes through symlinks, escaping symlinks and hardlinks,
 * and device nodes. The caller owns `dest` and removes it on error.
 */
export async function extractLayer(input: Readable, dest: string, opts: ExtractOptions = {}): Promise<ExtractResult> {
  const hashing = new HashingStream();
  const extract = tar.extract();
  const dirTimes: Array<[string, Date]> = [];
  const opaque: string[] = [];
  const whiteouts: string[] = [];
  const links = new Set<string>(); // symlinks created so far: never write through them
  let size = 0;

  const assertNoSymlinkParent = (rel: string) => {
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      if (links.has(parts.slice(0, i).join('/'))) {
        throw invalid(`tar entry ${JSON.stringify(rel)}: path goes through a symlink`);
      }
    }
  };

  // dest starts empty, so a path exists only if this extraction made it: tracking what was made saves an
  // lstat and a mkdir per entry (syscalls dominate the cost of layers with many small files)
  const made = new Map<string, 'dir' | 'other'>([['', 'dir']]);
  const ensureParent = async (rel: string) => {
    const dir = path.posix.dirname(rel);
    const key = dir === '.' ? '' : dir;
    if (made.get(key) === 'dir') return;
    const parts = key.split('/');
    for (let i = 1; i <= parts.length; i++) {
      if (made.get(parts.slice(0, i).join('/')) === 'other') throw invalid(`tar entry ${JSON.stringify(rel)}: a parent is not a directory`);
    }
    await fs.mkdir(path.join(dest, key), { recursive: true });
    for (let i = 1; i <= parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      if (!made.has(p)) made.set(p, 'dir');
    }
  };
  const forget = (rel: string) => {
    made.delete(rel);
    const prefix = `${rel}/`;
    for (const k of made.keys()) if (k.startsWith(prefix)) made.delete(k);
    for (const k of links) if (k === rel || k.startsWith(prefix)) links.delete(k);
  };
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const umask = currentUmask();
  /** chown only when the owner differs from ours; chmod only when open/mkdir could not set the mode (umask, special bits, chown). */
  const needChown = (h: tar.Header) => (h.uid ?? 0) !== uid || (h.gid ?? 0) !== gid;
  const needChmod = (mode: number, chowned: boolean) => (mode & umask) !== 0 || (mode & 0o7000) !== 0 || (chowned && (mode & 0o6000) !== 0);

  const consume = (async () => {
    for await (const entry of extract) {
      const h = entry.header;
      const rel = safeEntryPath(h.name);
      if (rel === '') {
        entry.resume();
        continue;
      }
      assertNoSymlinkParent(rel);
      const base = path.posix.basename(rel);
      const dir = path.posix.dirname(rel);
      const target = path.join(dest, rel);
      if (base === OPAQUE_WHITEOUT) {
        entry.resume();
        opaque.push(path.join(dest, dir));
        continue;
      }
      if (base.startsWith(WHITEOUT_PREFIX)) {
        entry.resume();
        const hidden = base.slice(WHITEOUT_PREFIX.length);
        if (!hidden || hidden === '..' || hidden === '.') throw invalid(`tar entry ${JSON.stringify(h.name)}: bad whiteout`);
        await ensureParent(rel);
        whiteouts.push(path.join(dest, dir, hidden));
        continue;
      }
      await ensureParent(rel);
      const mode = (h.mode ?? 0o644) & 0o7777;
      const existing = made.get(rel);
      if (existing && !(existing === 'dir' && h.type === 'directory')) {
        await fs.rm(target, { recursive: true, force: true });
        forget(rel);
      }
      const mtime = h.mtime ?? new Date(0);
      switch (h.type) {
        case 'directory': {
          if (!existing || existing !== 'dir') await fs.mkdir(target, { mode });
          made.set(rel, 'dir');
          const chowned = needChown(h);
          if (chowned) await fs.lchown(target, h.uid ?? 0, h.gid ?? 0);
          if (existing || needChmod(mode, chowned)) await fs.chmod(target, mode);
          dirTimes.push([target, mtime]);
          entry.resume();
          break;
        }
        case 'file':
        case 'contiguous-file': {
          const fh = await fs.open(target, 'wx', mode);
          made.set(rel, 'other');
          try {
            for await (const chunk of entry) {
              const buf = chunk as Buffer;
              for (let off = 0; off < buf.length; ) off += (await fh.write(buf, off)).bytesWritten;
            }
            const chowned = needChown(h);
            if (chowned) await fh.chown(h.uid ?? 0, h.gid ?? 0);
            if (needChmod(mode, chowned)) await fh.chmod(mode); // after chown, which clears setuid bits
            await fh.utimes(mtime, mtime);
          } finally {
            await fh.close();
          }
          size += h.size ?? 0;
          break;
        }
        case 'symlink': {
          const linkTarget = h.linkname ?? '';
          if (linkTarget === '') throw invalid(`tar entry ${JSON.stringify(h.name)}: symlink without a target`);
          if (symlinkEscapes(rel, linkTarget)) throw invalid(`tar entry ${JSON.stringify(h.name)}: symlink target ${JSON.stringify(linkTarget)} escapes the root`);
          await fs.symlink(linkTarget, target);
          made.set(rel, 'other');
          links.add(rel);
          if (needChown(h)) await fs.lchown(target, h.uid ?? 0, h.gid ?? 0);
          await fs.lutimes(target, mtime, mtime);
          entry.resume();
          break;
        }
        case 'link': {
          const src = safeEntryPath(h.linkname ?? '');
          assertNoSymlinkParent(src);
          if (links.has(src)) throw invalid(`tar entry ${JSON.stringify(h.name)}: hardlink to a symlink`);
          // the target must be a file an earlier entry made (not a directory, not the root, not missing)
          if (made.get(src) !== 'other') throw invalid(`tar entry ${JSON.stringify(h.name)}: hardlink to ${JSON.stringify(h.linkname ?? '')}, which is no earlier file`);
          await fs.link(path.join(dest, src), target);
          made.set(rel, 'other');
          entry.resume();
          break;
        }
        case 'fifo':
          await run('mkfifo', ['-m', mode.toString(8), target]);
          made.set(rel, 'other');
          if (needChown(h)) await fs.lchown(target, h.uid ?? 0, h.gid ?? 0);
          await fs.lutimes(target, mtime, mtime);
          entry.resume();
          break;
        case 'character-device':
        case 'block-device':
          if (!opts.devices) throw invalid(`tar entry ${JSON.stringify(h.name)}: device nodes are not allowed in layers`);
          await run('mknod', ['-m', mode.toString(8), target, h.type === 'character-device' ? 'c' : 'b', String(h.devmajor ?? 0), String(h.devminor ?? 0)]);
          made.set(rel, 'other');
          if (needChown(h)) await fs.lchown(target, h.uid ?? 0, h.gid ?? 0);
          await fs.lutimes(target, mtime, mtime);
          entry.resume();
          break;
        default:
          // pax headers and the like are consumed by the parser; anything else is skipped
          entry.resume();
          continue;
      }
    }
  })().catch((err: unknown) => {
    extract.destroy(err as Error);
    throw err;
  });

  const src = await decompressed(input);
  const [piped, consumed] = await Promise.allSettled([pipeline(src, hashing, extract), consume]);
  if (consumed.status === 'rejected') throw consumed.reason;
  if (piped.status === 'rejected') throw invalid(`bad layer tar: ${(piped.reason as Error).message}`);

  for (const w of whiteouts) {
    await fs.rm(w, { recursive: true, force: true });
    if (opts.overlayWhiteouts) await run('mknod', [w, 'c', '0', '0']);
  }
  if (opts.overlayWhiteouts) {
    for (const d of opaque) await run('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', d]);
  }
  for (const [d, t] of dirTimes.reverse()) await fs.utimes(d, t, t).catch(() => undefined);
  return { diffId: hashing.hasher.digest(), tarSize: hashing.hasher.size, size };
}
