import { promises as fs, constants } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';

/** Write a file so that readers see either the old or the complete new content (temp + fsync + rename). */
export async function atomicWrite(file: string, data: string | Buffer, mode = 0o644): Promise<void> {
  const tmp = path.join(path.dirname(file), `.tmp-${path.basename(file)}-${randomBytes(6).toString('hex')}`);
  const fh = await fs.open(tmp, 'w', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

export async function atomicWriteJson(file: string, value: unknown): Promise<void> {
  await atomicWrite(file, JSON.stringify(value, null, 1));
}

export async function readJson<T>(file: string): Promise<T> {
  return JSON.parse(await fs.readFile(file, 'utf8')) as T;
}

export async function readJsonOr<T>(file: string, fallback: T): Promise<T> {
  try {
    return await readJson<T>(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fallback;
    throw err;
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

export async function ensureDir(p: string, mode = 0o755): Promise<string> {
  await fs.mkdir(p, { recursive: true, mode });
  return p;
}

/** Remove a tree; tolerates it being gone already. */
export async function removeTree(p: string): Promise<void> {
  await fs.rm(p, { recursive: true, force: true, maxRetries: 3 });
}

/** Size in bytes of all regular files under a directory (no symlink following). */
export async function treeSize(dir: string): Promise<number> {
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      entries = await fs.readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) total += (await fs.lstat(p)).size;
    }
  };
  await walk(dir);
  return total;
}

/** Is a file system mounted exactly at `dir` (in this mount namespace)? mountinfo lists resolved paths. */
export async function mountedAt(dir: string): Promise<boolean> {
  const real = await fs.realpath(dir).catch(() => dir);
  const info = await fs.readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((l) => l.split(' ')[4]?.replace(/\\040/g, ' ') === real);
}
