/**
 * The leader's reconciler, driven by changes (a service written, a task's container changed, a node down), never by
 * polling: per service, one pass at a time, a pass asked for meanwhile runs after it. A pass records what the
 * containers say of the tasks (exited: failed or complete; gone or node down: failed), fills every slot the service
 * wants (slots.ts: up to the replicas, or one per eligible node of a global service, pinned to it) with a task of the
 * current spec (after the restart delay where the slot's last task failed), shuts down the slots it does not want,
 * and keeps at most HISTORY ended tasks per slot.
 */
import { errorMessage } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import { mapLimit } from '../backend/index.js';
import type { ClusterState } from '../state.js';
import { observe } from './observe.js';
import type { SwarmRecords, TaskRecord } from './records.js';
import { slotKey, type SlotReplacer } from './replace.js';
import { slotPlan } from './slots.js';
import { DEFAULT_RESTART_DELAY_NS } from './spec.js';
import type { TaskRunner } from './tasks.js';

/** swarmkit's TaskHistoryRetentionLimit default. */
const HISTORY = 5;
/** Tasks started at once by one pass. */
const STARTS_IN_FLIGHT = 16;

export class Reconciler {
  private readonly running = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Whether this manager leads (only the leader reconciles). */
  leading: () => boolean = () => true;

  constructor(
    private readonly recs: SwarmRecords,
    private readonly runner: TaskRunner,
    private readonly replacer: SlotReplacer,
    private readonly state: ClusterState,
    private readonly log: Logger,
  ) {}

  /** A pass over `service` soon (passes asked for in one tick are one). */
  kick(service: string, delayMs = 0): void {
    if (!this.leading()) return;
    if (delayMs > 0) {
      if (this.timers.has(service)) return;
      this.timers.set(service, setTimeout(() => {
        this.timers.delete(service);
        this.kick(service);
      }, delayMs).unref());
      return;
    }
    if (this.running.has(service)) {
      this.again.add(service);
      return;
    }
    const p = new Promise<void>((r) => setImmediate(r)).then(() => this.pass(service))
      .catch((err: unknown) => this.log.warn({ service, err: errorMessage(err) }, 'reconcile pass failed'))
      .finally(() => {
        this.running.delete(service);
        if (this.again.delete(service)) this.kick(service);
      });
    this.running.set(service, p);
  }

  kickAll(): void {
    for (const id of new Set([...this.recs.services.keys(), ...this.recs.servicesWithTasks()])) this.kick(id);
  }

  stop(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  /** What the containers say of the service's live tasks, recorded. */
  private async observeTasks(tasks: TaskRecord[]): Promise<void> {
    for (const t of tasks) {
      if (t.desired !== 'running' || t.state !== 'running') continue;
      if (this.replacer.busy.has(slotKey(t.service, t.slot))) continue;
      const o = observe(this.state, t);
      if (o.kind === 'exited') await this.runner.stop(t, o.exitCode === 0 ? 'complete' : 'failed', o.exitCode === 0 ? 'finished' : 'task: non-zero exit', o.exitCode === 0 ? undefined : `task: non-zero exit (${o.exitCode})`).then((x) => this.recs.setTask(x, { exitCode: o.exitCode }));
      else if (o.kind === 'gone') await this.runner.stop(t, 'failed', 'container removed', 'the task\'s container was removed');
      else if (o.kind === 'node-down') await this.runner.stop(t, 'orphaned', 'node is down', `node ${this.state.nodes.get(t.node)?.rec.name ?? t.node} is down`);
    }
  }

  private async pass(id: string): Promise<void> {
    if (!this.leading()) return;
    const svc = this.recs.services.get(id);
    if (!svc) {
      // removed: its tasks go, containers first
      await mapLimit(this.recs.tasksOf(id), STARTS_IN_FLIGHT, async (t) => {
        if (t.desired === 'running' || this.state.entry(t.container)) await this.runner.stop(t);
        await this.recs.put([], [{ kind: 'tasks', id: t.id }]);
      });
      return;
    }
    await this.observeTasks(this.recs.tasksOf(id));
    const tasks = this.recs.tasksOf(id);
    const plan = slotPlan(svc.spec, tasks, this.state);
    const live = new Map<number, TaskRecord[]>();
    for (const t of tasks) if (t.desired === 'running') live.set(t.slot, [...(live.get(t.slot) ?? []), t]);
    // slots not wanted: shut down (past the replicas, as swarmkit removes the highest; a global task's node drained,
    // gone or no longer matching the constraints)
    const extra = [...live.entries()].filter(([slot]) => !plan.want.has(slot) && !this.replacer.busy.has(slotKey(id, slot))).flatMap(([, ts]) => ts);
    await mapLimit(extra, STARTS_IN_FLIGHT, (t) => this.runner.stop(t));
    // empty slots: a task of the current spec, after the restart delay where its last one failed
    const delayMs = (svc.spec.TaskTemplate.RestartPolicy?.Delay ?? DEFAULT_RESTART_DELAY_NS) / 1e6;
    const fill: number[] = [];
    let wait = 0;
    for (const slot of plan.want.keys()) {
      if (live.has(slot) || this.replacer.busy.has(slotKey(id, slot))) continue;
      const last = tasks.filter((t) => t.slot === slot).sort((a, b) => b.updatedAt.localeCompare(a.updatedAt))[0];
      const since = last && (last.state === 'failed' || last.state === 'rejected') ? Date.now() - Date.parse(last.updatedAt) : Infinity;
      if (since < delayMs) wait = Math.max(wait, delayMs - since);
      else fill.push(slot);
    }
    if (fill.length) {
      const started = await mapLimit(fill, STARTS_IN_FLIGHT, async (slot) => {
        const key = slotKey(id, slot);
        this.replacer.hold(key);
        try {
          const node = plan.want.get(slot);
          return await this.runner.start(svc, slot, svc.spec.TaskTemplate, { ...(node && { node }) });
        } finally {
          this.replacer.release(key);
        }
      });
      const failed = started.filter((t) => t.state !== 'running');
      if (failed.length) {
        this.log.info({ service: svc.spec.Name, failed: failed.length, err: failed[0]!.err }, 'tasks failed to start');
        // an unschedulable (pending) task tries again soon; a failed one after the restart delay
        wait = Math.max(wait, failed.some((t) => t.state === 'pending') ? 1000 : delayMs);
      }
      // a pending task is not live: it is history once a new one tries
      for (const t of failed) if (t.state === 'pending') await this.recs.setTask(t, { desired: 'shutdown', state: 'rejected', message: 'no suitable node' });
    }
    if (wait > 0) this.kick(id, wait);
    await this.prune(id, plan.history);
  }

  /** At most HISTORY ended tasks per slot (and none of slots the plan keeps no history of), their records deleted. */
  private async prune(id: string, history: Set<number>): Promise<void> {
    const bySlot = new Map<number, TaskRecord[]>();
    for (const t of this.recs.tasksOf(id)) if (t.desired !== 'running') bySlot.set(t.slot, [...(bySlot.get(t.slot) ?? []), t]);
    const drop: TaskRecord[] = [];
    for (const [slot, ts] of bySlot) {
      ts.sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
      drop.push(...ts.slice(history.has(slot) ? HISTORY : 0));
    }
    const gone = drop.filter((t) => !this.state.entry(t.container));
    if (gone.length) await this.recs.put([], gone.map((t) => ({ kind: 'tasks' as const, id: t.id })));
  }
}
