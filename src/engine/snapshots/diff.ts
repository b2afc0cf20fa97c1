/**
 * A container's changes, read from its overlay upper dir: as an OCI layer tar (commit), as Docker's change list
 * (`docker diff`), and a tar of a whole tree (`docker export` of the merged root).
 */
import { promises as fs, createReadStream, type Stats } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type tar from 'tar-stream';
import { internal, errorMessage } from '../../lib/errors.js';
import { OPAQUE_WHITEOUT, WHITEOUT_PREFIX } from '../../lib/tarsafe.js';
import { packEntry, packStream, type EntryHeader } from '../../lib/streams.js';

const run = promisify(execFile);

/** Docker's change kinds: 0 modified, 1 added, 2 deleted. */
export type ChangeKind = 0 | 1 | 2;
export interface Change {
  Path: string;
  Kind: ChangeKind;
}

export interface DiffOptions {
  /** Paths (relative, no leading slash) to leave out, with everything under them: runtime mount points. */
  exclude?: ReadonlySet<string>;
}

/** An overlayfs whiteout: a character device 0/0. */
export function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

/**
 * Directories under `upper` marked opaque (trusted.overlay.opaque=y), relative paths. One getfattr run for the
 * whole tree: Node cannot read xattrs, and a process per directory would cost more than the walk.
 */
export async function opaqueDirs(upper: string): Promise<Set<string>> {
  let out: string;
  try {
    const r = await run('getfattr', ['-R', '-P', '-h', '--absolute-names', '-d', '-m', '^trusted\\.overlay\\.opaque$', '-e', 'text', upper], { encoding: 'latin1', maxBuffer: 256 << 20 });
    out = r.stdout;
  } catch (err) {
    // getfattr exits 1 when some file vanished meanwhile; what it printed is still right
    const stdout = (err as { stdout?: string }).stdout;
    if (typeof stdout !== 'string' || (err as { code?: unknown }).code === 'ENOENT') throw internal(`reading overlay xattrs failed (is getfattr, package attr, installed?): ${errorMessage(err)}`, err);
    out = stdout;
  }
  const dirs = new Set<string>();
  const prefix = `${upper.replace(/\/+$/, '')}/`;
  let file: string | undefined;
  for (const line of out.split('\n')) {
    if (line.startsWith('# file: ')) file = unescapeName(line.slice(8));
    else if (file !== undefined && line === 'trusted.overlay.opaque="y"' && file.startsWith(prefix)) dirs.add(file.slice(prefix.length));
  }
  return dirs;
}

/** Is this one directory opaque? */
export async function isOpaque(dir: string): Promise<boolean> {
  try {
    const r = await run('getfattr', ['-h', '--only-values', '-n', 'trusted.overlay.opaque', dir], { encoding: 'latin1' });
    return r.stdout === 'y';
  } catch {
    return false; // no such attribute
  }
}

/** getfattr prints bytes it will not show as \ooo; the text came in as latin1, one char per byte. */
function unescapeName(s: string): string {
  return Buffer.from(s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))), 'latin1').toString('utf8');
}

async function lstatOrUndefined(p: string): Promise<Stats | undefined> {
  try {
    return await fs.lstat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // gone while we walked (a running container)
    throw err;
  }
}

async function sortedNames(dir: string): Promise<string[]> {
  try {
    return (await fs.readdir(dir)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Linux's dev_t split (glibc's major()/minor()). */
function devNumbers(rdev: number): { devmajor: number; devminor: number } {
  const d = BigInt(rdev);
  return {
    devmajor: Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn)),
    devminor: Number((d & 0xffn) | ((d >> 12n) & ~0xffn)),
  };
}

interface PackMode {
  /** An overlay upper: whiteouts and opaque dirs become OCI whiteout entries. */
  layer: boolean;
  opaque: Set<string>;
  exclude: ReadonlySet<string>;
  /** Do not descend into directories on another filesystem (mounts under a merged root). */
  dev?: number;
}

