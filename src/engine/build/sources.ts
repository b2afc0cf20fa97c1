/**
 * COPY and ADD: finding sources (globs, kept inside their root), hashing them for the cache, and copying
 * them into a container's root without ever following a symlink out of it.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { invalid } from '../../lib/errors.js';
import { resolveInRoot } from '../../lib/scopedpath.js';
import { matchGlob } from '../../lib/dockerignore.js';

export interface Source {
  /** As written in the Dockerfile, after expansion, for messages. */
  name: string;
  /** The resolved path on the host, inside its root. */
  abs: string;
  stat: Stats;
  /** ADD's download: never unpacked, its name from the URL. */
  remote?: boolean;
}

const GLOB = /[*?[]/;

/** Every source the patterns name under root; a pattern that leaves root or matches nothing is an error. */
export async function findSources(root: string, patterns: string[], what: 'context' | 'stage'): Promise<Source[]> {
  const out: Source[] = [];
  for (const p of patterns) {
    const rel = path.posix.normalize(p.replace(/^\/+/, '') || '.');
    if (rel === '..' || rel.startsWith('../')) throw invalid(`forbidden path outside the build context: ${p}`);
    const names = GLOB.test(rel) ? await glob(root, rel) : [rel];
    if (!names.length) throw invalid(`COPY failed: no source files were specified${GLOB.test(rel) ? ` (nothing matches ${p})` : ''}`);
    for (const n of names) {
      const abs = await resolveInRoot(root, n);
      const stat = await fs.stat(abs).catch(() => {
        throw invalid(what === 'context' ? `COPY failed: file not found in build context or excluded by .dockerignore: stat ${n}: file does not exist` : `COPY failed: stat ${n}: file does not exist`);
      });
      out.push({ name: n, abs, stat });
    }
  }
  return out;
}

/** Paths under root (relative, slash-separated) matching a Go filepath.Match pattern, segment by segment. */
async function glob(root: string, pattern: string): Promise<string[]> {
  const segs = pattern.split('/');
  let cur = [''];
  for (const [i, seg] of segs.entries()) {
    const next: string[] = [];
    for (const dir of cur) {
      if (!GLOB.test(seg)) {
        const p = dir ? `${dir}/${seg}` : seg;
        if (i === segs.length - 1 || (await fs.lstat(path.join(root, p)).then(() => true, () => false))) next.push(p);
        continue;
      }
      const entries = await fs.readdir(path.join(root, dir)).catch(() => [] as string[]);
      for (const e of entries.sort()) if (matchGlob(seg, e)) next.push(dir ? `${dir}/${e}` : e);
    }
    cur = next;
  }
  const present: string[] = [];
  for (const p of cur) if (await fs.lstat(path.join(root, p)).then(() => true, () => false)) present.push(p);
  return present;
}

/** A digest of the sources' content and metadata that a copy keeps: the cache key of COPY/ADD. */
export async function hashSources(sources: Source[], keepOwner: boolean): Promise<string> {
  const h = createHash('sha256');
  const add = async (abs: string, rel: string) => {
    const st = await fs.lstat(abs);
    h.update(`${rel}\0${st.mode}\0${keepOwner ? `${st.uid}:${st.gid}` : ''}\0`);
    if (st.isSymbolicLink()) h.update(`l${await fs.readlink(abs)}\0`);
    else if (st.isFile()) {
      h.update(`f${st.size}\0`);
      const fh = createHash('sha256');
      await pipeline(createReadStream(abs), fh);
      h.update(fh.digest('hex'));
    } else if (st.isDirectory()) {
      for (const e of (await fs.readdir(abs)).sort()) await add(path.join(abs, e), `${rel}/${e}`);
    }
  };
  for (const s of sources) {
    h.update(`\0src:${s.name}\0`);
    await add(s.abs, '.');
  }
  return h.digest('hex');
}

export interface CopyOptions {
  /** Owner for everything copied; else kept from the source (keepOwner) or root. */
  chown?: { uid: number; gid: number };
  keepOwner: boolean;
  chmod?: number;
}

/**
 * Copy one source to dest (a path inside rootfs, already made absolute) with Docker's rules: a directory's
 * contents go into dest; a file goes to dest, or into it when dest is (or is named as) a directory.
 */
export async function copySource(rootfs: string, src: Source, dest: string, destIsDir: boolean, o: CopyOptions): Promise<void> {
  const w = new RootWriter(rootfs, o);
  if (src.stat.isDirectory()) {
    const target = await w.dir(dest);
    await w.tree(src.abs, target, dest);
    return;
  }
  let to = dest;
  if (destIsDir || (await w.isDir(dest))) to = path.posix.join(dest, path.basename(src.name));
  const parent = await w.dir(path.posix.dirname(to));
  await w.entry(src.abs, path.join(parent, path.posix.basename(to)), await fs.lstat(src.abs));
}

/** Writes into a container root: each existing path component is resolved with the root as "/". */
class RootWriter {
  constructor(
    private readonly rootfs: string,
    private readonly o: CopyOptions,
  ) {}

  async isDir(p: string): Promise<boolean> {
    const st = await fs.stat(await resolveInRoot(this.rootfs, p)).catch(() => undefined);
    return !!st?.isDirectory();
  }

  /** The host path of directory p (inside the root), made with its missing parents (root-owned, 0755). */
  async dir(p: string): Promise<string> {
    const abs = await resolveInRoot(this.rootfs, p);
    const st = await fs.lstat(abs).catch(() => undefined);
    if (st && !st.isDirectory()) throw invalid(`cannot copy to ${p}: it exists and is not a directory`);
    if (!st) {
      // resolveInRoot followed every component that exists: what is left are plain names to create
      const created = await fs.mkdir(abs, { recursive: true, mode: 0o755 });
      if (created && this.o.chown) {
        for (let d = abs; d.length >= created.length; d = path.dirname(d)) await fs.lchown(d, this.o.chown.uid, this.o.chown.gid);
      }
    }
    return abs;
  }

  /** Copy the contents of src into dir `target` (whose path in the container is `inRoot`). */
  async tree(src: string, target: string, inRoot: string): Promise<void> {
    for (const name of (await fs.readdir(src)).sort()) {
      const from = path.join(src, name);
      const st = await fs.lstat(from);
      let to = path.join(target, name);
      const existing = await fs.lstat(to).catch(() => undefined);
      if (st.isDirectory()) {
        // a symlink already in the image is followed, inside the root
        if (existing?.isSymbolicLink()) to = await this.dir(path.posix.join(inRoot, name));
        else if (existing && !existing.isDirectory()) {
          await fs.rm(to, { force: true });
          await fs.mkdir(to);
        } else if (!existing) await fs.mkdir(to);
        await this.meta(to, st);
        await this.tree(from, to, path.posix.join(inRoot, name));
      } else await this.entry(from, to, st, existing);
    }
  }

  /** One non-directory entry; whatever is at `to` is replaced, never written through. */
  async entry(from: string, to: string, st: Stats, existing?: Stats): Promise<void> {
    existing ??= await fs.lstat(to).catch(() => undefined);
    if (existing?.isDirectory()) throw invalid(`cannot replace directory ${to.slice(this.rootfs.length) || '/'} with a file`);
    if (existing) await fs.rm(to, { force: true });
    if (st.isSymbolicLink()) await fs.symlink(await fs.readlink(from), to);
    else if (st.isFile()) await fs.copyFile(from, to, fs.constants.COPYFILE_FICLONE);
    else return; // sockets, fifos and devices are not copied, as Docker skips them
    await this.meta(to, st);
  }

  private async meta(to: string, st: Stats): Promise<void> {
    const own = this.o.chown ?? (this.o.keepOwner ? { uid: st.uid, gid: st.gid } : { uid: 0, gid: 0 });
    await fs.lchown(to, own.uid, own.gid);
    if (st.isSymbolicLink()) return;
    await fs.chmod(to, this.o.chmod ?? st.mode & 0o7777);
    await fs.utimes(to, st.atime, st.mtime);
  }
}
