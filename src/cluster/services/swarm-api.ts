/** The Docker API's swarm backend over the services controller and the cluster's nodes. */
import type { Filters, LogsOptions, Output, SwarmBackend } from '../../docker-api/index.js';
import { invalid, notFound } from '../../lib/errors.js';
import type { Service, SwarmConfig, SwarmInfo, SwarmNodeInfo, Task } from '../../lib/swarm-types.js';
import type { NodeUpdate } from '../nodes.js';
import type { ClusterState, NodeEntry } from '../state.js';
import type { ServiceController } from './controller.js';
import { serviceLogs } from './logs.js';
import { lookup, type ServiceRecord, type TaskRecord } from './records.js';
import { slotPlan } from './slots.js';
import { isGlobal } from './spec.js';
import { checkFilters, configMatches, configView, nodeMatches, nodeView, serviceMatches, serviceView, taskMatches, taskView } from './views.js';

/** What a node update needs of the cluster (the node registry's edit, the networks' removal of a node). */
export interface NodeOps {
  update(ref: string, u: NodeUpdate): Promise<NodeEntry>;
  remove(ref: string, force: boolean): Promise<void>;
}

/** The cluster's own identity as a swarm: `GET /swarm` and info's Swarm.Cluster. */
export function swarmIdentity(clusterName: string): { ID: string; CreatedAt: string } {
  return { ID: `sampan-${clusterName}`.padEnd(25, '0').slice(0, 25), CreatedAt: new Date(0).toISOString() };
}

/** info's Swarm: the manager as the swarm's one manager node, the engines as workers. */
export function swarmInfo(clusterName: string, state: ClusterState, leader: boolean): Record<string, unknown> {
  const id = swarmIdentity(clusterName);
  const nodeId = `manager-${clusterName}`.padEnd(25, '0').slice(0, 25);
  return {
    NodeID: nodeId, NodeAddr: '', LocalNodeState: 'active', ControlAvailable: true, Error: '',
    RemoteManagers: [{ NodeID: nodeId, Addr: '' }], Nodes: state.nodes.size, Managers: 1,
    Cluster: { ID: id.ID, Version: { Index: 1 }, CreatedAt: id.CreatedAt, UpdatedAt: id.CreatedAt, Spec: { Name: 'default', Labels: {}, Orchestration: { TaskHistoryRetentionLimit: 5 } }, TLSInfo: {}, RootRotationInProgress: false, DefaultAddrPool: [], SubnetSize: 24, DataPathPort: 4789 },
    ...(!leader && { Warnings: ['this manager is a standby: requests go to the leader'] }),
  };
}

export class SwarmApi implements SwarmBackend {
  constructor(private readonly ctl: ServiceController, private readonly nodeOps: NodeOps, private readonly clusterName: string) {}

  private get state() {
    return this.ctl.cluster.state;
  }

  async inspect(): Promise<SwarmInfo> {
    const id = swarmIdentity(this.clusterName);
    return {
      ID: id.ID, Version: { Index: 1 }, CreatedAt: id.CreatedAt, UpdatedAt: id.CreatedAt,
      Spec: { Name: 'default', Labels: {}, Orchestration: { TaskHistoryRetentionLimit: 5 }, Raft: {}, Dispatcher: {}, CAConfig: {}, TaskDefaults: {}, EncryptionConfig: { AutoLockManagers: false } },
      TLSInfo: {}, RootRotationInProgress: false, DataPathPort: 4789, DefaultAddrPool: [], SubnetSize: 24,
      JoinTokens: { Worker: '', Manager: '' },
    };
  }

  private node(ref: string): NodeEntry {
    const n = this.state.node(ref) ?? [...this.state.nodes.values()].find((x) => x.rec.id.startsWith(ref));
    if (!n || !ref) throw notFound(`node ${ref} not found`);
    return n;
  }

