/**
 * Services, tasks and configs as etcd keeps them (`services/ID`, `tasks/ID`, `configs/ID` under the cluster's
 * prefix), held in memory by the leader and written through the cluster store (every write behind the leader's
 * fence). Version.Index is one counter over the three kinds, as swarmkit's raft index is one.
 */
import { randomBytes } from 'node:crypto';
import { notFound, invalid } from '../../lib/errors.js';
import type { ConfigSpec, ServiceSpec, TaskSpec, TaskState, UpdateStatus } from '../../lib/swarm-types.js';
import type { ClusterStore, Op } from '../store.js';

export interface ServiceRecord {
  id: string;
  version: number;
  createdAt: string;
  updatedAt: string;
  spec: ServiceSpec;
  previousSpec?: ServiceSpec;
  updateStatus?: UpdateStatus;
  /** Failures counted by the update in progress (a new leader resumes with them). */
  updateFailures?: number;
  /** The Sampan release (src/cluster/release) that holds the service: Docker's updater leaves it alone meanwhile. */
  release?: string;
}

export interface TaskRecord {
  id: string;
  version: number;
  createdAt: string;
  updatedAt: string;
  service: string;
  slot: number;
  node: string;
  /** The container's id (the manager chose it; its placement holds it). */
  container: string;
  spec: TaskSpec;
  /** templateHash of `spec` when made: up to date while it equals the service's. */
  hash: string;
  desired: 'running' | 'shutdown';
  state: TaskState;
  message: string;
  err?: string;
  exitCode?: number;
}

export interface ConfigRecord {
  id: string;
  version: number;
  createdAt: string;
  updatedAt: string;
  spec: ConfigSpec;
}

/** swarmkit's ids: 25 characters of base 36. */
export function swarmId(): string {
  const b = randomBytes(16);
  let n = 0n;
  for (const x of b) n = (n << 8n) | BigInt(x);
  return n.toString(36).padStart(25, '0').slice(-25);
}

/** Docker's lookup of a swarm object: full id, then name, then a unique id prefix. */
export function lookup<T extends { id: string }>(all: Map<string, T>, ref: string, nameOf: (t: T) => string | undefined, what: string): T {
  const direct = all.get(ref);
  if (direct) return direct;
  const named = [...all.values()].filter((t) => nameOf(t) === ref);
  if (named.length === 1) return named[0]!;
  const pre = [...all.values()].filter((t) => t.id.startsWith(ref));
  if (pre.length > 1) throw invalid(`${what} ${ref} is ambiguous (${pre.length} matches found)`);
  if (pre.length === 1 && ref) return pre[0]!;
  throw notFound(`${what} ${ref} not found`);
}

export class SwarmRecords {
  readonly services = new Map<string, ServiceRecord>();
  readonly tasks = new Map<string, TaskRecord>();
  readonly configs = new Map<string, ConfigRecord>();
  /** Task ids by service: a pass over one service reads its tasks only. */
  private readonly byService = new Map<string, Set<string>>();
  private index = 10;

  constructor(readonly store: ClusterStore) {}

  /** The next Version.Index. */
  next(): number {
    return ++this.index;
  }

  /** Everything again from etcd: a manager that starts to lead. */
  async load(): Promise<void> {
    const [s, t, c] = await Promise.all([this.store.readAll<ServiceRecord>('services/'), this.store.readAll<TaskRecord>('tasks/'), this.store.readAll<ConfigRecord>('configs/')]);
    for (const [m, src] of [[this.services, s], [this.tasks, t], [this.configs, c]] as const) {
      (m as Map<string, unknown>).clear();
      for (const [k, v] of src) {
        (m as Map<string, unknown>).set(k, v);
        this.index = Math.max(this.index, v.version);
      }
    }
    this.byService.clear();
    for (const t of this.tasks.values()) this.indexTask(t);
  }

  private indexTask(t: TaskRecord): void {
    let set = this.byService.get(t.service);
    if (!set) this.byService.set(t.service, (set = new Set()));
    set.add(t.id);
  }

  private unindexTask(id: string): void {
    const t = this.tasks.get(id);
    const set = t && this.byService.get(t.service);
    set?.delete(id);
    if (set?.size === 0) this.byService.delete(t!.service);
  }

  /** Written to etcd first, then in memory: a refused write (not the leader any more) changes nothing. */
  async put(recs: Array<{ kind: 'services' | 'tasks' | 'configs'; rec: ServiceRecord | TaskRecord | ConfigRecord }>, dels: Array<{ kind: 'services' | 'tasks' | 'configs'; id: string }> = []): Promise<void> {
    const ops: Op[] = [...recs.map((r) => ({ put: `${r.kind}/${r.rec.id}`, value: r.rec })), ...dels.map((d) => ({ del: `${d.kind}/${d.id}` }))];
    await this.store.write(ops);
    for (const r of recs) {
      (this[r.kind] as Map<string, unknown>).set(r.rec.id, r.rec);
      if (r.kind === 'tasks') this.indexTask(r.rec as TaskRecord);
    }
    for (const d of dels) {
      if (d.kind === 'tasks') this.unindexTask(d.id);
      this[d.kind].delete(d.id);
    }
  }

  putService(rec: ServiceRecord): Promise<void> {
    return this.put([{ kind: 'services', rec }]);
  }

  putTask(rec: TaskRecord): Promise<void> {
    return this.put([{ kind: 'tasks', rec }]);
  }

  /** A task's new state (a new version, the time of the change). */
  setTask(t: TaskRecord, change: Partial<TaskRecord>): Promise<void> {
    return this.putTask({ ...t, ...change, version: this.next(), updatedAt: new Date().toISOString() });
  }

  service(ref: string): ServiceRecord {
    return lookup(this.services, ref, (s) => s.spec.Name, 'service');
  }

  /** Services with tasks, removed ones included (their tasks are still to go). */
  servicesWithTasks(): string[] {
    return [...this.byService.keys()];
  }

  tasksOf(service: string): TaskRecord[] {
    return [...(this.byService.get(service) ?? [])].map((id) => this.tasks.get(id)!);
  }
}
