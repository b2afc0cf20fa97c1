/**
 * What single build instructions need beyond the builder's state: their arguments (EXPOSE, --chmod, --chown,
 * HEALTHCHECK) and the sources ADD and COPY take from outside the context (URLs, heredocs).
 */
import { createHash } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import os from 'node:os';
import path from 'node:path';
import { invalid } from '../../lib/errors.js';
import type { ImageRuntimeConfig } from '../../lib/oci.js';
import { parseGoDuration } from '../../lib/goduration.js';
import { resolveUser } from '../containers/user.js';
import type { Instruction } from './dockerfile.js';
import { copySource, type Source } from './sources.js';

/** "80", "80/udp", "8000-8002/tcp" → Docker's port keys. */
export function exposePorts(w: string): string[] {
  const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(w);
  if (!m) throw invalid(`Invalid containerPort: ${w}`);
  const lo = Number(m[1]);
  const hi = m[2] ? Number(m[2]) : lo;
  if (hi < lo || hi > 65535) throw invalid(`Invalid port range: ${w}`);
  const proto = (m[3] ?? 'tcp').toLowerCase();
  const out: string[] = [];
  for (let p = lo; p <= hi; p++) out.push(`${p}/${proto}`);
  return out;
}

export function parseChmod(s: string): number {
  if (!/^[0-7]{3,4}$/.test(s)) throw invalid(`invalid chmod parameter: ${s} (an octal mode such as 755)`);
  return parseInt(s, 8);
}

export async function resolveChown(rootfs: string, spec: string): Promise<{ uid: number; gid: number }> {
  const [user = '', group] = spec.split(':');
  const u = await resolveUser(rootfs, group === undefined ? user : `${user}:${group}`);
  // Docker: a user given alone gets the group of the same name/id, not the user's primary group
  return { uid: u.uid, gid: group === undefined && /^\d+$/.test(user) ? u.uid : u.gid };
}

/** A HEALTHCHECK duration flag ("30s", "1m30s") in nanoseconds. */
function duration(s: string, flag: string): number {
  const ns = parseGoDuration(s);
  if (ns === undefined || ns < 0) throw invalid(`invalid duration for --${flag}: ${s}`);
  return ns;
}

export function healthcheck(ins: Instruction): NonNullable<ImageRuntimeConfig['Healthcheck']> {
  const text = ins.raw.trim();
  if (/^NONE$/i.test(text)) return { Test: ['NONE'] };
  const m = /^CMD\s+([\s\S]*)$/i.exec(text);
  if (!m) throw invalid(`HEALTHCHECK: unknown type (line ${ins.line}): use CMD or NONE`);
  const rest = m[1]!.trim();
  let test: string[];
  try {
    const arr = JSON.parse(rest) as unknown;
    test = Array.isArray(arr) && arr.every((a) => typeof a === 'string') ? ['CMD', ...(arr as string[])] : ['CMD-SHELL', rest];
  } catch {
    test = ['CMD-SHELL', rest];
  }
  const hc: NonNullable<ImageRuntimeConfig['Healthcheck']> = { Test: test };
  const f = ins.flags;
  if (f.interval) hc.Interval = duration(f.interval, 'interval');
  if (f.timeout) hc.Timeout = duration(f.timeout, 'timeout');
  if (f['start-period']) hc.StartPeriod = duration(f['start-period'], 'start-period');
  if (f['start-interval']) (hc as Record<string, unknown>).StartInterval = duration(f['start-interval'], 'start-interval');
  if (f.retries) {
    if (!/^\d+$/.test(f.retries) || Number(f.retries) < 1) throw invalid(`--retries must be at least 1 (line ${ins.line})`);
    hc.Retries = Number(f.retries);
  }
  return hc;
}

/** ADD's remote source: fetched whole (its digest is the cache key), mode 0600 and Last-Modified as Docker sets. */
export async function download(url: string, dir: string, signal: AbortSignal, checksum?: string): Promise<Source> {
  const res = await fetch(url, { signal, redirect: 'follow' }).catch((err: unknown) => {
    throw invalid(`ADD ${url}: ${(err as Error).message}`);
  });
  if (!res.ok || !res.body) throw invalid(`ADD ${url}: the server answered ${res.status} ${res.statusText}`);
  const name = decodeURIComponent(new URL(url).pathname.split('/').filter(Boolean).pop() ?? '') || '__unnamed__';
  const file = path.join(dir, `${Math.random().toString(36).slice(2)}-${name}`);
  await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), createWriteStream(file, { mode: 0o600 }));
  if (checksum) {
    const want = checksum.replace(/^sha256:/, '');
    const got = createHash('sha256').update(await fs.readFile(file)).digest('hex');
    if (got !== want) throw invalid(`ADD ${url}: digest mismatch: expected sha256:${want}, got sha256:${got}`);
  }
  const modified = Date.parse(res.headers.get('last-modified') ?? '');
  if (Number.isFinite(modified)) await fs.utimes(file, new Date(modified), new Date(modified));
  return { name, abs: file, stat: await fs.lstat(file), remote: true };
}

/** COPY <<EOF dest: a file of the heredoc's content. */
export async function writeHeredoc(rootfs: string, name: string, content: string, dest: string, destIsDir: boolean, o: { chown?: { uid: number; gid: number }; chmod?: number }): Promise<void> {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'sampan-heredoc-'));
  try {
    const file = path.join(tmp, name);
    await fs.writeFile(file, content, { mode: 0o644 });
    const st = await fs.lstat(file);
    const src: Source = { name, abs: file, stat: st };
    await copySource(rootfs, src, dest, destIsDir, { ...o, keepOwner: false });
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}
