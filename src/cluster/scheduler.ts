/**
 * The scheduler, pure: filters (node up and not drained, constraints, affinities, free host ports, memory and CPU
 * reservations against capacity, then the soft rules where they leave a node), then a strategy (`spread`: fewest
 * containers; `binpack`: most containers that still fit; `random`), one pass for a whole batch. Rules are Swarm
 * classic's (request.ts parses them): KEY==VALUE or !=, soft as ==~ or !=~; VALUE may hold `*` globs, or be /a regexp/.
 */
import { conflict } from '../lib/errors.js';

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

/**
 * A constraint (KEY `node`: the node's name; any other: one of its labels) or an affinity (KEY `container`: a
 * container's name or id; `image`: an image's id or tag; any other: a container's label).
 */
export interface Rule {
  key: string;
  op: '==' | '!=';
  /** Preferred, not required: dropped when it would leave no node. */
  soft: boolean;
  value: string;
  /** As the user wrote it, for the error that names it. */
  text: string;
}

/** A host port a container publishes (a fixed HostPort): one per node. */
export interface HostPort {
  port: number;
  proto: string;
  /** The host IP bound; '' is every address. */
  ip: string;
  /** `8080/tcp`, for the error that names it. */
  text: string;
}

export interface Request {
  image: string;
  labels: Record<string, string>;
  constraints: Rule[];
  affinities: Rule[];
  ports: HostPort[];
  memory: number;
  nanoCpus: number;
  /** The request's own strategy (a label), over the cluster's. */
  strategy?: Strategy;
}

/** What is on the nodes, for affinities and ports: the cluster's indexes answer (state.ts). */
export interface Holders {
  /** The ids of the nodes holding what an affinity names. */
  affinity(a: Rule): Set<string>;
  /** The ids of the nodes where a container already publishes this host port. */
  port(p: HostPort): Set<string>;
}

export const NO_HOLDERS: Holders = { affinity: () => new Set(), port: () => new Set() };

const isRegexp = (pattern: string) => pattern.length > 1 && pattern.startsWith('/') && pattern.endsWith('/');
/** A value with a glob or a /regexp/: matched against each candidate, not looked up. */
export const isPattern = (pattern: string) => isRegexp(pattern) || pattern.includes('*');

/** A compiled VALUE: /regexp/ as is, `*` globs anchored and case-insensitive, anything else equal (case-insensitive). */
export function matcher(pattern: string): (actual: string | undefined) => boolean {
  const re = isRegexp(pattern)
    ? new RegExp(pattern.slice(1, -1))
    : new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 'i');
  return (actual) => actual !== undefined && re.test(actual);
}

export function meets(n: Pick<Candidate, 'name' | 'labels'>, c: Rule): boolean {
  const hit = matcher(c.value)(c.key === 'node' ? n.name : n.labels[c.key]);
  return c.op === '==' ? hit : !hit;
}

/** The nodes a request may go to; none is a 409 naming what no node meets. */
export function filterNodes(nodes: Candidate[], req: Request, holders: Holders = NO_HOLDERS): Candidate[] {
  let left = nodes.filter((n) => n.up);
  if (!left.length) throw conflict('no node of the cluster is up');
  left = left.filter((n) => !n.drained);
  if (!left.length) throw conflict('every node of the cluster that is up is drained');
  const soft: Array<(n: Candidate) => boolean> = [];
  const keep = (pred: (n: Candidate) => boolean, unmet: string) => {
    left = left.filter(pred);
    if (!left.length) throw conflict(`unable to find a node ${unmet}`);
  };
  const rule = (r: Rule, pred: (n: Candidate) => boolean, what: string) => (r.soft ? soft.push(pred) : keep(pred, `that satisfies the ${what} ${r.text}`));
  for (const c of req.constraints) rule(c, (n) => meets(n, c), 'constraint');
  for (const a of req.affinities) {
    const holding = holders.affinity(a);
    rule(a, (n) => holding.has(n.id) === (a.op === '=='), 'affinity');
  }
  for (const p of req.ports) {
    const used = holders.port(p);
    keep((n) => !used.has(n.id), `with port ${p.text} available`);
  }
  if (req.memory > 0) keep((n) => n.capacity.memTotal - n.reserved.memory >= req.memory, `with ${req.memory} bytes of memory unreserved`);
  if (req.nanoCpus > 0) keep((n) => n.capacity.ncpu * 1e9 - n.reserved.nanoCpus >= req.nanoCpus, `with ${req.nanoCpus / 1e9} CPUs unreserved`);
  for (const pred of soft) {
    const kept = left.filter(pred);
    if (kept.length) left = kept;
  }
  return left;
}

