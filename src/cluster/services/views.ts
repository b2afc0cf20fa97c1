/** The records as Docker's wire types (moby's api/types/swarm), and Docker's filters over them. */
import { invalid } from '../../lib/errors.js';
import type { Filters } from '../../docker-api/index.js';
import type { Service, SwarmConfig, SwarmNodeInfo, Task } from '../../lib/swarm-types.js';
import type { ClusterState, NodeEntry } from '../state.js';
import type { ConfigRecord, ServiceRecord, TaskRecord } from './records.js';
import { isGlobal, templateHash } from './spec.js';

const meta = (r: { id: string; version: number; createdAt: string; updatedAt: string }) => ({ ID: r.id, Version: { Index: r.version }, CreatedAt: r.createdAt, UpdatedAt: r.updatedAt });

export function serviceView(r: ServiceRecord, status?: { running: number; desired: number; completed: number }): Service {
  return {
    ...meta(r),
    Spec: r.spec,
    ...(r.previousSpec && { PreviousSpec: r.previousSpec }),
    Endpoint: { Spec: { Mode: 'vip' } },
    ...(r.updateStatus && { UpdateStatus: r.updateStatus }),
    ...(status && { ServiceStatus: { RunningTasks: status.running, DesiredTasks: status.desired, CompletedTasks: status.completed } }),
  };
}

/** A global service's task has Slot 0 (its internal slot is Sampan's): the CLI then names it SERVICE.NODEID. */
export function taskView(t: TaskRecord, global: boolean): Task {
  return {
    ...meta(t),
    Labels: {},
    Spec: t.spec,
    ServiceID: t.service,
    Slot: global ? 0 : t.slot,
    NodeID: t.node,
    Status: {
      Timestamp: t.updatedAt, State: t.state, Message: t.message, ...(t.err && { Err: t.err }),
      ...(t.node && { ContainerStatus: { ContainerID: t.container, PID: 0, ExitCode: t.exitCode ?? 0 } }),
    },
    DesiredState: t.desired,
  };
}

export function nodeView(n: NodeEntry): SwarmNodeInfo {
  const r = n.rec;
  return {
    ID: r.id, Version: { Index: 1 }, CreatedAt: r.joinedAt, UpdatedAt: r.joinedAt,
    Spec: { Labels: r.labelEdits ? Object.fromEntries(Object.entries(r.labelEdits).filter(([, v]) => v !== null)) as Record<string, string> : {}, Role: 'worker', Availability: r.availability ?? 'active' },
    Description: {
      Hostname: r.name, Platform: { Architecture: 'x86_64', OS: 'linux' }, Resources: { NanoCPUs: r.capacity.ncpu * 1e9, MemoryBytes: r.capacity.memTotal },
      Engine: { EngineVersion: r.version, Labels: r.labels },
    },
    Status: { State: r.state === 'up' ? 'ready' : 'down', Addr: r.addr },
  };
}

export function configView(c: ConfigRecord): SwarmConfig {
  return { ...meta(c), Spec: c.spec };
}

const KNOWN = {
  service: ['id', 'name', 'label', 'mode'],
  task: ['id', 'name', 'service', 'node', 'desired-state', 'label', '_up-to-date'],
  node: ['id', 'name', 'role', 'membership', 'label', 'node.label'],
  config: ['id', 'name', 'names', 'label'],
};

export function checkFilters(kind: keyof typeof KNOWN, f: Filters): void {
  for (const k of f.keys()) if (!KNOWN[kind].includes(k)) throw invalid(`invalid filter '${k}'`);
}

/** `label=KEY` or `label=KEY=VALUE`, each must hold. */
function labelsMatch(labels: Record<string, string> | undefined, want: string[] | undefined): boolean {
  return (want ?? []).every((l) => {
    const eq = l.indexOf('=');
    return eq < 0 ? labels?.[l] !== undefined : labels?.[l.slice(0, eq)] === l.slice(eq + 1);
  });
}

const anyOf = (vals: string[] | undefined, test: (v: string) => boolean) => !vals?.length || vals.some(test);

export function serviceMatches(r: ServiceRecord, f: Filters): boolean {
  return anyOf(f.get('id'), (v) => r.id.startsWith(v)) && anyOf(f.get('name'), (v) => r.spec.Name.startsWith(v))
    && anyOf(f.get('mode'), (v) => v === (isGlobal(r.spec) ? 'global' : 'replicated')) && labelsMatch(r.spec.Labels, f.get('label'));
}

export function taskMatches(t: TaskRecord, f: Filters, services: Map<string, ServiceRecord>, state: ClusterState): boolean {
  const svc = services.get(t.service);
  const node = state.nodes.get(t.node);
  const upToDate = f.get('_up-to-date');
  return anyOf(f.get('id'), (v) => t.id.startsWith(v))
    && anyOf(f.get('service'), (v) => t.service === v || t.service.startsWith(v) || svc?.spec.Name === v)
    && anyOf(f.get('node'), (v) => t.node === v || node?.rec.name === v)
    && anyOf(f.get('desired-state'), (v) => (v === 'accepted' ? t.desired === 'running' : t.desired === v))
    && anyOf(f.get('name'), (v) => `${svc?.spec.Name ?? ''}.${svc && isGlobal(svc.spec) ? t.node : t.slot}`.startsWith(v))
    && labelsMatch(t.spec.ContainerSpec.Labels, f.get('label'))
    && (!upToDate?.length || !svc || (t.hash === templateHash(svc.spec.TaskTemplate)) === (upToDate[0] !== 'false'));
}

export function nodeMatches(n: NodeEntry, f: Filters): boolean {
  return anyOf(f.get('id'), (v) => n.rec.id.startsWith(v)) && anyOf(f.get('name'), (v) => n.rec.name.startsWith(v))
    && anyOf(f.get('role'), (v) => v === 'worker') && anyOf(f.get('membership'), (v) => v === 'accepted')
    && labelsMatch(n.rec.labels, f.get('node.label')) && labelsMatch(n.rec.labels, f.get('label'));
}

export function configMatches(c: ConfigRecord, f: Filters): boolean {
  return anyOf(f.get('id'), (v) => c.id.startsWith(v)) && anyOf(f.get('name'), (v) => c.spec.Name.startsWith(v))
    && anyOf(f.get('names'), (v) => c.spec.Name === v) && labelsMatch(c.spec.Labels, f.get('label'));
}
