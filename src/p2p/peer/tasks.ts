import type { TaskId } from '../protocol.js';
import { DownloadTask, type TaskDeps, type TaskPieces } from './task.js';

/** One download per blob on this peer, shared by every client asking for it meanwhile. */
export class TaskManager {
  private readonly active = new Map<TaskId, DownloadTask>();

  constructor(private readonly deps: TaskDeps) {}

  get(id: TaskId, url: string, authorization: string | undefined, sizeHint?: number): DownloadTask {
    let t = this.active.get(id);
    if (!t) {
      t = new DownloadTask(this.deps, id, url, authorization, sizeHint);
      this.active.set(id, t);
      const task = t;
      void task.done.then(
        () => this.active.delete(id),
        (err: unknown) => {
          this.active.delete(id);
          this.deps.log.warn({ task: id, err: (err as Error).message }, 'download failed');
        },
      );
    }
    return t;
  }

  /** A complete blob in the store, if any. */
  complete(id: TaskId): TaskPieces | undefined {
    const p = this.deps.store.task(id);
    return p?.complete ? p : undefined;
  }

  running(id: TaskId): DownloadTask | undefined {
    return this.active.get(id);
  }
}
