import { promises as fs, createReadStream } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import tar from 'tar-stream';
import type { Readable } from 'node:stream';
import type { Output, PathStat } from '../../docker-api/index.js';
import type { ContainerService } from '../containers/service.js';
import { invalid, notFound } from '../../lib/errors.js';
import { resolveInRoot } from '../../lib/scopedpath.js';
import { safeEntryPath, decompressed } from '../../lib/tarsafe.js';
import { packEntry, packStream, sendStream } from '../../lib/streams.js';
import type { ContainerRecord } from '../containers/model.js';

/** Go's os.FileMode bits that Docker's path stat carries. */
function goMode(st: { mode: number; isDirectory(): boolean; isSymbolicLink(): boolean }): number {
  let m = st.mode & 0o777;
  if (st.isDirectory()) m |= 0x80000000;
  if (st.isSymbolicLink()) m |= 0x08000000;
  return m >>> 0;
}

/** Map a container path to the host: through a volume or bind mount if one covers it, else the rootfs. */
async function hostPath(rootfs: string, rec: ContainerRecord, p: string, followLast: boolean): Promise<string> {
  const norm = path.posix.normalize(`/${p}`);
  const m = [...rec.Mounts]
    .filter((x) => x.Type !== 'tmpfs' && x.Source && (norm === x.Destination || norm.startsWith(`${x.Destination}/`)))
    .sort((a, b) => b.Destination.length - a.Destination.length)[0];
  if (m) return resolveInRoot(m.Source, norm.slice(m.Destination.length) || '/', followLast);
  return resolveInRoot(rootfs, norm, followLast);
}

async function pathStat(target: string, name: string): Promise<PathStat> {
  const st = await fs.lstat(target).catch(() => undefined);
  if (!st) throw notFound(`Could not find the file ${name} in container`);
  const linkTarget = st.isSymbolicLink() ? await fs.readlink(target) : '';
  return { name: path.posix.basename(name) || '/', size: st.size, mode: goMode(st), mtime: st.mtime.toISOString(), linkTarget };
}

/** `X-Docker-Container-Path-Stat`'s encoding. */
export const statHeader = (s: PathStat): string => Buffer.from(JSON.stringify(s)).toString('base64');

async function packTree(pack: tar.Pack, hostRoot: string, name: string): Promise<void> {
  const st = await fs.lstat(hostRoot);
  const header = { name, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
  if (st.isDirectory()) {
    await packEntry(pack, { ...header, type: 'directory' });
    for (const child of (await fs.readdir(hostRoot)).sort()) await packTree(pack, path.join(hostRoot, child), `${name}/${child}`);
  } else if (st.isSymbolicLink()) {
    await packEntry(pack, { ...header, type: 'symlink', linkname: await fs.readlink(hostRoot) });
  } else if (st.isFile()) {
    // a file growing meanwhile is cut at the size its header promised
    await packEntry(pack, { ...header, type: 'file', size: st.size }, st.size ? createReadStream(hostRoot, { end: st.size - 1 }) : Buffer.alloc(0));
  }
}

/** `docker cp` from a container: the path's stat (HEAD), or it as a tar (GET). */
export async function statPath(svc: ContainerService, id: string, p: string): Promise<PathStat> {
  if (!p) throw invalid('path is required');
  return svc.withRootfs(id, async (rootfs, rec) => {
    const target = await hostPath(rootfs, rec, p, false);
    return pathStat(target, p).catch(() => {
      throw notFound(`Could not find the file ${p} in container ${id}`);
    });
  });
}

export async function getArchive(svc: ContainerService, id: string, p: string, out: Output): Promise<void> {
  if (!p) throw invalid('path is required');
  await svc.withRootfs(id, async (rootfs, rec) => {
    const target = await hostPath(rootfs, rec, p, false);
    const stat = await pathStat(target, p).catch(() => {
      throw notFound(`Could not find the file ${p} in container ${id}`);
    });
    const st = await fs.lstat(target);
    const base = st.isDirectory() && p.endsWith('/.') ? '.' : path.posix.basename(path.posix.normalize(p)) || '.';
    const res = out.open('application/x-tar', { 'X-Docker-Container-Path-Stat': statHeader(stat) });
    await sendStream(packStream((pack) => packTree(pack, target, base)), res);
  });
}

/** `docker cp` into a container: a tar (gzip or zstd too) extracted at a directory, never outside the container. */
export async function putArchive(svc: ContainerService, id: string, p: string, body: Readable): Promise<void> {
  if (!p) throw invalid('path is required');
  await svc.withRootfs(id, async (rootfs, rec) => {
    if (rec.HostConfig.ReadonlyRootfs) throw invalid('container rootfs is marked read-only');
    const destDir = await hostPath(rootfs, rec, p, true);
    const st = await fs.stat(destDir).catch(() => undefined);
    if (!st) throw notFound(`Could not find the file ${p} in container ${id}`);
    if (!st.isDirectory()) throw invalid(`extraction point is not a directory`);
    const extract = tar.extract();
    const work = (async () => {
      for await (const entry of extract) {
        const h = entry.header;
        const rel = safeEntryPath(h.name);
        if (!rel) {
          entry.resume();
          continue;
        }
        // resolve the parent inside the container, so a symlink in the image cannot lead outside it
        const parent = await resolveInRoot(destDir, path.posix.dirname(rel));
        if (!parent.startsWith(destDir)) throw invalid(`tar entry ${h.name} escapes the destination`);
        await fs.mkdir(parent, { recursive: true });
        const target = path.join(parent, path.posix.basename(rel));
        const mode = (h.mode ?? 0o644) & 0o7777;
        if (h.type === 'directory') {
          await fs.mkdir(target, { recursive: true });
          entry.resume();
        } else if (h.type === 'file') {
          await fs.rm(target, { force: true, recursive: false }).catch(() => undefined);
          await pipeline(entry, createWriteStream(target, { mode }));
        } else if (h.type === 'symlink') {
          await fs.rm(target, { force: true });
          await fs.symlink(h.linkname ?? '', target);
          entry.resume();
        } else {
          entry.resume();
          continue;
        }
        await fs.lchown(target, h.uid ?? 0, h.gid ?? 0).catch(() => undefined);
        if (h.type !== 'symlink') await fs.chmod(target, mode);
      }
    })().catch((err: Error) => {
      extract.destroy(err);
      throw err;
    });
    const [a, b] = await Promise.allSettled([pipeline(await decompressed(body), extract), work]);
    if (b.status === 'rejected') throw b.reason;
    if (a.status === 'rejected') throw invalid(`bad archive: ${(a.reason as Error).message}`);
  });
}
