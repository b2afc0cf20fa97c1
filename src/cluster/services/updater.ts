/**
 * Docker's rolling update (swarmkit's orchestrator/update), of replicated and global services alike (a global
 * service's slots are its nodes: slots.ts): the slots whose task is not of the service's current
 * spec are replaced by Parallelism workers (0: one per slot), each taking the next slot once its own is done and
 * Delay has passed, each new task watched for Monitor after
 * it runs; a failure (could not start, not ready, exited within Monitor) counts, and once failures / slots pass
 * MaxFailureRatio the FailureAction applies: pause, continue, or rollback (to PreviousSpec, with RollbackConfig).
 * Progress is the tasks themselves (a slot is done when its task has the spec's hash) and the service's
 * UpdateStatus and failure count in etcd, so a new leader resumes: no slot replaced twice, none skipped.
 */
import { errorMessage } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import type { UpdateState } from '../../lib/swarm-types.js';
import type { ClusterState } from '../state.js';
import { observe } from './observe.js';
import type { ServiceRecord, SwarmRecords, TaskRecord } from './records.js';
import { slotKey, type SlotReplacer } from './replace.js';
import { slotPlan } from './slots.js';
import { templateHash, updateConfig } from './spec.js';

const IN_PROGRESS: UpdateState[] = ['updating', 'rollback_started'];

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => {
    clearTimeout(t);
    resolve();
  }, { once: true });
});

export class Updater {
  /** The update running per service: a newer one aborts it. */
  private readonly runs = new Map<string, AbortController>();
  /** Told when an update or rollback ends (the reconciler fills what a failure left empty). */
  onDone?: (service: string) => void;

  constructor(
    private readonly recs: SwarmRecords,
    private readonly replacer: SlotReplacer,
    private readonly state: ClusterState,
    private readonly log: Logger,
  ) {}

  inProgress(svc: ServiceRecord): boolean {
    // a Sampan release shows itself in UpdateStatus too, but it is the release controller that drives it
    return !svc.release && !!svc.updateStatus && IN_PROGRESS.includes(svc.updateStatus.State);
  }

  /** Starts (or resumes) the service's update as its record says; one at a time per service. */
  run(id: string): void {
    this.runs.get(id)?.abort();
    const ac = new AbortController();
    this.runs.set(id, ac);
    void this.loop(id, ac.signal)
      .catch((err: unknown) => this.log.warn({ service: id, err: errorMessage(err) }, 'service update stopped'))
      .finally(() => {
        if (this.runs.get(id) === ac) this.runs.delete(id);
        this.onDone?.(id);
      });
  }

  cancel(id: string): void {
    this.runs.get(id)?.abort();
    this.runs.delete(id);
  }

  /** The service's record changed (a service removed meanwhile stays removed). */
  private async status(svc: ServiceRecord, change: Partial<ServiceRecord>): Promise<ServiceRecord> {
    const cur = this.recs.services.get(svc.id);
    if (!cur) return svc;
    const next = { ...cur, ...change, version: this.recs.next(), updatedAt: new Date().toISOString() };
    await this.recs.putService(next);
    return next;
  }

  private async loop(id: string, signal: AbortSignal): Promise<void> {
    const held: string[] = [];
    try {
      await this.steps(id, signal, held);
    } finally {
      for (const k of held) this.replacer.release(k);
    }
  }

