/** What a release drives (src/cluster/release/ops.ts), over the same slot replacement as Docker's rolling update. */
import { jsonMessages } from '../../lib/engine-client.js';
import { errorMessage } from '../../lib/errors.js';
import type { ReleaseInstance, ReleaseOps, ReplaceResult } from '../release/ops.js';
import type { ServiceController } from './controller.js';
import { observe } from './observe.js';

export class ServiceReleaseOps implements ReleaseOps {
  constructor(
    private readonly ctl: ServiceController,
    /** The capped pre-puller (src/cluster/prepull.ts) where the manager has one; else a plain pull through the engine. */
    private readonly prePuller?: (node: string, image: string) => Promise<void>,
  ) {}

  instances(service: string): ReleaseInstance[] {
    const svc = this.ctl.recs.service(service);
    const state = this.ctl.cluster.state;
    return this.ctl.recs.tasksOf(svc.id).filter((t) => t.desired === 'running').sort((a, b) => a.slot - b.slot).map((t) => {
      const o = t.state === 'running' ? observe(state, t) : undefined;
      const s: ReleaseInstance['state'] = t.state === 'assigned' ? 'pending' : t.state === 'running' ? (o?.kind === 'running' ? (o.health === 'starting' ? 'starting' : 'running') : 'failed') : t.state === 'pending' ? 'new' : t.state === 'failed' || t.state === 'rejected' ? 'failed' : 'shutdown';
      return { slot: t.slot, taskId: t.id, node: state.nodes.get(t.node)?.rec.name ?? t.node, image: t.spec.ContainerSpec.Image, state: s, ...(o?.kind === 'running' && o.health && { healthy: o.health === 'healthy' }) };
    });
  }

  async replace(service: string, slot: number, image: string, o: { order: 'stop-first' | 'start-first'; avoid?: string[]; signal?: AbortSignal }): Promise<ReplaceResult> {
    const svc = this.ctl.recs.service(service);
    const state = this.ctl.cluster.state;
    const avoid = new Set((o.avoid ?? []).map((n) => state.node(n)?.rec.id ?? n));
    const t = svc.spec.TaskTemplate;
    const r = await this.ctl.replacer.replace(svc, slot, { ...t, ContainerSpec: { ...t.ContainerSpec, Image: image } }, { order: o.order, avoid, signal: o.signal });
    return { ok: r.ok, ...(r.task && { taskId: r.task.id, node: state.nodes.get(r.task.node)?.rec.name ?? r.task.node }), ...(r.error && { error: r.error }), startMs: r.startMs };
  }

  async prePull(node: string, image: string): Promise<void> {
    if (this.prePuller) return this.prePuller(node, image);
    const n = this.ctl.cluster.state.getNode(node);
    const res = await this.ctl.cluster.client(n).stream('POST', '/images/create', { query: { fromImage: image } });
    for await (const m of jsonMessages(res)) if (m.error) throw new Error(`pull of ${image} on ${n.rec.name} failed: ${errorMessage(m.error)}`);
  }

  async setImage(service: string, image: string): Promise<void> {
    const svc = this.ctl.recs.service(service);
    const t = svc.spec.TaskTemplate;
    const spec = { ...svc.spec, TaskTemplate: { ...t, ContainerSpec: { ...t.ContainerSpec, Image: image } } };
    await this.ctl.recs.putService({ ...svc, spec, previousSpec: svc.spec, version: this.ctl.recs.next(), updatedAt: new Date().toISOString() });
  }
}
