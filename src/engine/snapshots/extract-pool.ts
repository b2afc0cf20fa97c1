/**
 * Layer unpacking on worker threads. A layer's bytes arrive on the main thread (from a registry or an
 * archive) and are handed to a worker, which decompresses, hashes and writes them: pulls of several layers
 * then use more than one core. Same contract as extractLayer; at most `size` extractions run at once,
 * more wait for a worker.
 */
import { Worker } from 'node:worker_threads';
import os from 'node:os';
import type { Readable } from 'node:stream';
import { SampanError, type ErrorCode } from '../../lib/errors.js';
import type { ExtractResult } from '../../lib/tarsafe.js';

/** Chunks sent ahead of the worker's acknowledgements (each up to what the source reads at once). */
const CREDITS = 4;

/**
 * How long an idle worker waits for another layer: enough for the next layer of the same pull or load, so that
 * an idle engine keeps none (each holds its own V8 heap and buffers, ~10 MB of RSS).
 */
const IDLE_MS = 50;

type Out = { type: 'ack' } | { type: 'done'; result: ExtractResult } | { type: 'error'; code: ErrorCode; message: string };

export class ExtractPool {
  private readonly idle: Worker[] = [];
  private readonly idleTimers = new Map<Worker, NodeJS.Timeout>();
  private busy = 0;
  private readonly waiters: Array<(w: Worker) => void> = [];
  private closed = false;

  constructor(readonly size = Math.max(4, os.availableParallelism?.() ?? os.cpus().length)) {}

  /** Busy workers keep the process alive; idle ones do not. */
  private spawn(): Worker {
    return new Worker(new URL('./extract-worker.js', import.meta.url));
  }

  private async acquire(): Promise<Worker> {
    if (this.closed) throw new SampanError('UNAVAILABLE', 'the engine is shutting down');
    const w = this.idle.pop();
    if (w) {
      clearTimeout(this.idleTimers.get(w));
      this.idleTimers.delete(w);
      this.busy++;
      w.ref();
      return w;
    }
    if (this.busy < this.size) {
      this.busy++;
      return this.spawn();
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Hand a worker back: to the next waiter, to the idle list, or (after a failure) end it and make room. */
  private release(w: Worker, reusable: boolean): void {
    if (!reusable || this.closed) {
      void w.terminate();
      const next = this.waiters.shift();
      if (next && !this.closed) next(this.spawn());
      else this.busy--;
      return;
    }
    const next = this.waiters.shift();
    if (next) next(w);
    else {
      this.busy--;
      w.unref();
      this.idle.push(w);
      const timer = setTimeout(() => {
        this.idleTimers.delete(w);
        this.idle.splice(this.idle.indexOf(w), 1);
        void w.terminate();
      }, IDLE_MS);
      timer.unref();
      this.idleTimers.set(w, timer);
    }
  }

  /** extractLayer on a worker: the input is read here and its bytes sent over. */
  extract = async (input: Readable, dest: string, opts: { overlayWhiteouts?: boolean; devices?: boolean } = {}): Promise<ExtractResult> => {
    const w = await this.acquire();
    let ok = false;
    try {
      const result = await run(w, input, dest, { overlayWhiteouts: !!opts.overlayWhiteouts, devices: !!opts.devices });
      ok = true;
      return result;
    } finally {
      this.release(w, ok);
    }
  };

  close(): void {
    this.closed = true;
    for (const t of this.idleTimers.values()) clearTimeout(t);
    this.idleTimers.clear();
    for (const w of this.idle.splice(0)) void w.terminate();
  }
}

function run(w: Worker, input: Readable, dest: string, opts: { overlayWhiteouts: boolean; devices: boolean }): Promise<ExtractResult> {
  return new Promise<ExtractResult>((resolve, reject) => {
    let credits = CREDITS;
    let settled = false;
    let more: (() => void) | undefined;
    const finish = (err: Error | undefined, result?: ExtractResult) => {
      if (settled) return;
      settled = true;
      w.off('message', onMessage);
      w.off('error', onError);
      w.off('exit', onExit);
      more?.();
      if (err) {
        if (!input.destroyed) input.destroy();
        reject(err);
      } else resolve(result!);
    };
    const onMessage = (m: Out) => {
      if (m.type === 'ack') {
        credits++;
        const f = more;
        more = undefined;
        f?.();
      } else if (m.type === 'done') finish(undefined, m.result);
      else finish(new SampanError(m.code, m.message));
    };
    const onError = (err: Error) => finish(err);
    const onExit = (code: number) => finish(new Error(`layer unpacking worker exited (${code})`));
    w.on('message', onMessage);
    w.once('error', onError);
    w.once('exit', onExit);
    w.postMessage({ type: 'start', dest, ...opts });
    void (async () => {
      try {
        for await (const chunk of input) {
          if (settled) return;
          while (credits <= 0 && !settled) await new Promise<void>((r) => (more = r));
          if (settled) return;
          credits--;
          const c = chunk as Buffer;
          w.postMessage({ type: 'data', chunk: new Uint8Array(c.buffer, c.byteOffset, c.byteLength) });
        }
        if (!settled) w.postMessage({ type: 'end' });
      } catch (err) {
        if (!settled) w.postMessage({ type: 'abort', message: (err as Error)?.message ?? String(err) });
      }
    })();
  });
}
