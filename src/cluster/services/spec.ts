/**
 * A service's spec as the manager keeps it: validated with Docker's messages, defaults filled as swarmkit fills
 * them, and the hash of its task template, which says whether a task is up to date (a rollback to the spec a task
 * already has does not replace it).
 */
import { createHash } from 'node:crypto';
import { invalid } from '../../lib/errors.js';
import type { ServiceSpec, TaskSpec, UpdateConfig } from '../../lib/swarm-types.js';

/** swarmkit's defaults (api/defaults): one at a time, no delay, pause on failure, 5 s monitor, stop first. */
export const DEFAULT_UPDATE: Required<UpdateConfig> = { Parallelism: 1, Delay: 0, FailureAction: 'pause', Monitor: 5e9, MaxFailureRatio: 0, Order: 'stop-first' };
/** swarmkit's default restart delay. */
export const DEFAULT_RESTART_DELAY_NS = 5e9;

const SERVICE_NAME = /^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;

/** Keys sorted: the same spec hashes the same whatever order the client sent. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])]));
  return v;
}

export function templateHash(t: TaskSpec): string {
  return createHash('sha256').update(JSON.stringify(canonical(t))).digest('hex').slice(0, 16);
}

/** swarmkit's placement constraints as the cluster scheduler's rules: node.hostname / node.id / node.labels.KEY. */
export function constraints(spec: TaskSpec): string[] {
  return (spec.Placement?.Constraints ?? []).map((c) => {
    const m = /^\s*([\w.-]+)\s*(==|!=)\s*(.*?)\s*$/.exec(c);
    if (!m) return c;
    const [, key, op, value] = m as unknown as [string, string, string, string];
    if (key === 'node.hostname' || key === 'node.id') return `node${op}${value}`;
    if (key.startsWith('node.labels.')) return `${key.slice(12)}${op}${value}`;
    if (key.startsWith('engine.labels.')) return `${key.slice(14)}${op}${value}`;
    return `${key}${op}${value}`;
  });
}

export const isGlobal = (spec: ServiceSpec): boolean => !!spec.Mode?.Global;

export function replicasOf(spec: ServiceSpec): number {
  return spec.Mode?.Replicated?.Replicas ?? 1;
}

export function updateConfig(u: UpdateConfig | undefined): Required<UpdateConfig> {
  const c = { ...DEFAULT_UPDATE };
  for (const [k, v] of Object.entries(u ?? {})) if (v !== undefined && v !== null) (c as Record<string, unknown>)[k] = v;
  // Parallelism 0 is "all at once"
  return c;
}

/** A ServiceSpec from a client's body, or Docker's 400. */
export function validateSpec(body: unknown): ServiceSpec {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw invalid('invalid service spec: the body must be a JSON object');
  const spec = body as ServiceSpec;
  if (typeof spec.Name !== 'string' || !spec.Name) throw invalid('name must be valid as a DNS name component');
  if (!SERVICE_NAME.test(spec.Name)) throw invalid(`rpc error: code = InvalidArgument desc = name must be valid as a DNS name component`);
  const cs = spec.TaskTemplate?.ContainerSpec;
  if (!cs || typeof cs !== 'object') throw invalid('rpc error: code = InvalidArgument desc = ContainerSpec: missing in service spec');
  if (typeof cs.Image !== 'string' || !cs.Image) throw invalid('rpc error: code = InvalidArgument desc = ContainerSpec: image reference must be provided');
  if (spec.Mode?.Global && spec.Mode.Replicated) throw invalid('rpc error: code = InvalidArgument desc = a service is either replicated or global, not both');
  const r = spec.Mode?.Replicated?.Replicas;
  if (r !== undefined && (!Number.isInteger(r) || r < 0)) throw invalid(`rpc error: code = InvalidArgument desc = invalid replicas: ${String(r)}`);
  for (const u of [spec.UpdateConfig, spec.RollbackConfig]) {
    if (!u) continue;
    if (u.MaxFailureRatio !== undefined && (u.MaxFailureRatio < 0 || u.MaxFailureRatio > 1)) throw invalid('rpc error: code = InvalidArgument desc = UpdateConfig.MaxFailureRatio must be between 0 and 1');
    if (u.FailureAction !== undefined && !['pause', 'continue', 'rollback'].includes(u.FailureAction)) throw invalid(`rpc error: code = InvalidArgument desc = unrecognized failure action ${String(u.FailureAction)}`);
    if (u.Order !== undefined && !['stop-first', 'start-first'].includes(u.Order)) throw invalid(`rpc error: code = InvalidArgument desc = unrecognized update order ${String(u.Order)}`);
  }
  return { ...spec, Mode: spec.Mode?.Global ? { Global: {} } : { Replicated: { Replicas: r ?? 1 } } };
}
