/**
 * The build context as it arrives: the tar is kept in one file and indexed on the way in (each file's size, mode
 * and sha256), so COPY's cache keys come from the index and a build whose steps are all cached never unpacks it.
 * It is unpacked (safely, .dockerignore applied) the first time a step has to copy from it.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { invalid } from '../../lib/errors.js';
import { decompressed, extractLayer, safeEntryPath } from '../../lib/tarsafe.js';
import { DockerIgnore, matchGlob } from '../../lib/dockerignore.js';

interface Entry {
  type: 'file' | 'directory' | 'symlink' | 'other';
  mode: number;
  size: number;
  linkname?: string;
  sha?: string;
}

/** The Dockerfile and .dockerignore are kept in memory (up to this size) as they pass. */
const SMALL = 1 << 20;
const GLOB = /[*?[]/;

export class BuildContext {
  private readonly entries = new Map<string, Entry>();
  private readonly small = new Map<string, Buffer>();
  private ignore?: DockerIgnore;
  private unpacked?: Promise<string>;

  private constructor(
    private readonly dir: string,
    /** Files whose content is kept in memory (relative paths). */
    private readonly keep: Set<string>,
  ) {}

  /** Read the context (a tar, plain or gzip) into `dir`: the tar kept, every entry indexed, `keep` files in memory. */
  static async receive(input: Readable, dir: string, keep: string[]): Promise<BuildContext> {
    const ctx = new BuildContext(dir, new Set(keep.map((k) => path.posix.normalize(k))));
    const plain = await decompressed(input);
    const toFile = new PassThrough({ highWaterMark: 1 << 20 });
    const toIndex = new PassThrough({ highWaterMark: 1 << 20 });
    plain.pipe(toFile);
    plain.pipe(toIndex);
    plain.once('error', (err) => {
      toFile.destroy(err);
      toIndex.destroy(err);
    });
    await Promise.all([pipeline(toFile, createWriteStream(ctx.tarFile, { flags: 'wx', mode: 0o600 })), ctx.index(toIndex)]);
    return ctx;
  }

  private get tarFile(): string {
    return path.join(this.dir, 'context.tar');
  }

  private async index(input: Readable): Promise<void> {
    const ex = tar.extract();
    ex.on('entry', (h, body, next) => {
      void (async () => {
        const rel = safeEntryPath(h.name);
        const type = h.type === 'file' || h.type === 'contiguous-file' ? 'file' : h.type === 'directory' || h.type === 'symlink' ? h.type : 'other';
        const e: Entry = { type, mode: (h.mode ?? 0o644) & 0o7777, size: h.size ?? 0, linkname: h.linkname ?? undefined };
        if (type === 'file') {
          const hash = createHash('sha256');
          const chunks: Buffer[] | undefined = e.size <= SMALL && this.keep.has(rel) ? [] : undefined;
          for await (const c of body) {
            hash.update(c as Buffer);
            chunks?.push(c as Buffer);
          }
          e.sha = hash.digest('hex');
          if (chunks) this.small.set(rel, Buffer.concat(chunks));
        } else body.resume();
        if (rel) this.entries.set(rel, e);
        // parent directories a tar leaves out are implied
        for (let d = path.posix.dirname(rel); d !== '.' && !this.entries.has(d); d = path.posix.dirname(d)) this.entries.set(d, { type: 'directory', mode: 0o755, size: 0 });
        next();
      })().catch((err: unknown) => next(err as Error));
    });
    await pipeline(input, ex).catch((err: unknown) => {
      throw invalid(`cannot read the build context (a tar, plain or gzip): ${(err as Error).message}`);
    });
  }

  /** A kept file's content (the Dockerfile, .dockerignore). */
  file(rel: string): string | undefined {
    return this.small.get(path.posix.normalize(rel))?.toString('utf8');
  }

  /** Take the .dockerignore into account (the Dockerfile has been read by then: an ignored one only stays out of COPY). */
  applyIgnore(): void {
    const text = this.file('.dockerignore');
    if (text === undefined) return;
    this.ignore = DockerIgnore.parse(text);
    for (const rel of [...this.entries.keys()]) if (this.entries.get(rel)!.type !== 'directory' && this.ignore.ignores(rel)) this.entries.delete(rel);
    // a directory stays if it is not ignored itself or something below it was kept
    const kept = new Set<string>();
    for (const [rel, e] of this.entries) {
      if (e.type === 'directory') continue;
      for (let d = path.posix.dirname(rel); d !== '.'; d = path.posix.dirname(d)) kept.add(d);
    }
    for (const [rel, e] of [...this.entries]) if (e.type === 'directory' && this.ignore.ignores(rel) && !kept.has(rel)) this.entries.delete(rel);
  }

  /**
   * The digest COPY's cache key uses for these source patterns, from the index alone; undefined when a pattern
   * goes through a symlink (then the unpacked context decides). Errors as COPY's for what is not there.
   */
  sourceDigest(patterns: string[]): { hash: string; kind: 'dir' | 'file'; count: number } | undefined {
    const names: string[] = [];
    for (const p of patterns) {
      const rel = path.posix.normalize(p.replace(/^\/+/, '') || '.').replace(/(.)\/+$/, '$1');
      if (rel === '..' || rel.startsWith('../')) throw invalid(`forbidden path outside the build context: ${p}`);
      if (this.throughSymlink(rel)) return undefined;
      const hits = rel === '.' ? ['.'] : GLOB.test(rel) ? this.glob(rel) : this.entries.has(rel) ? [rel] : [];
      if (!hits.length) throw invalid(`COPY failed: file not found in build context or excluded by .dockerignore: stat ${rel}: file does not exist`);
      names.push(...hits);
    }
    const h = createHash('sha256');
    for (const n of names) {
      h.update(`\0src:${n}\0`);
      const prefix = n === '.' ? '' : `${n}/`;
      const self = n === '.' ? undefined : this.entries.get(n);
      const rows = self && self.type !== 'directory' ? [['.', self] as const] : [...this.entries].filter(([r]) => r.startsWith(prefix)).map(([r, e]) => [r.slice(prefix.length), e] as const).sort(([a], [b]) => (a < b ? -1 : 1));
      for (const [r, e] of rows) h.update(`${r}\0${e.type}\0${e.mode}\0${e.size}\0${e.linkname ?? ''}\0${e.sha ?? ''}\n`);
    }
    const single = names.length === 1 ? (names[0] === '.' ? 'directory' : this.entries.get(names[0]!)?.type) : undefined;
    return { hash: h.digest('hex'), kind: single === 'directory' ? 'dir' : 'file', count: names.length };
  }

  private throughSymlink(rel: string): boolean {
    const parts = rel.split('/');
    for (let i = 1; i <= parts.length; i++) if (this.entries.get(parts.slice(0, i).join('/'))?.type === 'symlink') return true;
    return false;
  }

  private glob(pattern: string): string[] {
    const segs = pattern.split('/');
    return [...this.entries.keys()].filter((r) => {
      const parts = r.split('/');
      return parts.length === segs.length && segs.every((s, i) => matchGlob(s, parts[i]!));
    }).sort();
  }

  /** The context unpacked into a directory (once), .dockerignore applied: for the steps that copy from it. */
  unpack(): Promise<string> {
    this.unpacked ??= (async () => {
      const root = path.join(this.dir, 'context');
      await fs.mkdir(root);
      await extractLayer(createReadStream(this.tarFile), root).catch((err: unknown) => {
        throw invalid(`cannot unpack the build context: ${(err as Error).message}`);
      });
      if (this.ignore) await removeIgnored(root, this.ignore);
      return root;
    })();
    return this.unpacked;
  }
}

/** Take out of an unpacked context what its .dockerignore excludes. */
async function removeIgnored(dir: string, ig: DockerIgnore): Promise<void> {
  const walk = async (rel: string): Promise<void> => {
    for (const name of await fs.readdir(path.join(dir, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = path.join(dir, r);
      const st = await fs.lstat(abs);
      if (ig.ignores(r)) {
        if (st.isDirectory() && ig.mustWalk(r)) {
          await walk(r);
          if ((await fs.readdir(abs)).length === 0) await fs.rmdir(abs);
        } else await fs.rm(abs, { recursive: true, force: true });
      } else if (st.isDirectory()) await walk(r);
    }
  };
  await walk('');
}
