import { promises as fs, createWriteStream, createReadStream } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ensureDir, exists } from '../../lib/fsutil.js';
import { HashingStream, hexOf, type Digest } from '../../lib/digest.js';
import { invalid, notFound } from '../../lib/errors.js';

/** Blobs by digest (OCI image layout style): verified before they appear under their name. */
export class ContentStore {
  readonly blobsDir: string;
  private readonly ingestDir: string;

  constructor(root: string) {
    this.blobsDir = path.join(root, 'blobs', 'sha256');
    this.ingestDir = path.join(root, 'ingest');
  }

  async init(): Promise<void> {
    await ensureDir(this.blobsDir);
    await ensureDir(this.ingestDir);
    // half-written ingests from a crash are never valid content
    for (const f of await fs.readdir(this.ingestDir)) await fs.rm(path.join(this.ingestDir, f), { force: true });
  }

  path(d: Digest): string {
    return path.join(this.blobsDir, hexOf(d));
  }

  has(d: Digest): Promise<boolean> {
    return exists(this.path(d));
  }

  async size(d: Digest): Promise<number> {
    try {
      return (await fs.stat(this.path(d))).size;
    } catch {
      throw notFound(`blob ${d} not found`);
    }
  }

  async read(d: Digest): Promise<Buffer> {
    try {
      return await fs.readFile(this.path(d));
    } catch {
      throw notFound(`blob ${d} not found`);
    }
  }

  stream(d: Digest): Readable {
    return createReadStream(this.path(d));
  }

  /** Store a stream; if `expected` is given the content must match it or nothing is stored. */
  async put(input: Readable | Buffer, expected?: Digest): Promise<{ digest: Digest; size: number; created: boolean }> {
    if (expected && (await this.has(expected))) {
      if (!Buffer.isBuffer(input)) input.resume();
      return { digest: expected, size: await this.size(expected), created: false };
    }
    const tmp = path.join(this.ingestDir, randomBytes(8).toString('hex'));
    const hashing = new HashingStream();
    const hasher = hashing.hasher;
    try {
      const src = Buffer.isBuffer(input) ? Readable.from([input]) : input;
      const out = createWriteStream(tmp, { flags: 'wx' });
      await pipeline(src, hashing, out);
      const fh = await fs.open(tmp, 'r');
      await fh.sync();
      await fh.close();
      const digest = hasher.digest();
      if (expected && digest !== expected) throw invalid(`digest mismatch: expected ${expected}, got ${digest}`);
      const created = !(await this.has(digest));
      await fs.rename(tmp, this.path(digest));
      return { digest, size: hasher.size, created };
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  async delete(d: Digest): Promise<void> {
    await fs.rm(this.path(d), { force: true });
  }

  async list(): Promise<Digest[]> {
    return (await fs.readdir(this.blobsDir)).filter((f) => /^[a-f0-9]{64}$/.test(f)).map((f) => `sha256:${f}` as Digest);
  }
}
