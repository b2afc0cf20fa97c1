import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { SampanError } from '../../lib/errors.js';

/** How long an unused descriptor stays open: a store holds many idle complete blobs and must not pin an fd each. */
const IDLE_CLOSE_MS = 5_000;

/**
 * The `data` file of a task: a sparse file of the blob's size, written and read with positional I/O on one shared
 * descriptor (opened on demand, closed when idle). Every use is counted so close() never pulls the descriptor from
 * under an in-flight read or write.
 */
export class DataFile {
  private fh?: Promise<FileHandle>;
  private ops = 0;
  private idle?: NodeJS.Timeout;
  private drained?: () => void;
  private closed = false;

  constructor(readonly path: string) {}

  /** Creates (or truncates) the file at its full size; holes cost no disk until pieces land. */
  static async create(path: string, size: number): Promise<DataFile> {
    const fh = await fs.open(path, 'w', 0o644);
    try {
      await fh.truncate(size);
    } finally {
      await fh.close();
    }
    return new DataFile(path);
  }

  /** In-flight operations (reads, writes, hashing). */
  busy(): boolean {
    return this.ops > 0;
  }

  async use<T>(fn: (fh: FileHandle) => Promise<T>): Promise<T> {
    if (this.closed) throw new SampanError('NOT_FOUND', `${this.path}: closed`);
    this.ops++;
    if (this.idle) clearTimeout(this.idle);
    this.idle = undefined;
    try {
      this.fh ??= fs.open(this.path, 'r+');
      let fh: FileHandle;
      try {
        fh = await this.fh;
      } catch (err) {
        this.fh = undefined;
        throw err;
      }
      return await fn(fh);
    } finally {
      if (--this.ops === 0) this.release();
    }
  }

  async write(buf: Buffer, position: number): Promise<void> {
    await this.use(async (fh) => {
      // positional writes may be partial (signals, huge buffers): loop until all of it is down
      for (let off = 0; off < buf.length; ) {
        const { bytesWritten } = await fh.write(buf, off, buf.length - off, position + off);
        off += bytesWritten;
      }
    });
  }

  /** Reads exactly length bytes at position (a short read means the file shrank under us). */
  async read(position: number, length: number): Promise<Buffer> {
    return this.use(async (fh) => {
      const buf = Buffer.allocUnsafe(length);
      for (let off = 0; off < length; ) {
        const { bytesRead } = await fh.read(buf, off, length - off, position + off);
        if (bytesRead === 0) throw new SampanError('INTERNAL', `${this.path}: short read at ${position + off}`);
        off += bytesRead;
      }
      return buf;
    });
  }

  async sync(): Promise<void> {
    await this.use((fh) => fh.sync());
  }

  /** Waits for in-flight operations, then closes; later uses fail. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.ops > 0) await new Promise<void>((r) => (this.drained = r));
    await this.shut();
  }

  private release(): void {
    if (this.closed) {
      this.drained?.();
      this.drained = undefined;
      return;
    }
    this.idle = setTimeout(() => void this.shut(), IDLE_CLOSE_MS);
    this.idle.unref();
  }

  private async shut(): Promise<void> {
    if (this.idle) clearTimeout(this.idle);
    this.idle = undefined;
    if (this.ops > 0) return;
    const p = this.fh;
    this.fh = undefined;
    if (p) await p.then((fh) => fh.close()).catch(() => undefined);
  }
}
