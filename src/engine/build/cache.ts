import { promises as fs } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { atomicWrite, ensureDir } from '../../lib/fsutil.js';
import type { Digest } from '../../lib/digest.js';

/**
 * The classic builder's step cache: (parent image, instruction as it runs) → the image that step made. On disk,
 * so it outlives the engine; an entry whose image is gone is a miss.
 */
export class StepCache {
  /** Digests of COPY --from sources by image and paths: images never change, so these hold for the engine's life. */
  private readonly sourceHashes = new Map<string, { kind: string; hash: string }>();

  constructor(private readonly dir: string) {}

  sourceHash(key: string): { kind: string; hash: string } | undefined {
    return this.sourceHashes.get(key);
  }

  rememberSourceHash(key: string, v: { kind: string; hash: string }): void {
    if (this.sourceHashes.size >= 10_000) this.sourceHashes.delete(this.sourceHashes.keys().next().value!);
    this.sourceHashes.set(key, v);
  }

  key(parent: string, createdBy: string): string {
    return createHash('sha256').update(`${parent}\n${createdBy}`).digest('hex');
  }

  async get(key: string): Promise<Digest | undefined> {
    const v = await fs.readFile(path.join(this.dir, key), 'utf8').catch(() => '');
    return /^sha256:[a-f0-9]{64}$/.test(v) ? (v as Digest) : undefined;
  }

  async put(key: string, id: Digest): Promise<void> {
    await ensureDir(this.dir);
    await atomicWrite(path.join(this.dir, key), id);
  }

  /** Drop entries whose image is gone; returns how many went. */
  async prune(exists: (id: Digest) => boolean): Promise<number> {
    let n = 0;
    for (const f of await fs.readdir(this.dir).catch(() => [] as string[])) {
      const id = await this.get(f);
      if (id && exists(id)) continue;
      await fs.rm(path.join(this.dir, f), { force: true });
      n++;
    }
    return n;
  }
}
