/**
 * A task is a container on an engine: its body from the task spec (swarm's labels, the service's name as an alias
 * on the cluster network), placed by the cluster's scheduler under an id the manager chose, the image pulled on the
 * node, the configs written into it between create and start, then started. Stopping one removes its container.
 */
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { jsonMessages } from '../../lib/engine-client.js';
import { errorMessage, isCode } from '../../lib/errors.js';
import { newId } from '../../lib/ids.js';
import type { Logger } from '../../lib/log.js';
import type { TaskSpec } from '../../lib/swarm-types.js';
import type { Cluster, ClusterContainers } from '../backend/index.js';
import { DEFAULT_NETWORK } from '../network/networks.js';
import { schedulingRequest } from '../request.js';
import type { NodeEntry } from '../state.js';
import { swarmId, type ConfigRecord, type ServiceRecord, type SwarmRecords, type TaskRecord } from './records.js';
import { slotNode } from './slots.js';
import { constraints, isGlobal, templateHash } from './spec.js';

export const LABEL = {
  serviceId: 'com.docker.swarm.service.id',
  serviceName: 'com.docker.swarm.service.name',
  taskId: 'com.docker.swarm.task.id',
  taskName: 'com.docker.swarm.task.name',
  nodeId: 'com.docker.swarm.node.id',
} as const;

/** The engine's container config for a task (moby's daemon/cluster/executor/container: ContainerSpec → Config/HostConfig). */
export function containerBody(svc: ServiceRecord, spec: TaskSpec, t: { id: string; slot: number; name: string; node: string }): Record<string, unknown> {
  const cs = spec.ContainerSpec;
  const network = spec.Networks?.[0]?.Target ?? svc.spec.Networks?.[0]?.Target ?? DEFAULT_NETWORK;
  const labels: Record<string, string> = {
    ...cs.Labels, [LABEL.serviceId]: svc.id, [LABEL.serviceName]: svc.spec.Name, [LABEL.taskId]: t.id, [LABEL.taskName]: t.name, [LABEL.nodeId]: t.node,
  };
  const rules = constraints(spec);
  if (rules.length) labels['com.docker.swarm.constraints'] = JSON.stringify(rules);
  const res = spec.Resources ?? {};
  return {
    Image: cs.Image,
    ...(cs.Command?.length && { Entrypoint: cs.Command }),
    ...(cs.Args?.length && { Cmd: cs.Args }),
    Env: cs.Env ?? [],
    ...(cs.Dir && { WorkingDir: cs.Dir }),
    ...(cs.User && { User: cs.User }),
    ...(cs.Hostname && { Hostname: cs.Hostname }),
    Tty: !!cs.TTY,
    OpenStdin: !!cs.OpenStdin,
    Labels: labels,
    ...(cs.StopSignal && { StopSignal: cs.StopSignal }),
    ...(cs.StopGracePeriod !== undefined && { StopTimeout: Math.round(cs.StopGracePeriod / 1e9) }),
    ...(cs.Healthcheck && { Healthcheck: cs.Healthcheck }),
    HostConfig: {
      ...(cs.Mounts?.length && { Mounts: cs.Mounts }),
      ...(cs.Init !== undefined && { Init: cs.Init }),
      ...(res.Limits?.MemoryBytes && { Memory: res.Limits.MemoryBytes }),
      ...(res.Limits?.NanoCPUs && { NanoCpus: res.Limits.NanoCPUs }),
      NetworkMode: network,
    },
    NetworkingConfig: { EndpointsConfig: { [network]: { Aliases: [svc.spec.Name, ...(spec.Networks?.[0]?.Aliases ?? [])] } } },
  };
}

/** The configs' files as a tar to extract at `/`, each at its target with its owner and mode. */
export function configTar(files: Array<{ target: string; data: Buffer; uid: number; gid: number; mode: number }>): Readable {
  const pack = tar.pack();
  for (const f of files) pack.entry({ name: f.target.replace(/^\/+/, ''), mode: f.mode, uid: f.uid, gid: f.gid, mtime: new Date() }, f.data);
  pack.finalize();
  return Readable.from(pack);
}

export interface StartOptions {
  /** Node ids not to use. */
  avoid?: Set<string>;
  /** The node the task must run on (a global service's); else, for a global service, the node of the slot's tasks. */
  node?: string;
  signal?: AbortSignal;
}

export class TaskRunner {
  constructor(
    private readonly cluster: Cluster,
    private readonly containers: ClusterContainers,
    private readonly recs: SwarmRecords,
    private readonly log: Logger,
  ) {}

  /** The configs a spec names, read now (a missing one fails the task). */
  private configFiles(spec: TaskSpec): Array<{ target: string; data: Buffer; uid: number; gid: number; mode: number }> {
    return (spec.ContainerSpec.Configs ?? []).filter((r) => r.File).map((r) => {
      const c: ConfigRecord | undefined = this.recs.configs.get(r.ConfigID) ?? [...this.recs.configs.values()].find((x) => x.spec.Name === r.ConfigName);
      if (!c) throw new Error(`config ${r.ConfigName || r.ConfigID} not found`);
      const f = r.File!;
      return { target: f.Name.startsWith('/') ? f.Name : `/${f.Name}`, data: Buffer.from(c.spec.Data ?? '', 'base64'), uid: Number(f.UID ?? 0), gid: Number(f.GID ?? 0), mode: f.Mode ?? 0o444 };
    });
  }

