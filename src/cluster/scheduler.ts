/**
 * The scheduler, pure: filters (node up and not drained, constraints, memory and CPU reservations against capacity), then a strategy
 * (`spread`: fewest containers; `binpack`: most containers that still fit; `random`), one pass for a whole batch.
 * Constraints are Swarm classic's: `constraint:KEY==VALUE` or `!=` in the env, and Sampan's labels
 * `com.sampan.constraint.KEY=[!=]VALUE`; KEY `node` is the node's name, any other key one of its labels; VALUE may
 * hold `*` globs, or be /a regexp/.
 */
import { conflict, invalid } from '../lib/errors.js';

export type Strategy = 'spread' | 'binpack' | 'random';
export const STRATEGIES: readonly Strategy[] = ['spread', 'binpack', 'random'];

export interface Candidate {
  id: string;
  name: string;
  labels: Record<string, string>;
  up: boolean;
  /** A drained node takes no new placements. */
  drained: boolean;
  capacity: { ncpu: number; memTotal: number };
  /** Containers on the node (Swarm counts them all, running or not). */
  containers: number;
  /** Memory (bytes) and CPUs (nano) that the node's containers reserve. */
  reserved: { memory: number; nanoCpus: number };
}

export interface Constraint {
  key: string;
  op: '==' | '!=';
  value: string;
  /** As the user wrote it, for the error that names it. */
  text: string;
}

export interface Request {
  constraints: Constraint[];
  memory: number;
  nanoCpus: number;
}

const ENV_CONSTRAINT = /^constraint:([\w.-]+)(==|!=)(.*)$/;
export const LABEL_PREFIX = 'com.sampan.constraint.';

/** The constraints of a create, and its env without them (they are for the scheduler, not the container). */
export function parseConstraints(env: string[], labels: Record<string, string>): { constraints: Constraint[]; env: string[] } {
  const constraints: Constraint[] = [];
  const rest: string[] = [];
  for (const e of env) {
    if (!e.startsWith('constraint:')) {
      rest.push(e);
      continue;
    }
    const m = ENV_CONSTRAINT.exec(e);
    if (!m) throw invalid(`invalid constraint ${JSON.stringify(e.slice(11))}: use constraint:KEY==VALUE or constraint:KEY!=VALUE`);
    constraints.push({ key: m[1]!, op: m[2] as '==' | '!=', value: m[3]!, text: `${m[1]}${m[2]}${m[3]}` });
  }
  for (const [k, v] of Object.entries(labels)) {
    if (!k.startsWith(LABEL_PREFIX)) continue;
    const key = k.slice(LABEL_PREFIX.length);
    const neg = v.startsWith('!=');
    const value = neg ? v.slice(2) : v.replace(/^==/, '');
    constraints.push({ key, op: neg ? '!=' : '==', value, text: `${key}${neg ? '!=' : '=='}${value}` });
  }
  return { constraints, env: rest };
}

function valueMatches(pattern: string, actual: string | undefined): boolean {
  if (actual === undefined) return false;
  if (pattern.length > 1 && pattern.startsWith('/') && pattern.endsWith('/')) return new RegExp(pattern.slice(1, -1)).test(actual);
  const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 'i');
  return re.test(actual);
}

export function meets(n: Candidate, c: Constraint): boolean {
  const actual = c.key === 'node' ? n.name : n.labels[c.key];
  const hit = valueMatches(c.value, actual);
  return c.op === '==' ? hit : !hit;
}

/** The nodes a request may go to; none is a 409 naming what no node meets. */
export function filterNodes(nodes: Candidate[], req: Request): Candidate[] {
  let left = nodes.filter((n) => n.up);
  if (!left.length) throw conflict('no node of the cluster is up');
  left = left.filter((n) => !n.drained);
  if (!left.length) throw conflict('every node of the cluster that is up is drained');
  for (const c of req.constraints) {
    left = left.filter((n) => meets(n, c));
    if (!left.length) throw conflict(`unable to find a node that satisfies the constraint ${c.text}`);
  }
  if (req.memory > 0) {
    left = left.filter((n) => n.capacity.memTotal - n.reserved.memory >= req.memory);
    if (!left.length) throw conflict(`unable to find a node with ${req.memory} bytes of memory unreserved`);
  }
  if (req.nanoCpus > 0) {
    left = left.filter((n) => n.capacity.ncpu * 1e9 - n.reserved.nanoCpus >= req.nanoCpus);
    if (!left.length) throw conflict(`unable to find a node with ${req.nanoCpus / 1e9} CPUs unreserved`);
  }
  return left;
}

/**
 * Places `count` replicas in one pass: the node of each, in order. Each placement counts toward the next, so a
 * batch spreads as single creates would; reservations are charged as they are placed.
 */
export function place(nodes: Candidate[], req: Request, count: number, strategy: Strategy = 'spread', random: () => number = Math.random): Candidate[] {
  const pool = filterNodes(nodes, req).map((n) => ({ n, containers: n.containers, memory: n.reserved.memory, nanoCpus: n.reserved.nanoCpus }));
  const out: Candidate[] = [];
  for (let i = 0; i < count; i++) {
    const fits = pool.filter((p) => p.n.capacity.memTotal - p.memory >= req.memory && p.n.capacity.ncpu * 1e9 - p.nanoCpus >= req.nanoCpus);
    if (!fits.length) throw conflict(`only ${i} of ${count} replicas fit the cluster's unreserved memory and CPUs`);
    let pick = fits[0]!;
    if (strategy === 'random') pick = fits[Math.floor(random() * fits.length)]!;
    else for (const p of fits) if (strategy === 'spread' ? p.containers < pick.containers : p.containers > pick.containers) pick = p;
    pick.containers++;
    pick.memory += req.memory;
    pick.nanoCpus += req.nanoCpus;
    out.push(pick.n);
  }
  return out;
}
