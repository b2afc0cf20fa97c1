/**
 * The services' composition: records in etcd, the task runner, the slot replacer, the reconciler and the updater;
 * what the API asks (create, update, rollback, remove) and what the cluster tells (a container changed, this
 * manager leads).
 */
import { conflict, invalid } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import type { ServiceSpec } from '../../lib/swarm-types.js';
import type { Cluster, ClusterContainers } from '../backend/index.js';
import { releaseFromLabels, type ReleaseRequest } from '../release/index.js';
import type { ContainerEntry } from '../state.js';
import type { ClusterStore } from '../store.js';
import { Configs } from './configs.js';
import { ContainerWaits, observe } from './observe.js';
import { Reconciler } from './reconciler.js';
import { swarmId, SwarmRecords, type ServiceRecord } from './records.js';
import { SlotReplacer } from './replace.js';
import { placementRules } from './slots.js';
import { isGlobal, templateHash, validateSpec } from './spec.js';
import { LABEL, TaskRunner } from './tasks.js';
import { Updater } from './updater.js';

export class ServiceController {
  readonly recs: SwarmRecords;
  readonly runner: TaskRunner;
  readonly waits = new ContainerWaits();
  readonly replacer: SlotReplacer;
  readonly reconciler: Reconciler;
  readonly updater: Updater;
  readonly configs: Configs;
  private leader = false;
  /** Whether this manager leads now (the election's word): a manager that lost the lead stops reconciling at once. */
  leading: () => boolean = () => true;
  /** Starts a Sampan release (the manager's ReleaseController): an image change on a service labelled for smart mode. */
  smartRelease?: (req: ReleaseRequest) => Promise<unknown>;
  /** Stops the service's release and deletes its releases (the release controller): a removed service has none. */
  forgetReleases?: (service: string) => Promise<void>;

  constructor(readonly cluster: Cluster, containers: ClusterContainers, store: ClusterStore, readonly log: Logger) {
    this.recs = new SwarmRecords(store);
    this.runner = new TaskRunner(cluster, containers, this.recs, log);
    this.replacer = new SlotReplacer(this.recs, this.runner, cluster.state, this.waits);
    this.reconciler = new Reconciler(this.recs, this.runner, this.replacer, cluster.state, log);
    this.reconciler.leading = () => this.leader && this.leading();
    this.updater = new Updater(this.recs, this.replacer, cluster.state, log);
    this.updater.onDone = (id) => this.reconciler.kick(id);
    this.configs = new Configs(this.recs);
  }

  /** This manager starts to lead: everything read again from etcd, every service reconciled, updates resumed. */
  async lead(): Promise<void> {
    await this.recs.load();
    this.leader = true;
    // tasks the last leader was starting when it stopped: what their containers say now, or failed (a new one follows)
    for (const t of [...this.recs.tasks.values()]) {
      if (t.desired !== 'running' || (t.state !== 'pending' && t.state !== 'assigned')) continue;
      const o = observe(this.cluster.state, t);
      if (o.kind === 'running') await this.recs.setTask(t, { state: 'running', message: 'started' });
      else await this.runner.stop(t, 'failed', 'the manager starting it stopped', 'the manager that was starting this task stopped before it ran');
    }
    this.reconciler.kickAll();
    for (const s of this.recs.services.values()) if (this.updater.inProgress(s)) this.updater.run(s.id);
  }

  stop(): void {
    this.leader = false;
    this.reconciler.stop();
    for (const id of this.recs.services.keys()) this.updater.cancel(id);
  }

  /** The cluster's feed: a task's container changed (a standby ignores it; the leader reconciles its service). */
  containerChanged(before: ContainerEntry | undefined, after: ContainerEntry | undefined): void {
    const e = after ?? before;
    const svc = e?.summary.Labels?.[LABEL.serviceId];
    if (!e || !svc) return;
    this.waits.changed(e.summary.Id);
    if (!this.leader || !this.leading()) return;
    this.reconciler.kick(svc);
    // a container of a task that should not run (its node came back after the task was replaced) goes
    const task = this.recs.tasks.get(e.summary.Labels[LABEL.taskId] ?? '');
    if (after && after.node.rec.state === 'up' && (!this.recs.services.has(svc) || (task && task.desired === 'shutdown'))) {
      void this.cluster.command(after.node, 'remove', { id: after.summary.Id, force: true, volumes: true }).catch(() => undefined);
    }
  }

  /**
   * The cluster's feed of nodes: one joined, went down or up, was drained or made active, had its labels edited, or
   * was removed. Global services follow their nodes (a replicated service's tasks follow their containers' changes).
   */
  nodeChanged(): void {
    if (!this.leader || !this.leading()) return;
    for (const s of this.recs.services.values()) if (isGlobal(s.spec)) this.reconciler.kick(s.id);
  }

  private nameTaken(name: string, except?: string): boolean {
    return [...this.recs.services.values()].some((s) => s.spec.Name === name && s.id !== except);
  }

  /** What Docker refuses of a spec beyond its own shape: unknown configs, unreadable constraints (a global service's plan reads them). */
  private check(spec: ServiceSpec): void {
    if (isGlobal(spec)) placementRules(spec);
    this.checkConfigs(spec);
  }

