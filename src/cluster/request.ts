/**
 * A create's body split into what the scheduler needs and what the engine gets. Rules come as Swarm classic wrote
 * them: `constraint:KEY==VALUE` and `affinity:KEY==VALUE` in the env (`!=`, soft `==~`/`!=~`), the labels
 * `com.docker.swarm.constraints` and `com.docker.swarm.affinities` (JSON arrays of `KEY==VALUE`), and Sampan's
 * `com.sampan.constraint.KEY=[!=]VALUE`. The env entries and Swarm's labels are the scheduler's: the engine gets
 * neither. `com.sampan.scheduler.strategy` picks the strategy of this create.
 */
import { invalid } from '../lib/errors.js';
import { STRATEGIES, type HostPort, type Request, type Rule, type Strategy } from './scheduler.js';

const LABEL_PREFIX = 'com.sampan.constraint.';
const STRATEGY_LABEL = 'com.sampan.scheduler.strategy';
const SWARM_LABELS = { constraint: 'com.docker.swarm.constraints', affinity: 'com.docker.swarm.affinities' } as const;
type Kind = keyof typeof SWARM_LABELS;

const RULE = /^([\w.-]+)(==|!=)(~?)(.*)$/;

export function parseRule(kind: Kind, expr: string): Rule {
  const m = RULE.exec(expr);
  if (!m) throw invalid(`invalid ${kind} ${JSON.stringify(expr)}: use ${kind}:KEY==VALUE or ${kind}:KEY!=VALUE (soft: ==~ or !=~)`);
  return { key: m[1]!, op: m[2] as '==' | '!=', soft: m[3] === '~', value: m[4]!, text: expr };
}

function swarmLabel(kind: Kind, labels: Record<string, string>): string[] {
  const raw = labels[SWARM_LABELS[kind]];
  if (raw === undefined) return [];
  let list: unknown;
  try {
    list = JSON.parse(raw);
  } catch {
    list = undefined;
  }
  if (!Array.isArray(list) || list.some((x) => typeof x !== 'string')) throw invalid(`label ${SWARM_LABELS[kind]}: a JSON array of strings, e.g. ["${kind === 'affinity' ? 'container==web' : 'node==host1'}"]`);
  return list as string[];
}

/** The fixed host ports of `HostConfig.PortBindings` (an empty, 0 or ranged HostPort lets the engine choose). */
function hostPorts(bindings: unknown): HostPort[] {
  const out: HostPort[] = [];
  for (const [key, list] of Object.entries((bindings ?? {}) as Record<string, Array<{ HostIp?: string; HostPort?: string }> | null>)) {
    const proto = key.split('/')[1] ?? 'tcp';
    for (const b of list ?? []) {
      const port = Number(b.HostPort);
      if (!/^\d+$/.test(b.HostPort ?? '') || port === 0) continue;
      const ip = b.HostIp && b.HostIp !== '0.0.0.0' && b.HostIp !== '::' ? b.HostIp : '';
      out.push({ port, proto, ip, text: `${port}/${proto}` });
    }
  }
  return out;
}

export function schedulingRequest(raw: unknown): { req: Request; body: Record<string, unknown> } {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw invalid('the request body must be a container config object');
  const b = raw as Record<string, unknown> & { Env?: string[]; Labels?: Record<string, string>; HostConfig?: { Memory?: number; NanoCpus?: number; PortBindings?: unknown } };
  const labels = b.Labels ?? {};
  const rules: Record<Kind, Rule[]> = { constraint: [], affinity: [] };
  const env: string[] = [];
  for (const e of Array.isArray(b.Env) ? b.Env : []) {
    const kind = (['constraint', 'affinity'] as const).find((k) => e.startsWith(`${k}:`));
    if (kind) rules[kind].push(parseRule(kind, e.slice(kind.length + 1)));
    else env.push(e);
  }
  for (const kind of ['constraint', 'affinity'] as const) for (const expr of swarmLabel(kind, labels)) rules[kind].push(parseRule(kind, expr));
  for (const [k, v] of Object.entries(labels)) {
    if (!k.startsWith(LABEL_PREFIX)) continue;
    const key = k.slice(LABEL_PREFIX.length);
    rules.constraint.push(parseRule('constraint', v.startsWith('!=') || v.startsWith('==') ? `${key}${v}` : `${key}==${v}`));
  }
  const strategy = labels[STRATEGY_LABEL];
  if (strategy !== undefined && !STRATEGIES.includes(strategy as Strategy)) throw invalid(`label ${STRATEGY_LABEL}: one of ${STRATEGIES.join(', ')}`);
  const engineLabels = { ...labels };
  for (const l of Object.values(SWARM_LABELS)) delete engineLabels[l];
  const req: Request = {
    image: String(b.Image ?? ''), labels: engineLabels, constraints: rules.constraint, affinities: rules.affinity, ports: hostPorts(b.HostConfig?.PortBindings),
    memory: Number(b.HostConfig?.Memory ?? 0), nanoCpus: Number(b.HostConfig?.NanoCpus ?? 0), ...(strategy && { strategy: strategy as Strategy }),
  };
  return { req, body: { ...b, Env: env, ...(b.Labels && { Labels: engineLabels }) } };
}
