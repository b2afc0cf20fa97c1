/**
 * The replacement of one slot's task: the primitive Docker's rolling update and Sampan's smart release both drive.
 * Stop-first stops the old task, then starts the new; start-first starts the new and stops the old once the new is
 * ready. Ready = running and, where the container has a health check, healthy. The slot is held busy meanwhile, so
 * the reconciler does not fill it behind the replacement's back.
 */
import type { TaskSpec } from '../../lib/swarm-types.js';
import type { ClusterState } from '../state.js';
import { observe, type ContainerWaits } from './observe.js';
import type { ServiceRecord, SwarmRecords, TaskRecord } from './records.js';
import { templateHash } from './spec.js';
import type { TaskRunner } from './tasks.js';

/** How long a new task may stay `health: starting` before it counts as failed. */
const HEALTH_WAIT_MS = 120_000;

export interface SlotResult {
  ok: boolean;
  task?: TaskRecord;
  error?: string;
  startMs: number;
}

export const slotKey = (service: string, slot: number) => `${service}/${slot}`;

export class SlotReplacer {
  /** Slots being replaced (service/slot): the reconciler leaves them alone. */
  readonly busy = new Map<string, number>();
  private readonly idlers = new Map<string, Array<() => void>>();

  constructor(
    private readonly recs: SwarmRecords,
    private readonly runner: TaskRunner,
    private readonly state: ClusterState,
    private readonly waits: ContainerWaits,
  ) {}

  hold(key: string): void {
    this.busy.set(key, (this.busy.get(key) ?? 0) + 1);
  }

  release(key: string): void {
    const n = (this.busy.get(key) ?? 1) - 1;
    if (n > 0) return void this.busy.set(key, n);
    this.busy.delete(key);
    for (const wake of this.idlers.get(key) ?? []) wake();
    this.idlers.delete(key);
  }

  /** Resolves once nothing holds the slot: a release that superseded Docker's update waits out that update's last replacement of it. */
  async idle(key: string, signal?: AbortSignal): Promise<void> {
    while (this.busy.has(key)) {
      signal?.throwIfAborted();
      await new Promise<void>((resolve) => {
        const wake = () => {
          signal?.removeEventListener('abort', wake);
          resolve();
        };
        signal?.addEventListener('abort', wake, { once: true });
        this.idlers.set(key, [...(this.idlers.get(key) ?? []), wake]);
      });
    }
  }

  /** The slot's tasks that should run. */
  live(service: string, slot: number): TaskRecord[] {
    return this.recs.tasksOf(service).filter((t) => t.slot === slot && t.desired === 'running');
  }

  /** Running, and healthy where it has a health check; false once it failed or stayed unhealthy. */
  async ready(t: TaskRecord, signal?: AbortSignal): Promise<boolean> {
    const settled = () => {
      const o = observe(this.state, t);
      return o.kind !== 'running' || o.health !== 'starting';
    };
    await this.waits.until(t.container, settled, HEALTH_WAIT_MS, signal);
    const o = observe(this.state, t);
    return o.kind === 'running' && (o.health === undefined || o.health === 'healthy');
  }

  /**
   * Replaces `slot`'s task by one of `spec` (the caller holds the slot busy or not: it is held here too). With `adopt`,
   * a running task of `spec` already in the slot (one a leader that died had started, or the reconciler filled the
   * slot with) is awaited instead of being replaced once more; one still pending from a dead leader is replaced.
   */
  async replace(svc: ServiceRecord, slot: number, spec: TaskSpec, o: { order: 'stop-first' | 'start-first'; avoid?: Set<string>; signal?: AbortSignal; adopt?: boolean }): Promise<SlotResult> {
    const key = slotKey(svc.id, slot);
    this.hold(key);
    const t0 = Date.now();
    try {
      const hash = templateHash(spec);
      const live = this.live(svc.id, slot);
      const adopted = o.adopt ? live.find((t) => t.hash === hash && t.state === 'running') : undefined;
      const old = live.filter((t) => t !== adopted);
      if (o.order === 'stop-first' || adopted) for (const t of old) await this.runner.stop(t);
      const t = adopted ?? (await this.runner.start(svc, slot, spec, { avoid: o.avoid, signal: o.signal }));
      const ok = t.state === 'running' && (await this.ready(t, o.signal));
      if (!ok && t.state === 'running') {
        const cur = this.recs.tasks.get(t.id) ?? t;
        await this.runner.stop(cur, 'failed', 'task did not become ready', 'unhealthy or exited before it was ready');
      }
      if (o.order === 'start-first' && ok) for (const x of old) await this.runner.stop(x);
      const final = this.recs.tasks.get(t.id) ?? t;
      return { ok, task: final, ...(!ok && { error: final.err ?? `task ${final.state}` }), startMs: Date.now() - t0 };
    } finally {
      this.release(key);
    }
  }
}