/** The nodes for a batch of `count`: filtered, and enough of them when each can hold one replica (a fixed host port). */
export function filterForBatch(nodes: Candidate[], req: Request, count: number, holders: Holders = NO_HOLDERS): Candidate[] {
  const left = filterNodes(nodes, req, holders);
  if (req.ports.length && left.length < count) {
    throw conflict(`only ${left.length} of ${count} replicas can be placed: each publishes port ${req.ports.map((p) => p.text).join(', ')}, free on ${left.length} node${left.length === 1 ? '' : 's'}`);
  }
  return left;
}

/**
 * Places `count` replicas in one pass: the node of each, in order. Each placement counts toward the next, so a
 * batch spreads as single creates would; reservations are charged as they are placed, and a node that took a
 * replica publishing a fixed host port takes no other. O(N + count·log N): spread and binpack keep the nodes in a
 * heap (fewest, or most, containers first; ties in the candidates' order); a node that no longer fits leaves it for
 * good, since within a pass its reservations only grow.
 */
export function place(nodes: Candidate[], req: Request, count: number, strategy: Strategy = 'spread', o: { holders?: Holders; random?: () => number } = {}): Candidate[] {
  const pool = filterForBatch(nodes, req, count, o.holders).map((n, i) => ({ n, i, containers: n.containers, memory: n.reserved.memory, nanoCpus: n.reserved.nanoCpus }));
  type Slot = (typeof pool)[number];
  const fits = (p: Slot) => p.n.capacity.memTotal - p.memory >= req.memory && p.n.capacity.ncpu * 1e9 - p.nanoCpus >= req.nanoCpus;
  const charge = (p: Slot) => {
    p.containers++;
    p.memory += req.memory;
    p.nanoCpus += req.nanoCpus;
  };
  const out: Candidate[] = [];
  const short = () => conflict(`only ${out.length} of ${count} replicas fit the cluster's unreserved memory and CPUs`);
  if (strategy === 'random') {
    const random = o.random ?? Math.random;
    const left = pool.filter(fits);
    while (out.length < count) {
      if (!left.length) throw short();
      const k = Math.floor(random() * left.length);
      const p = left[k]!;
      charge(p);
      out.push(p.n);
      // one replica per node with a fixed host port; none where it no longer fits
      if (req.ports.length || !fits(p)) left.splice(k, 1);
    }
    return out;
  }
  const sign = strategy === 'spread' ? 1 : -1;
  const heap = new MinHeap<Slot>((a, b) => sign * (a.containers - b.containers) || a.i - b.i, pool);
  while (out.length < count) {
    const p = heap.peek();
    if (!p) throw short();
    if (!fits(p)) {
      heap.pop();
      continue;
    }
    charge(p);
    out.push(p.n);
    if (req.ports.length) heap.pop();
    else heap.siftDownTop();
  }
  return out;
}

/** A binary heap, smallest first by `cmp`; the top may be changed in place and sifted back. */
class MinHeap<T> {
  private readonly a: T[];

  constructor(
    private readonly cmp: (x: T, y: T) => number,
    items: T[],
  ) {
    this.a = [...items];
    for (let i = (this.a.length >> 1) - 1; i >= 0; i--) this.down(i);
  }

  peek(): T | undefined {
    return this.a[0];
  }

  pop(): T | undefined {
    const top = this.a[0];
    const last = this.a.pop();
    if (this.a.length && last !== undefined) {
      this.a[0] = last;
      this.down(0);
    }
    return top;
  }

  siftDownTop(): void {
    this.down(0);
  }

  private down(i: number): void {
    const a = this.a;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && this.cmp(a[l]!, a[m]!) < 0) m = l;
      if (r < a.length && this.cmp(a[r]!, a[m]!) < 0) m = r;
      if (m === i) return;
      [a[i], a[m]] = [a[m]!, a[i]!];
      i = m;
    }
  }
}
