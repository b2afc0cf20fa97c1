/**
 * Docker's rolling update (swarmkit's orchestrator/update): the slots whose task is not of the service's current
 * spec are replaced Parallelism at a time (0: all), Delay between batches, each new task watched for Monitor after
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
import { replicasOf, templateHash, updateConfig } from './spec.js';

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
    const slots = replicasOf(svc.spec);
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
    for (;;) {
      if (signal.aborted) return;
      svc = this.recs.services.get(id);
      if (!svc) return;
      checkMonitored();
      if (failures > 0 && failures / Math.max(1, slots) > cfg.MaxFailureRatio && cfg.FailureAction !== 'continue') break;
      const dirty = this.recs.tasksOf(id).filter((t) => t.desired === 'running' && t.hash !== hash && t.slot <= replicasOf(svc!.spec) && !this.replacer.busy.has(slotKey(id, t.slot)))
        .sort((a, b) => a.slot - b.slot);
      const seen = new Set<number>();
      const todo = dirty.filter((t) => !seen.has(t.slot) && seen.add(t.slot));
      if (!todo.length) break;
      const batch = todo.slice(0, cfg.Parallelism > 0 ? cfg.Parallelism : undefined);
      const results = await Promise.all(batch.map((t) => this.replacer.replace(svc!, t.slot, svc!.spec.TaskTemplate, { order: cfg.Order, signal }).catch((err: unknown) => ({ ok: false, error: errorMessage(err), task: undefined, startMs: 0 }))));
      for (const r of results) {
        if (!r.ok) {
          if (r.task) {
            const key = slotKey(id, r.task.slot);
            this.replacer.hold(key);
            held.push(key);
          }
          failures++;
          failedTask ??= r.task?.id;
          if (r.task) counted.add(r.task.id);
        } else if (r.task) monitored.push({ task: r.task, until: Date.now() + cfg.Monitor / 1e6 });
      }
      if (failures) svc = await this.status(svc, { updateFailures: failures });
      if (cfg.Delay > 0) await sleep(cfg.Delay / 1e6, signal);
    }
    if (signal.aborted) return;
    // the last batch's tasks are watched for their Monitor before the update counts as done
    const lastWatch = Math.max(0, ...monitored.map((m) => m.until)) - Date.now();
    if (failures === 0 || failures / Math.max(1, slots) <= cfg.MaxFailureRatio || cfg.FailureAction === 'continue') {
      if (lastWatch > 0) await sleep(lastWatch, signal);
      if (signal.aborted) return;
      checkMonitored();
    }
    svc = this.recs.services.get(id);
    if (!svc) return;
    const tripped = failures > 0 && failures / Math.max(1, slots) > cfg.MaxFailureRatio && cfg.FailureAction !== 'continue';
    const now = new Date().toISOString();
    if (!tripped) {
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