/** Write one tree into the pack, depth first in sorted order: the same content gives the same bytes. */
async function packTree(pack: tar.Pack, root: string, mode: PackMode): Promise<void> {
  const seen = new Map<string, string>(); // dev:ino of files with several links → the name written first
  const add = (header: EntryHeader) => packEntry(pack, header);
  const visit = async (rel: string): Promise<void> => {
    for (const name of await sortedNames(path.join(root, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      if (mode.exclude.has(r)) continue;
      const abs = path.join(root, r);
      const st = await lstatOrUndefined(abs);
      if (!st) continue;
      const base = { name: r, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
      if (mode.layer && isWhiteout(st)) {
        // Docker's form: an empty regular file named .wh.<name>, mode 0600
        await add({ ...base, name: rel ? `${rel}/${WHITEOUT_PREFIX}${name}` : `${WHITEOUT_PREFIX}${name}`, type: 'file', mode: 0o600, size: 0 });
      } else if (st.isDirectory()) {
        await add({ ...base, name: `${r}/`, type: 'directory' });
        if (mode.layer && mode.opaque.has(r)) {
          await add({ ...base, name: `${r}/${OPAQUE_WHITEOUT}`, type: 'file', mode: st.mode & 0o777, size: 0 });
        }
        if (mode.dev === undefined || st.dev === mode.dev) await visit(r);
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? seen.get(key) : undefined;
        if (first !== undefined) {
          await add({ ...base, type: 'link', linkname: first, size: 0 });
          continue;
        }
        if (st.nlink > 1) seen.set(key, r);
        await packFile(pack, abs, { ...base, type: 'file', size: st.size });
      } else if (st.isSymbolicLink()) {
        await add({ ...base, type: 'symlink', linkname: await fs.readlink(abs) });
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        await add({ ...base, type: st.isCharacterDevice() ? 'character-device' : 'block-device', ...devNumbers(st.rdev) });
      } else if (st.isFIFO()) {
        await add({ ...base, type: 'fifo' });
      }
      // sockets have no tar form (Docker leaves them out too)
    }
  };
  await visit('');
}

/** A regular file's bytes, exactly the size its header promised (a file growing meanwhile is cut there). */
function packFile(pack: tar.Pack, abs: string, header: EntryHeader & { size: number }): Promise<void> {
  return packEntry(pack, header, header.size ? createReadStream(abs, { start: 0, end: header.size - 1, highWaterMark: 1 << 20 }) : undefined);
}

/**
 * An overlay upper dir as an uncompressed OCI layer tar: whiteouts (char 0/0) become `.wh.<name>`, opaque
 * directories get `<dir>/.wh..wh..opq` after their entry; files, directories, symlinks, hard links (one inode
 * written once, then link entries), device nodes and fifos keep mode, owner and mtime.
 */
export function upperToLayer(upper: string, opts: DiffOptions = {}): Readable {
  return packStream(async (pack) => {
    const opaque = await opaqueDirs(upper);
    await packTree(pack, upper, { layer: true, opaque, exclude: opts.exclude ?? new Set() });
  });
}

/** A whole tree as a tar (`docker export` of a merged root); mounts below it are left out. */
export function treeToTar(root: string): Readable {
  return packStream(async (pack) => {
    const st = await fs.lstat(root);
    await packTree(pack, root, { layer: false, opaque: new Set(), exclude: new Set(), dev: st.dev });
  });
}

/**
 * Docker's `docker diff` from an overlay upper dir: whiteouts are deletions (2), an opaque directory that existed
 * below was deleted and made anew (2, its entries added), anything else is added (1) or, when it existed below,
 * modified (0). Order: depth first, sorted, a directory before its entries.
 */
export async function changes(upper: string, lowerExists: (rel: string) => Promise<boolean>, opts: DiffOptions = {}): Promise<Change[]> {
  const opaque = await opaqueDirs(upper);
  const exclude = opts.exclude ?? new Set<string>();
  const out: Change[] = [];
  // hidden: under an opaque dir nothing from below shows, so whatever is there was added
  const visit = async (rel: string, hidden: boolean): Promise<void> => {
    for (const name of await sortedNames(path.join(upper, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      if (exclude.has(r)) continue;
      const st = await lstatOrUndefined(path.join(upper, r));
      if (!st) continue;
      const p = `/${r}`;
      if (isWhiteout(st)) {
        out.push({ Path: p, Kind: 2 });
        continue;
      }
      const below = !hidden && (await lowerExists(r));
      if (st.isDirectory()) {
        const isOpaque = opaque.has(r);
        out.push({ Path: p, Kind: isOpaque && below ? 2 : below ? 0 : 1 });
        await visit(r, hidden || isOpaque);
      } else {
        out.push({ Path: p, Kind: below ? 0 : 1 });
      }
    }
  };
  await visit('', false);
  return out;
}

/**
 * Does a path exist in the image below a container (its layer diff dirs, top first)? As Docker's overlay
 * driver: any layer having it (not as a whiteout) counts.
 */
export function lowerExistsIn(lowerDirs: string[]): (rel: string) => Promise<boolean> {
  return async (rel) => (await lowerStat(lowerDirs, rel)) !== undefined;
}

/** The path's stat in the topmost layer that has it (whiteouts mean gone). */
export async function lowerStat(lowerDirs: string[], rel: string): Promise<Stats | undefined> {
  for (const d of lowerDirs) {
    const st = await lstatOrUndefined(path.join(d, rel)).catch(() => undefined);
    if (!st) continue;
    // reached through a symlink in that layer: not this path (and maybe not even inside the layer)
    const real = await fs.realpath(path.join(d, path.posix.dirname(rel))).catch(() => '');
    if (real !== path.join(await fs.realpath(d), path.posix.dirname(rel))) continue;
    return isWhiteout(st) ? undefined : st;
  }
  return undefined;
}
