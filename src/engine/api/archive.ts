import { promises as fs, createReadStream } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import tar from 'tar-stream';
import type { Router, Ctx } from './http.js';
import type { Engine } from '../engine.js';
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

async function statHeader(target: string, name: string): Promise<string> {
  const st = await fs.lstat(target).catch(() => undefined);
  if (!st) throw notFound(`Could not find the file ${name} in container`);
  const linkTarget = st.isSymbolicLink() ? await fs.readlink(target) : '';
  return Buffer.from(JSON.stringify({ name: path.posix.basename(name) || '/', size: st.size, mode: goMode(st), mtime: st.mtime.toISOString(), linkTarget })).toString('base64');
}

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

export function archiveRoutes(r: Router, e: Engine): void {
  const svc = e.containers;

  const stat = async (ctx: Ctx, head: boolean) => {
    const p = ctx.query.get('path');
    if (!p) throw invalid('path is required');
    await svc.withRootfs(ctx.param('id'), async (rootfs, rec) => {
      const target = await hostPath(rootfs, rec, p, !p.endsWith('/.') && false);
      const hdr = await statHeader(target, p).catch(() => {
        throw notFound(`Could not find the file ${p} in container ${ctx.param('id')}`);
      });
      if (head) {
        ctx.send(200, undefined, { 'X-Docker-Container-Path-Stat': hdr });
        return;
      }
      const st = await fs.lstat(target);
      const base = st.isDirectory() && p.endsWith('/.') ? '.' : path.posix.basename(path.posix.normalize(p)) || '.';
      const res = ctx.res!;
      res.writeHead(200, { 'Content-Type': 'application/x-tar', 'X-Docker-Container-Path-Stat': hdr });
      await sendStream(packStream((pack) => packTree(pack, target, base)), res);
    });
  };
  r.add('HEAD', '/containers/{id}/archive', (ctx) => stat(ctx, true));
  r.add('GET', '/containers/{id}/archive', (ctx) => stat(ctx, false));

  r.add('PUT', '/containers/{id}/archive', async (ctx) => {
    const p = ctx.query.get('path');
    if (!p) throw invalid('path is required');
    await svc.withRootfs(ctx.param('id'), async (rootfs, rec) => {
      if (rec.HostConfig.ReadonlyRootfs) throw invalid('container rootfs is marked read-only');
      const destDir = await hostPath(rootfs, rec, p, true);
      const st = await fs.stat(destDir).catch(() => undefined);
      if (!st) throw notFound(`Could not find the file ${p} in container ${ctx.param('id')}`);
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
      const [a, b] = await Promise.allSettled([pipeline(await decompressed(ctx.req), extract), work]);
      if (b.status === 'rejected') throw b.reason;
      if (a.status === 'rejected') throw invalid(`bad archive: ${(a.reason as Error).message}`);
    });
    ctx.send(200);
  });
}