  /**
   * A new task in `slot`: recorded, placed, pulled, created, configs written, started. Resolves with its record,
   * running or failed (never rejects for the task's own failure: that is its state).
   */
  async start(svc: ServiceRecord, slot: number, spec: TaskSpec, o: StartOptions = {}): Promise<TaskRecord> {
    const now = new Date().toISOString();
    const id = swarmId();
    // a global task is pinned to its slot's node (the avoid list of a release's retry does not move it) and named
    // after it, as swarm names it: SERVICE.NODEID.TASKID
    const pin = isGlobal(svc.spec) ? (o.node ?? slotNode(this.recs.tasksOf(svc.id), slot)) : undefined;
    const name = `${svc.spec.Name}.${pin ?? slot}.${id}`;
    let t: TaskRecord = { id, version: this.recs.next(), createdAt: now, updatedAt: now, service: svc.id, slot, node: pin ?? '', container: newId(), spec, hash: templateHash(spec), desired: 'running', state: 'pending', message: 'pending task scheduling' };
    let node: NodeEntry | undefined;
    let placed = false;
    try {
      const body0 = containerBody(svc, spec, { id, slot, name, node: '' });
      const { req } = schedulingRequest(body0);
      try {
        node = (await this.cluster.schedule(req, 1, pin !== undefined ? { only: pin } : { ...(o.avoid?.size && { exclude: o.avoid }) }))[0]!;
      } catch (err) {
        // no node fits: the task waits as swarmkit's does (pending), the reconciler tries again
        t = { ...t, state: 'pending', message: 'pending task scheduling', err: `no suitable node (${errorMessage(err)})` };
        await this.recs.putTask(t);
        return t;
      }
      placed = true;
      t = { ...t, node: node.rec.id, state: 'assigned', message: 'assigned' };
      await this.recs.putTask(t);
      const files = this.configFiles(spec);
      const { body } = schedulingRequest(containerBody(svc, spec, { id, slot, name, node: node.rec.id }));
      await this.pull(node, spec.ContainerSpec.Image, o.signal);
      const addr = this.cluster.net.request(body);
      placed = false; // createOn settles the scheduler's count
      await this.containers.createOn({ id: t.container, node, name, ...(addr && { net: { network: addr.network.spec.id } }) }, body);
      if (files.length) await this.cluster.client(node).request('PUT', `/containers/${t.container}/archive`, { query: { path: '/' }, body: configTar(files) });
      await this.cluster.command(node, 'start', { id: t.container });
      const running = this.cluster.state.entry(t.container)?.summary;
      t = { ...t, version: this.recs.next(), updatedAt: new Date().toISOString(), state: 'running', message: 'started', ...(running && { exitCode: undefined }) };
      await this.recs.putTask(t);
      return t;
    } catch (err) {
      if (placed && node) this.cluster.settled(node);
      const msg = errorMessage(err);
      this.log.info({ service: svc.spec.Name, slot, task: id, node: node?.rec.name, err: msg }, 'task failed to start');
      // what is left of it goes: a created container that did not start
      if (node && this.cluster.state.entry(t.container)) await this.removeContainer(t).catch(() => undefined);
      t = { ...t, version: this.recs.next(), updatedAt: new Date().toISOString(), state: node ? 'failed' : 'rejected', desired: 'shutdown', message: 'starting container failed', err: msg };
      await this.recs.putTask(t).catch(() => undefined);
      return t;
    }
  }

  /** The image on the node, as swarm's agent does: pulled unless the node has it; a failed pull leaves the create to say. */
  private async pull(node: NodeEntry, image: string, signal?: AbortSignal): Promise<void> {
    if (node.imageRefs.has(image)) return;
    try {
      const res = await this.cluster.client(node).stream('POST', '/images/create', { query: { fromImage: image } });
      signal?.addEventListener('abort', () => res.destroy(), { once: true });
      for await (const m of jsonMessages(res)) if (m.error) this.log.debug({ node: node.rec.name, image, err: m.error }, 'pull failed');
    } catch (err) {
      this.log.debug({ node: node.rec.name, image, err: errorMessage(err) }, 'pull failed');
    }
  }

  private async removeContainer(t: TaskRecord): Promise<void> {
    const node = this.cluster.state.nodes.get(t.node);
    if (node && node.rec.state === 'up' && this.cluster.connected(node)) {
      const grace = t.spec.ContainerSpec.StopGracePeriod;
      if (this.cluster.state.entry(t.container)?.summary.State === 'running') {
        await this.cluster.command(node, 'stop', { id: t.container, ...(grace !== undefined && { t: Math.round(grace / 1e9) }) }).catch(() => undefined);
      }
      await this.cluster.command(node, 'remove', { id: t.container, force: true, volumes: true }).catch((err: unknown) => {
        if (!isCode(err, 'NOT_FOUND')) throw err;
      });
    }
    if (this.cluster.state.placed.has(t.container)) await this.cluster.unplace([t.container]);
  }

  /** Shut down: desired state first (nothing restarts it), then its container stopped and removed where its node answers. */
  async stop(t: TaskRecord, state: 'shutdown' | 'failed' | 'complete' | 'orphaned' = 'shutdown', message = 'shutdown', err?: string): Promise<TaskRecord> {
    const cur = this.recs.tasks.get(t.id) ?? t;
    const terminal = ['failed', 'complete', 'rejected', 'shutdown', 'orphaned'].includes(cur.state);
    const next: TaskRecord = { ...cur, version: this.recs.next(), updatedAt: new Date().toISOString(), desired: 'shutdown', ...(!terminal && { state, message, ...(err && { err }) }) };
    await this.recs.putTask(next);
    await this.removeContainer(next).catch((e: unknown) => this.log.warn({ task: t.id, err: errorMessage(e) }, 'could not remove a task\'s container'));
    return next;
  }
}
