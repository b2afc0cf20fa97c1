import { EventEmitter } from 'node:events';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { SampanError, errorMessage } from '../../lib/errors.js';
import { ensureDir, removeTree } from '../../lib/fsutil.js';
import { silentLogger, type Logger } from '../../lib/log.js';
import type { TaskId, TaskMeta } from '../protocol.js';
import { DataFile } from './datafile.js';
import { pickVictims } from './lru.js';
import { checkMeta, taskHex } from './meta.js';
import { loadTask } from './recover.js';
import { DATA_FILE, StoredTask } from './task.js';

export interface PieceStoreOptions {
  dir: string;
  /** Bound on the summed blob sizes of all tasks (a task reserves its full size when it is opened). */
  maxBytes: number;
  log?: Logger;
  /** A task with a piece written (or opened for download) this recently is never evicted. Default 30 s. */
  writeGraceMs?: number;
}

export interface EvictedTask {
  id: TaskId;
  size: number;
  complete: boolean;
  pieces: number;
}

export interface PieceStoreEvents {
  evict: [task: EvictedTask];
}

const TASK_DIR_RE = /^[a-f0-9]{64}$/;

/**
 * The on-disk piece store of a P2P peer: one directory per blob (`<hex>/data`, `meta.json`, `complete`),
 * bounded by an LRU over the blob sizes.
 */
export class PieceStore extends EventEmitter<PieceStoreEvents> {
  readonly dir: string;
  readonly maxBytes: number;
  private readonly log: Logger;
  private readonly writeGraceMs: number;
  private readonly tasks = new Map<TaskId, StoredTask>();
  private readonly opening = new Map<TaskId, Promise<StoredTask>>();
  /** Directory removals still running, so a re-open of the same blob waits for its old directory to go. */
  private readonly removing = new Map<TaskId, Promise<void>>();
  /** Bytes of known tasks plus tasks being created. */
  private used = 0;
  private state: 'new' | 'ready' | 'closed' = 'new';

  constructor(o: PieceStoreOptions) {
    super();
    if (!Number.isSafeInteger(o.maxBytes) || o.maxBytes < 0) throw new TypeError(`bad maxBytes ${o.maxBytes}`);
    this.dir = o.dir;
    this.maxBytes = o.maxBytes;
    this.log = o.log ?? silentLogger;
    this.writeGraceMs = o.writeGraceMs ?? 30_000;
  }

  /** Loads the tasks on disk (see loadTask for what survives a crash), then trims to maxBytes. */
  async init(): Promise<void> {
    if (this.state !== 'new') throw new Error('PieceStore.init: called twice');
    await ensureDir(this.dir);
    for (const ent of await fs.readdir(this.dir, { withFileTypes: true })) {
      const p = path.join(this.dir, ent.name);
      if (ent.name.startsWith('.tmp-')) {
        await removeTree(p);
        continue;
      }
      if (!ent.isDirectory() || !TASK_DIR_RE.test(ent.name)) continue; // not ours: leave it
      const id: TaskId = `sha256:${ent.name}`;
      const got = await loadTask(p, id, this.log);
      if ('reason' in got) {
        this.log.warn({ task: id, reason: got.reason }, 'p2p store: dropping unverifiable task');
        await removeTree(p);
        continue;
      }
      const { task } = got;
      if (got.recovered && got.recovered.before !== got.recovered.after) {
        this.log.info({ task: id, ...got.recovered }, 'p2p store: partial task re-verified');
      }
      await task.flush();
      this.adopt(task);
      // crashed between the last piece and the marker (or the empty blob): finish now
      if (!task.complete && task.count() === task.total) await task.finish().catch(() => false);
    }
    this.state = 'ready';
    const over = this.used - this.maxBytes;
    if (over > 0) this.evictFor(over, true);
    this.log.info({ tasks: this.tasks.size, usedBytes: this.used }, 'p2p store: loaded');
  }

  task(id: TaskId): StoredTask | undefined {
    return this.tasks.get(id);
  }

  tasksList(): StoredTask[] {
    return [...this.tasks.values()];
  }

  stats(): { tasks: number; usedBytes: number; maxBytes: number } {
    return { tasks: this.tasks.size, usedBytes: this.used, maxBytes: this.maxBytes };
  }