  nodes = {
    list: async (f: Filters): Promise<SwarmNodeInfo[]> => {
      checkFilters('node', f);
      return [...this.state.nodes.values()].filter((n) => nodeMatches(n, f)).sort((a, b) => a.rec.name.localeCompare(b.rec.name)).map(nodeView);
    },
    inspect: async (ref: string): Promise<SwarmNodeInfo> => nodeView(this.node(ref)),
    update: async (ref: string, _version: number, body: unknown): Promise<void> => {
      const n = this.node(ref);
      const spec = (body ?? {}) as { Labels?: Record<string, string>; Availability?: string; Role?: string };
      if (spec.Role === 'manager') throw invalid('rpc error: code = InvalidArgument desc = engines of a Sampan cluster are workers: the managers are `sampan cluster manager`');
      if (spec.Availability !== undefined && !['active', 'pause', 'drain'].includes(spec.Availability)) throw invalid(`rpc error: code = InvalidArgument desc = invalid availability ${spec.Availability}`);
      const cur = nodeView(n).Spec.Labels;
      const want = spec.Labels ?? {};
      const labelRm = Object.keys(cur).filter((k) => !(k in want));
      // pause and drain both take no new tasks (the cluster's drain); running tasks stay
      await this.nodeOps.update(n.rec.id, { labelAdd: want, labelRm, ...(spec.Availability && { availability: spec.Availability === 'active' ? 'active' : 'drain' }) });
    },
    remove: (ref: string, force: boolean) => this.nodeOps.remove(this.node(ref).rec.id, force),
  };

  services = {
    create: async (spec: unknown): Promise<{ ID: string; Warnings: string[] }> => ({ ID: (await this.ctl.create(spec)).id, Warnings: [] }),
    list: async (f: Filters, status: boolean): Promise<Service[]> => {
      checkFilters('service', f);
      return [...this.ctl.recs.services.values()].filter((s) => serviceMatches(s, f)).sort((a, b) => a.spec.Name.localeCompare(b.spec.Name)).map((s) => serviceView(s, status ? this.counts(s) : undefined));
    },
    inspect: async (ref: string): Promise<Service> => serviceView(this.ctl.recs.service(ref)),
    update: async (ref: string, version: number, spec: unknown, o: { rollback: boolean }): Promise<{ Warnings: string[] }> => {
      await this.ctl.update(ref, version, spec, o.rollback);
      return { Warnings: [] };
    },
    remove: (ref: string) => this.ctl.remove(ref),
    logs: async (ref: string, o: LogsOptions & { details: boolean }, out: Output): Promise<void> => {
      const svc = this.ctl.recs.service(ref);
      await serviceLogs(this.ctl.cluster, svc, this.ctl.recs.tasksOf(svc.id), o, out);
    },
  };

  /** ServiceStatus: tasks running on a node that is up, the slots wanted (replicas, or eligible nodes), tasks that completed. */
  private counts(s: ServiceRecord): { running: number; desired: number; completed: number } {
    let running = 0;
    let completed = 0;
    const tasks = this.ctl.recs.tasksOf(s.id);
    for (const t of tasks) {
      if (t.desired === 'running' && t.state === 'running' && this.state.nodes.get(t.node)?.rec.state === 'up') running++;
      if (t.state === 'complete') completed++;
    }
    return { running, desired: slotPlan(s.spec, tasks, this.state).want.size, completed };
  }

  tasks = {
    list: async (f: Filters): Promise<Task[]> => {
      checkFilters('task', f);
      const services = this.ctl.recs.services;
      // a service filter by name or id prefix reads that service's tasks only
      const svcs = f.get('service');
      const pool = svcs?.length ? svcs.flatMap((v) => [...this.ctl.recs.tasksOf(v), ...[...services.values()].filter((s) => s.id.startsWith(v) || s.spec.Name === v).flatMap((s) => this.ctl.recs.tasksOf(s.id))]) : [...this.ctl.recs.tasks.values()];
      return [...new Set(pool)].filter((t) => taskMatches(t, f, services, this.state)).sort((a, b) => a.slot - b.slot || b.updatedAt.localeCompare(a.updatedAt)).map((t) => this.taskView(t));
    },
    inspect: async (ref: string): Promise<Task> => this.taskView(lookup(this.ctl.recs.tasks, ref, () => undefined, 'task')),
  };

  private taskView(t: TaskRecord): Task {
    const svc = this.ctl.recs.services.get(t.service);
    return taskView(t, !!svc && isGlobal(svc.spec));
  }

  configs = {
    create: (spec: unknown) => this.ctl.configs.create(spec),
    list: async (f: Filters): Promise<SwarmConfig[]> => {
      checkFilters('config', f);
      return [...this.ctl.recs.configs.values()].filter((c) => configMatches(c, f)).sort((a, b) => a.spec.Name.localeCompare(b.spec.Name)).map(configView);
    },
    inspect: async (ref: string): Promise<SwarmConfig> => configView(this.ctl.configs.get(ref)),
    update: (ref: string, version: number, spec: unknown) => this.ctl.configs.update(ref, version, spec),
    remove: (ref: string) => this.ctl.configs.remove(ref),
  };
}

