import { promises as fs } from 'node:fs';
import path from 'node:path';
import { invalid } from '../../lib/errors.js';

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home: string;
}

async function readLines(file: string): Promise<string[][]> {
  try {
    return (await fs.readFile(file, 'utf8')).split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(':'));
  } catch {
    return [];
  }
}

/**
 * Resolve Docker's `user[:group]` (names or numbers) against the container's /etc/passwd and /etc/group; `groupAdd`
 * (--group-add, names or numbers) joins the user's supplementary groups.
 */
export async function resolveUser(rootfs: string, spec: string, groupAdd: string[] = []): Promise<ResolvedUser> {
  const [userPart = '', groupPart] = spec ? spec.split(':', 2) : ['0'];
  const passwd = await readLines(path.join(rootfs, 'etc/passwd'));
  const groups = await readLines(path.join(rootfs, 'etc/group'));
  let uid: number;
  let gid = 0;
  let home = '/';
  let name: string | undefined;
  const entry = /^\d+$/.test(userPart) ? passwd.find((p) => p[2] === userPart) : passwd.find((p) => p[0] === userPart);
  if (/^\d+$/.test(userPart || '0')) {
    uid = Number(userPart || '0');
    if (entry) {
      gid = Number(entry[3]);
      home = entry[5] || '/';
      name = entry[0];
    }
  } else {
    if (!entry) throw invalid(`unable to find user ${userPart}: no matching entries in passwd file`);
    uid = Number(entry[2]);
    gid = Number(entry[3]);
    home = entry[5] || '/';
    name = entry[0];
  }
  if (groupPart !== undefined && groupPart !== '') {
    if (/^\d+$/.test(groupPart)) gid = Number(groupPart);
    else {
      const g = groups.find((x) => x[0] === groupPart);
      if (!g) throw invalid(`unable to find group ${groupPart}: no matching entries in group file`);
      gid = Number(g[2]);
    }
  }
  const additionalGids = name
    ? groups.filter((g) => (g[3] ?? '').split(',').includes(name!)).map((g) => Number(g[2])).filter((g) => g !== gid)
    : [];
  for (const g of groupAdd) {
    const found = /^\d+$/.test(g) ? Number(g) : groups.find((x) => x[0] === g)?.[2];
    if (found === undefined) throw invalid(`Unable to find group ${g}: no matching entries in group file`);
    if (!additionalGids.includes(Number(found))) additionalGids.push(Number(found));
  }
  return { uid, gid, additionalGids, home };
}