  private checkConfigs(spec: ServiceSpec): void {
    for (const r of spec.TaskTemplate.ContainerSpec.Configs ?? []) {
      const c = this.recs.configs.get(r.ConfigID) ?? [...this.recs.configs.values()].find((x) => x.spec.Name === r.ConfigName);
      if (!c) throw invalid(`rpc error: code = InvalidArgument desc = config not found: ${r.ConfigName || r.ConfigID}`);
    }
  }

  async create(body: unknown): Promise<ServiceRecord> {
    this.cluster.store.health.requireUp();
    const spec = validateSpec(body);
    if (this.nameTaken(spec.Name)) throw conflict(`rpc error: code = AlreadyExists desc = name conflicts with an existing object: service ${spec.Name} already exists`);
    this.check(spec);
    const now = new Date().toISOString();
    const rec: ServiceRecord = { id: swarmId(), version: this.recs.next(), createdAt: now, updatedAt: now, spec };
    await this.recs.putService(rec);
    this.log.info({ service: spec.Name, id: rec.id, ...(isGlobal(spec) ? { mode: 'global' } : { replicas: spec.Mode?.Replicated?.Replicas }), image: spec.TaskTemplate.ContainerSpec.Image }, 'service created');
    this.reconciler.kick(rec.id);
    return rec;
  }

  /**
   * A new spec (or, with `rollback`, the previous one): a changed task template is a rolling update; replicas alone
   * are a reconcile. `version` must be the one the client read (swarmkit's "update out of sequence").
   */
  async update(ref: string, version: number, body: unknown, rollback: boolean): Promise<ServiceRecord> {
    this.cluster.store.health.requireUp();
    const cur = this.recs.service(ref);
    if (version !== cur.version) throw conflict('rpc error: code = Unknown desc = update out of sequence');
    let spec: ServiceSpec;
    if (rollback) {
      if (!cur.previousSpec) throw invalid(`rpc error: code = FailedPrecondition desc = service ${cur.id} does not have a previous spec`);
      spec = cur.previousSpec;
    } else {
      spec = validateSpec(body);
      if (spec.Name !== cur.spec.Name) throw invalid('rpc error: code = Unimplemented desc = renaming services is not supported');
      // swarmkit's controlapi: a service stays replicated or global for life
      if (isGlobal(spec) !== isGlobal(cur.spec)) throw invalid('rpc error: code = InvalidArgument desc = service mode change is not allowed');
      this.check(spec);
    }
    const changed = templateHash(spec.TaskTemplate) !== templateHash(cur.spec.TaskTemplate);
    // a release holds the service's tasks: Docker's updater must not replace them meanwhile (replicas, labels: fine)
    if (cur.release && changed) throw conflict(`service ${cur.spec.Name} is being released (sampan release ${cur.release}): see sampan release status ${cur.spec.Name}; confirm, wait for it, or sampan release rollback ${cur.spec.Name} first`);
    const image = spec.TaskTemplate.ContainerSpec.Image;
    const smart = !rollback && this.smartRelease && image !== cur.spec.TaskTemplate.ContainerSpec.Image ? releaseFromLabels(spec.Name, image, spec.Labels ?? {}) : undefined;
    if (smart) return this.releaseUpdate(cur, spec, smart);
    const now = new Date().toISOString();
    const rec: ServiceRecord = {
      ...cur, version: this.recs.next(), updatedAt: now, spec, previousSpec: cur.spec, updateFailures: 0,
      ...(changed && { updateStatus: rollback ? { State: 'rollback_started' as const, StartedAt: now, Message: 'manually requested rollback' } : { State: 'updating' as const, StartedAt: now, Message: 'update in progress' } }),
    };
    await this.recs.putService(rec);
    this.log.info({ service: spec.Name, rollback, changed, image: spec.TaskTemplate.ContainerSpec.Image }, 'service updated');
    if (changed) this.updater.run(rec.id);
    this.reconciler.kick(rec.id);
    return rec;
  }

  /**
   * `docker service update --image` of a service labelled `com.sampan.release.mode=smart`: the rest of the spec is
   * written with the image the tasks run, and the release (which sets the new image) replaces them; never the updater.
   */
  private async releaseUpdate(cur: ServiceRecord, spec: ServiceSpec, req: ReleaseRequest): Promise<ServiceRecord> {
    const t = spec.TaskTemplate;
    const held: ServiceSpec = { ...spec, TaskTemplate: { ...t, ContainerSpec: { ...t.ContainerSpec, Image: cur.spec.TaskTemplate.ContainerSpec.Image } } };
    await this.recs.putService({ ...cur, version: this.recs.next(), updatedAt: new Date().toISOString(), spec: held, previousSpec: cur.spec });
    this.log.info({ service: spec.Name, image: req.image }, 'service update: a smart release');
    await this.smartRelease!(req);
    return this.recs.service(cur.id);
  }

  /** Its releases go first, then the record; the reconciler then removes the tasks and their containers. */
  async remove(ref: string): Promise<void> {
    this.cluster.store.health.requireUp();
    const cur = this.recs.service(ref);
    this.updater.cancel(cur.id);
    await this.forgetReleases?.(cur.spec.Name);
    await this.recs.put([], [{ kind: 'services', id: cur.id }]);
    this.log.info({ service: cur.spec.Name, id: cur.id }, 'service removed');
    this.reconciler.kick(cur.id);
  }
}
