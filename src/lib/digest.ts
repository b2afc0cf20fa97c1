import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { invalid } from './errors.js';

export type Digest = `sha256:${string}`;

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export function isDigest(s: string): s is Digest {
  return DIGEST_RE.test(s);
}

export function parseDigest(s: string): Digest {
  if (!isDigest(s)) throw invalid(`invalid digest ${JSON.stringify(s)}: expected sha256:<64 hex>`);
  return s;
}

export function sha256(data: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function hexOf(d: Digest): string {
  return d.slice(7);
}

/** Incremental hashing that yields a Digest. */
export class Hasher {
  private readonly h: Hash = createHash('sha256');
  size = 0;
  update(chunk: Buffer): void {
    this.h.update(chunk);
    this.size += chunk.length;
  }
  digest(): Digest {
    return `sha256:${this.h.digest('hex')}`;
  }
}

/** Chain ID of a layer stack (OCI image spec): chain(n) = sha256(chain(n-1) + " " + diffID(n)). */
export function chainIds(diffIds: Digest[]): Digest[] {
  const out: Digest[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev ? sha256(`${prev} ${d}`) : d);
  }
  return out;
}

/** Passes bytes through while hashing them. */
export class HashingStream extends Transform {
  readonly hasher = new Hasher();
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hasher.update(chunk);
    cb(null, chunk);
  }
}
