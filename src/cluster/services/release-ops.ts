/** What a release drives (src/cluster/release/ops.ts), over the same slot replacement as Docker's rolling update. */
import { jsonMessages } from '../../lib/engine-client.js';
import { conflict, errorMessage } from '../../lib/errors.js';
import type { UpdateState } from '../../lib/swarm-types.js';
import type { ReleaseInstance, ReleaseOps, ReleaseState, ReplaceResult } from '../release/index.js';
import type { ServiceController } from './controller.js';
import type { TaskRecord } from './records.js';
import { observe } from './observe.js';
import { slotKey } from './replace.js';

export class ServiceReleaseOps implements ReleaseOps {
  constructor(
    private readonly ctl: ServiceController,
    /** The capped pre-puller (src/cluster/prepull.ts) where the manager has one; else a plain pull through the engine. */
    private readonly prePuller?: (node: string, image: string) => Promise<void>,
    /** The P2P scheduler's preheat where the manager has one (--p2p-scheduler). */
    readonly preheat?: (image: string) => Promise<void>,
  ) {}

  /** Writes of one service's record, one after the other, each reading the record when its turn comes. */
  private writes = new Map<string, Promise<unknown>>();

  private serial<T>(service: string, fn: () => Promise<T>): Promise<T> {
    const p = (this.writes.get(service) ?? Promise.resolve()).then(fn, fn);
    const tail = p.catch(() => undefined);
    this.writes.set(service, tail);
    void tail.then(() => this.writes.get(service) === tail && this.writes.delete(service));
    return p;
  }

  instances(service: string): ReleaseInstance[] {
    const svc = this.ctl.recs.service(service);
    const state = this.ctl.cluster.state;
    // one per slot: a slot may hold a failed task still desired running beside its replacement; the running one,
    // else the newest, is the slot's
    const bySlot = new Map<number, TaskRecord>();
    for (const t of this.ctl.recs.tasksOf(svc.id)) {
      if (t.desired !== 'running') continue;
      const o = bySlot.get(t.slot);
      const better = !o || (t.state === 'running') !== (o.state === 'running') ? !o || t.state === 'running' : t.updatedAt > o.updatedAt;
      if (better) bySlot.set(t.slot, t);
    }
    return [...bySlot.values()].sort((a, b) => a.slot - b.slot).map((t) => {
      const o = t.state === 'running' ? observe(state, t) : undefined;
      const s: ReleaseInstance['state'] = t.state === 'assigned' ? 'pending' : t.state === 'running' ? (o?.kind === 'running' ? (o.health === 'starting' ? 'starting' : 'running') : 'failed') : t.state === 'pending' ? 'new' : t.state === 'failed' || t.state === 'rejected' ? 'failed' : 'shutdown';
      return { slot: t.slot, taskId: t.id, node: state.nodes.get(t.node)?.rec.name ?? t.node, image: t.spec.ContainerSpec.Image, state: s, ...(o?.kind === 'running' && o.health && { healthy: o.health === 'healthy' }) };
    });
  }

  async replace(service: string, slot: number, image: string, o: { order: 'stop-first' | 'start-first'; avoid?: string[]; signal?: AbortSignal }): Promise<ReplaceResult> {
    // never two replacements of one slot: a Docker update this release superseded may still be finishing this one
    await this.ctl.replacer.idle(slotKey(this.ctl.recs.service(service).id, slot), o.signal);
    const svc = this.ctl.recs.service(service);
    const state = this.ctl.cluster.state;
    const avoid = new Set((o.avoid ?? []).map((n) => state.node(n)?.rec.id ?? n));
    const t = svc.spec.TaskTemplate;
    const r = await this.ctl.replacer.replace(svc, slot, { ...t, ContainerSpec: { ...t.ContainerSpec, Image: image } }, { order: o.order, avoid, signal: o.signal, adopt: true });
    return { ok: r.ok, ...(r.task && { taskId: r.task.id, node: state.nodes.get(r.task.node)?.rec.name ?? r.task.node }), ...(r.error && { error: r.error }), startMs: r.startMs };
  }

  async prePull(node: string, image: string): Promise<void> {
    if (this.prePuller) return this.prePuller(node, image);
    const n = this.ctl.cluster.state.getNode(node);
    const res = await this.ctl.cluster.client(n).stream('POST', '/images/create', { query: { fromImage: image } });
    for await (const m of jsonMessages(res)) if (m.error) throw new Error(`pull of ${image} on ${n.rec.name} failed: ${errorMessage(m.error)}`);
  }

  setImage(service: string, image: string): Promise<void> {
    return this.serial(service, () => this.writeImage(service, image));
  }

  private async writeImage(service: string, image: string): Promise<void> {
    const svc = this.ctl.recs.service(service);
    const t = svc.spec.TaskTemplate;
    const spec = { ...svc.spec, TaskTemplate: { ...t, ContainerSpec: { ...t.ContainerSpec, Image: image } } };
    await this.ctl.recs.putService({ ...svc, spec, previousSpec: svc.spec, version: this.ctl.recs.next(), updatedAt: new Date().toISOString() });
  }

  claim(service: string, id: string): Promise<void> {
    return this.serial(service, () => this.writeClaim(service, id));
  }

  private async writeClaim(service: string, id: string): Promise<void> {
    const svc = this.ctl.recs.service(service);
    const name = svc.spec.Name;
    if (svc.release && svc.release !== id) throw conflict(`service ${name} is held by release ${svc.release}: sampan release status ${name}`);
    // a new release supersedes Docker's update in progress, as a new `docker service update` does: never both
    if (this.ctl.updater.inProgress(svc)) this.ctl.updater.cancel(svc.id);
    const now = new Date().toISOString();
    await this.ctl.recs.putService({ ...svc, release: id, version: this.ctl.recs.next(), updatedAt: now, updateStatus: { State: 'updating', StartedAt: now, Message: `sampan release ${id} started` } });
  }

  status(service: string, id: string, state: ReleaseState, message: string): Promise<void> {
    return this.serial(service, () => this.writeStatus(service, id, state, message));
  }

  private async writeStatus(service: string, id: string, state: ReleaseState, message: string): Promise<void> {
    const svc = [...this.ctl.recs.services.values()].find((s) => s.spec.Name === service || s.id === service);
    // removed meanwhile, or held by a newer release
    if (!svc || (svc.release && svc.release !== id)) return;
    const active = state === 'running' || state === 'waiting-confirm' || state === 'paused' || state === 'rolling-back';
    const now = new Date().toISOString();
    const updateStatus = { State: UPDATE_STATE[state], StartedAt: svc.updateStatus?.StartedAt ?? now, ...(!active && { CompletedAt: now }), Message: message };
    const { release: _held, ...rest } = svc;
    await this.ctl.recs.putService({ ...rest, ...(active && { release: id }), updateStatus, version: this.ctl.recs.next(), updatedAt: now });
    // a slot a failed replacement left empty is filled again once the release is over
    if (!active) this.ctl.reconciler.kick(svc.id);
  }
}

/**
 * What `docker service inspect|ps` users see of a release: waiting for the owner's confirmation is a pause (the
 * docker CLI's progress stops there with the message), a rollback that could not bring every slot back too.
 */
const UPDATE_STATE: Record<ReleaseState, UpdateState> = {
  running: 'updating', 'waiting-confirm': 'paused', paused: 'paused', 'rolling-back': 'rollback_started',
  'rolled-back': 'rollback_completed', done: 'completed', failed: 'rollback_paused',
};
