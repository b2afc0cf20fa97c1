import { Readable } from 'node:stream';
import { SampanError, conflict } from '../../lib/errors.js';
import type { EventEmitter } from 'node:events';
import type { TaskMeta } from '../protocol.js';

/**
 * What a stream reads from: a stored task (task.ts). Named here so that the stream does not depend on the task
 * module, which creates streams.
 */
export interface StreamSource extends Pick<EventEmitter, 'on' | 'off'> {
  readonly id: string;
  readonly meta: TaskMeta;
  readonly complete: boolean;
  readonly total: number;
  has(piece: number): boolean;
  readRange(position: number, length: number): Promise<Buffer>;
  attachReader(): void;
  detachReader(): void;
}

/** Bytes per push: pieces can be 16 MiB, the consumer should not need a whole one buffered. */
const CHUNK = 1024 * 1024;

/**
 * Reads [start, end) of a task in order, waiting for each piece to be held. Counts as a reader of the task from
 * creation to close, so the LRU never evicts what someone is streaming (or waiting to stream).
 */
export class TaskStream extends Readable {
  private pos: number;
  private wake?: () => void;
  private attached = true;
  private readonly onChange = (): void => this.kick();
  private readonly onDropped = (pieces: number[]): void => {
    // a piece this stream already gave away was wrong: what the consumer holds is corrupt
    const ps = this.task.meta.pieceSize;
    if (pieces.some((n) => n * ps < this.pos && (n + 1) * ps > this.start)) {
      this.destroy(conflict(`${this.task.id}: piece ${pieces.join(',')} dropped after it was streamed`));
    } else this.kick();
  };
  private readonly onFailed = (err: Error): void => {
    this.destroy(err);
  };
  private readonly onRemoved = (reason: string): void => {
    this.destroy(new SampanError('NOT_FOUND', `task ${this.task.id} ${reason}`));
  };

  constructor(
    private readonly task: StreamSource,
    private readonly start: number,
    private readonly end: number,
  ) {
    super({ highWaterMark: CHUNK });
    this.pos = start;
    task.attachReader();
    task.on('piece', this.onChange);
    task.on('complete', this.onChange);
    task.on('dropped', this.onDropped);
    task.on('failed', this.onFailed);
    task.on('removed', this.onRemoved);
  }

  override _read(): void {
    void this.pump();
  }

  /** Pushes one chunk (or ends), waiting as long as the next byte is not readable yet. */
  private async pump(): Promise<void> {
    try {
      for (;;) {
        if (this.destroyed) return;
        if (this.pos >= this.end) {
          this.push(null);
          return;
        }
        const { pieceSize, size } = this.task.meta;
        const n = Math.floor(this.pos / pieceSize);
        // a read of the whole blob gets its last piece only once the blob matched its digest, so it never ends
        // cleanly on bad bytes; ranges (a piece served to a peer, a resumed pull) are not held back
        const whole = this.start === 0 && this.end === size;
        const ready = this.task.has(n) && (this.task.complete || !whole || n < this.task.total - 1);
        if (!ready) {
          await new Promise<void>((r) => (this.wake = r));
          continue;
        }
        const len = Math.min(this.end, (n + 1) * pieceSize) - this.pos;
        const buf = await this.task.readRange(this.pos, Math.min(len, CHUNK));
        if (this.destroyed) return;
        this.pos += buf.length;
        this.push(buf);
        return;
      }
    } catch (err) {
      this.destroy(err as Error);
    }
  }

  private kick(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.attached) {
      this.attached = false;
      this.task.off('piece', this.onChange);
      this.task.off('complete', this.onChange);
      this.task.off('dropped', this.onDropped);
      this.task.off('failed', this.onFailed);
      this.task.off('removed', this.onRemoved);
      this.task.detachReader();
    }
    this.kick();
    cb(err);
  }
}
