/**
 * What a task's container says of it, from the indexes the engines' reports fill (nothing is asked of an engine):
 * running, exited (with its code), gone, or on a node that is down; and waits for a container to change.
 */
import type { ClusterState } from '../state.js';
import type { TaskRecord } from './records.js';

export type Observed =
  | { kind: 'running'; health?: string }
  | { kind: 'exited'; exitCode: number }
  | { kind: 'gone' }
  | { kind: 'node-down' }
  | { kind: 'other'; state: string };

export function observe(state: ClusterState, t: TaskRecord): Observed {
  const node = state.nodes.get(t.node);
  if (!node || node.rec.state !== 'up') return { kind: 'node-down' };
  const e = state.entry(t.container);
  if (!e) return { kind: 'gone' };
  const s = e.summary;
  if (s.State === 'running') return { kind: 'running', ...(s.Facts.Health && { health: s.Facts.Health }) };
  if (s.State === 'exited' || s.State === 'dead') return { kind: 'exited', exitCode: s.Facts.ExitCode };
  return { kind: 'other', state: s.State };
}

/** Waiters on container changes: the reconciler's feed calls `changed`, a replacement waits for health. */
export class ContainerWaits {
  private readonly waits = new Map<string, Set<() => void>>();

  changed(id: string): void {
    const ws = this.waits.get(id);
    if (!ws) return;
    this.waits.delete(id);
    for (const w of ws) w();
  }

  /** Resolves when `test` holds, checked at each change of the container, or false after `ms`. */
  async until(id: string, test: () => boolean, ms: number, signal?: AbortSignal): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!test()) {
      const left = deadline - Date.now();
      if (left <= 0 || signal?.aborted) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(left, 1000));
        function done() {
          clearTimeout(timer);
          resolve();
        }
        let set = this.waits.get(id);
        if (!set) this.waits.set(id, (set = new Set()));
        set.add(done);
      });
    }
    return true;
  }
}