  /**
   * Creates the task, or returns the known one with `meta` merged in (setMeta). A new task reserves its size,
   * evicting idle tasks LRU-first if needed; UNAVAILABLE when that cannot make room. The empty blob is complete
   * at once.
   */
  async open(id: TaskId, meta: TaskMeta): Promise<StoredTask> {
    this.ready();
    const hex = taskHex(id);
    let t = this.tasks.get(id) ?? (await this.opening.get(id));
    if (!t) {
      const p = this.create(id, hex, checkMeta(id, meta));
      this.opening.set(id, p);
      try {
        return await p;
      } finally {
        this.opening.delete(id);
      }
    }
    t.setMeta(meta);
    t.touch();
    if (!t.complete) t.lastWrite = Date.now(); // someone is about to download into it
    return t;
  }

  /** Drops a task and its files (its streams error). */
  async remove(id: TaskId): Promise<void> {
    const t = this.tasks.get(id);
    if (t) this.drop(t, 'removed');
    await this.removing.get(id);
  }

  /** Flushes every task's meta.json and closes the files; streams error. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    await Promise.all([...this.opening.values()].map((p) => p.catch(() => undefined)));
    const all = [...this.tasks.values()];
    this.tasks.clear();
    await Promise.all(all.map((t) => t.detach('closed', true)));
    await Promise.all(this.removing.values());
  }

  private async create(id: TaskId, hex: string, meta: TaskMeta): Promise<StoredTask> {
    this.reserve(id, meta.size);
    const dir = path.join(this.dir, hex);
    try {
      await this.removing.get(id);
      await removeTree(dir); // leftovers of a failed removal are no task
      await ensureDir(dir);
      const data = await DataFile.create(path.join(dir, DATA_FILE), meta.size);
      const task = new StoredTask({ id, dir, meta, data, log: this.log, dirty: true });
      task.lastWrite = Date.now();
      await task.flush();
      if (this.state === 'closed') {
        await task.detach('closed', true);
        throw new SampanError('UNAVAILABLE', 'piece store closed');
      }
      if (meta.size === 0) await task.finish();
      this.tasks.set(id, task); // its bytes were reserved above
      return task;
    } catch (err) {
      this.used -= meta.size;
      if (this.state !== 'closed') await removeTree(dir).catch(() => undefined);
      throw err;
    }
  }

  private adopt(task: StoredTask): void {
    this.tasks.set(task.id, task);
    this.used += task.meta.size;
  }

  /** Makes room for `size` more bytes (synchronously choosing and detaching victims), then reserves it. */
  private reserve(id: TaskId, size: number): void {
    if (size > this.maxBytes) {
      throw new SampanError('UNAVAILABLE', `${id}: ${size} bytes exceed the piece store (${this.maxBytes})`);
    }
    const over = this.used + size - this.maxBytes;
    if (over > 0 && !this.evictFor(over, false)) {
      throw new SampanError('UNAVAILABLE', `piece store full: no idle task to evict for ${size} bytes of ${id}`);
    }
    this.used += size;
  }

  /** Evicts idle tasks LRU-first to free `need` bytes; with `partial`, evicts every idle task if that is not enough. */
  private evictFor(need: number, partial: boolean): boolean {
    const now = Date.now();
    const candidates = [...this.tasks.values()].map((t) => ({
      id: t.id,
      size: t.meta.size,
      complete: t.complete,
      lastUsed: t.lastUsed,
      active: t.isActive(now, this.writeGraceMs),
    }));
    const victims = pickVictims(candidates, need);
    if (!victims && !partial) return false;
    for (const v of victims ?? candidates.filter((c) => !c.active)) this.drop(this.tasks.get(v.id)!, 'evicted');
    return victims !== undefined;
  }

  /** Forgets the task now (its bytes are free for the next reservation, its I/O fails); files go in the background. */
  private drop(t: StoredTask, reason: 'evicted' | 'removed'): void {
    this.tasks.delete(t.id);
    this.used -= t.meta.size;
    const info: EvictedTask = { id: t.id, size: t.meta.size, complete: t.complete, pieces: t.count() };
    // detach marks the task gone synchronously, before anyone can start new I/O on it
    const p = t
      .detach(reason, false)
      .then(() => removeTree(t.dir))
      .catch((err) => this.log.warn({ task: t.id, err: errorMessage(err) }, 'p2p store: removing a task failed'))
      .finally(() => {
        if (this.removing.get(t.id) === p) this.removing.delete(t.id);
      });
    this.removing.set(t.id, p);
    if (reason === 'evicted') {
      this.log.info(info, 'p2p store: evicted');
      this.emit('evict', info);
    }
  }

  private ready(): void {
    if (this.state === 'new') throw new Error('PieceStore: init() first');
    if (this.state === 'closed') throw new SampanError('UNAVAILABLE', 'piece store closed');
  }
}