  private async steps(id: string, signal: AbortSignal, held: string[]): Promise<void> {
    let svc = this.recs.services.get(id);
    if (!svc || !this.inProgress(svc)) return;
    const rollback = svc.updateStatus!.State === 'rollback_started';
    const cfg = updateConfig(rollback ? svc.spec.RollbackConfig : svc.spec.UpdateConfig);
    const hash = templateHash(svc.spec.TaskTemplate);
    const slots = slotPlan(svc.spec, this.recs.tasksOf(id), this.state).want.size;
    let failures = svc.updateFailures ?? 0;
    const monitored: Array<{ task: TaskRecord; until: number }> = [];
    const counted = new Set<string>();
    let failedTask: string | undefined;
    const checkMonitored = () => {
      const now = Date.now();
      for (const m of monitored) {
        if (counted.has(m.task.id)) continue;
        const cur = this.recs.tasks.get(m.task.id) ?? m.task;
        const o = observe(this.state, cur);
        const failed = cur.state === 'failed' || (o.kind !== 'running' && cur.desired === 'running' && o.kind !== 'other');
        if (failed && now <= m.until + 1000) {
          counted.add(m.task.id);
          failures++;
          failedTask ??= m.task.id;
        }
      }
    };
    this.log.info({ service: svc.spec.Name, rollback, parallelism: cfg.Parallelism, order: cfg.Order }, rollback ? 'rollback started' : 'update started');
    const tripped = () => failures > 0 && failures / Math.max(1, slots) > cfg.MaxFailureRatio && cfg.FailureAction !== 'continue';
    // the next slot not of the spec that nobody is replacing (a replacement holds its slot busy from its first step),
    // each slot once in a run as swarmkit's updater: one that failed is not tried again and again
    const tried = new Set<number>();
    const next = (): TaskRecord | undefined => {
      const cur = this.recs.services.get(id);
      if (!cur) return undefined;
      const want = slotPlan(cur.spec, this.recs.tasksOf(id), this.state).want;
      const t = this.recs.tasksOf(id).filter((x) => x.desired === 'running' && x.hash !== hash && want.has(x.slot) && !tried.has(x.slot) && !this.replacer.busy.has(slotKey(id, x.slot)))
        .sort((a, b) => a.slot - b.slot)[0];
      if (t) tried.add(t.slot);
      return t;
    };
    // Parallelism workers each take the next slot as soon as theirs is done (plus Delay), as swarmkit's updater
    // does: no batch waits for its slowest task
    const worker = async (): Promise<void> => {
      for (;;) {
        if (signal.aborted) return;
        checkMonitored();
        if (tripped()) return;
        const t = next();
        const cur = this.recs.services.get(id);
        if (!t || !cur) return;
        const r = await this.replacer.replace(cur, t.slot, cur.spec.TaskTemplate, { order: cfg.Order, signal }).catch((err: unknown) => ({ ok: false, error: errorMessage(err), task: undefined, startMs: 0 }));
        if (!r.ok) {
          if (r.task) {
            const key = slotKey(id, r.task.slot);
            this.replacer.hold(key);
            held.push(key);
            counted.add(r.task.id);
          }
          failures++;
          failedTask ??= r.task?.id;
          await this.status(cur, { updateFailures: failures });
        } else if (r.task) monitored.push({ task: r.task, until: Date.now() + cfg.Monitor / 1e6 });
        if (cfg.Delay > 0) await sleep(cfg.Delay / 1e6, signal);
      }
    };
    const dirtySlots = new Set(this.recs.tasksOf(id).filter((t) => t.desired === 'running' && t.hash !== hash).map((t) => t.slot)).size;
    await Promise.all(Array.from({ length: Math.max(1, cfg.Parallelism > 0 ? Math.min(cfg.Parallelism, dirtySlots) : dirtySlots) }, worker));
    if (signal.aborted) return;
    // the last tasks are watched for their Monitor before the update counts as done
    const lastWatch = Math.max(0, ...monitored.map((m) => m.until)) - Date.now();
    if (!tripped()) {
      if (lastWatch > 0) await sleep(lastWatch, signal);
      if (signal.aborted) return;
      checkMonitored();
    }
    svc = this.recs.services.get(id);
    if (!svc) return;
    const now = new Date().toISOString();
    if (!tripped()) {
      await this.status(svc, { updateStatus: { State: rollback ? 'rollback_completed' : 'completed', StartedAt: svc.updateStatus?.StartedAt, CompletedAt: now, Message: rollback ? 'rollback completed' : 'update completed' }, updateFailures: 0 });
      this.log.info({ service: svc.spec.Name, failures }, rollback ? 'rollback completed' : 'update completed');
      return;
    }
    const why = `failure or early termination of task ${failedTask ?? ''}`.trim();
    if (cfg.FailureAction === 'rollback' && !rollback && svc.previousSpec) {
      this.log.warn({ service: svc.spec.Name, failures }, 'update failed: rolling back');
      await this.status(svc, { spec: svc.previousSpec, previousSpec: svc.spec, updateFailures: 0, updateStatus: { State: 'rollback_started', StartedAt: now, Message: `update rolled back due to ${why}` } });
      setImmediate(() => this.run(id));
      return;
    }
    this.log.warn({ service: svc.spec.Name, failures }, rollback ? 'rollback paused' : 'update paused');
    await this.status(svc, { updateStatus: { State: rollback ? 'rollback_paused' : 'paused', StartedAt: svc.updateStatus?.StartedAt, Message: `${rollback ? 'rollback' : 'update'} paused due to ${why}` } });
  }
}
