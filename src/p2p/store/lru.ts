import type { TaskId } from '../protocol.js';

/** What eviction needs to know of a task. */
export interface EvictionCandidate {
  id: TaskId;
  size: number;
  complete: boolean;
  lastUsed: number;
  /** Has readers, in-flight I/O, or was written recently: never evicted. */
  active: boolean;
}

/**
 * Picks the tasks to evict to free `need` bytes: idle complete tasks first (they can be fetched again from any
 * peer), then idle incomplete ones, least recently used first within each group. Undefined when even evicting
 * every idle task would not free enough: then nothing is evicted, since dropping tasks would gain nothing.
 */
export function pickVictims(candidates: EvictionCandidate[], need: number): EvictionCandidate[] | undefined {
  if (need <= 0) return [];
  const order = candidates
    .filter((c) => !c.active)
    .sort((a, b) => Number(b.complete) - Number(a.complete) || a.lastUsed - b.lastUsed);
  const out: EvictionCandidate[] = [];
  let freed = 0;
  for (const c of order) {
    if (freed >= need) break;
    out.push(c);
    freed += c.size;
  }
  return freed >= need ? out : undefined;
}
