import { promises as fs } from 'node:fs';
import path from 'node:path';
import { invalid } from './errors.js';

/**
 * Resolve a path inside `root` as the container sees it: symlinks are followed with `root` as "/",
 * so the result never leaves root (Docker's FollowSymlinkInScope). The last component is followed too
 * unless `followLast` is false.
 */
export async function resolveInRoot(root: string, p: string, followLast = true): Promise<string> {
  const parts = path.posix.normalize(`/${p}`).split('/').filter(Boolean);
  const done: string[] = [];
  let hops = 0;
  while (parts.length) {
    const part = parts.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const candidate = path.join(root, ...done, part);
    const isLast = parts.length === 0;
    let st;
    try {
      st = await fs.lstat(candidate);
    } catch {
      done.push(part);
      continue;
    }
    if (st.isSymbolicLink() && (followLast || !isLast)) {
      if (++hops > 255) throw invalid(`too many levels of symbolic links in ${p}`);
      const target = await fs.readlink(candidate);
      const next = target.split('/').filter(Boolean);
      if (target.startsWith('/')) done.length = 0;
      parts.unshift(...next);
      continue;
    }
    done.push(part);
  }
  return path.join(root, ...done);
}
