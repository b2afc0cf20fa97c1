/**
 * A discrete-event simulation of one release, driven by the planner the controller runs (src/cluster/release):
 * a service of N instances on H hosts, start times from a lognormal body with slow hosts and instances that fail
 * once, image pulls timed from the P2P benchmark (docs/benchmarks.md). Deterministic for a seed.
 */
import { apply, newState, plan, settle, unavailable, type PlanSlot, type Policy } from '../../src/cluster/release/index.js';

export interface World {
  instances: number;
  hosts: number;
  seed: number;
  /** The lognormal body of an instance's start (image present): its median (s) and sigma. */
  startMedianS: number;
  startSigma: number;
  /** This share of hosts start everything `slowFactor` × slower. */
  slowHosts: number;
  slowFactor: number;
  /** This share of instances fail their first attempt (after their start time). */
  failOnce: number;
  /** The image's pull: F/u (s), stretched by the P2P benchmark's slowest/bound ratio for the pulls under way. */
  pullBoundS: number;
}

export interface Result {
  policy: string;
  totalS: number;
  t50S: number;
  t99S: number;
  t100S: number;
  maxUnavailable: number;
  window: number;
  /** Replacements that waited on a pull of the image (their own, or a pre-pull not finished). */
  criticalPulls: number;
  pulls: number;
  retries: number;
  failedSlots: number;
  verdict: string;
}

/** mulberry32: small, fast, seeded. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The P2P benchmark's slowest pull over its bound F/u, by pullers at once (N = 4, 8, 16, 32: 1.22, 1.32, 1.37,
 * 1.43); past 32 it is extrapolated at +0.06 per doubling, below 4 it is the lone pull's 1.05.
 */
export function p2pStretch(n: number): number {
  const pts: Array<[number, number]> = [[1, 1.05], [4, 1.22], [8, 1.32], [16, 1.37], [32, 1.43]];
  if (n >= 32) return 1.43 + 0.06 * Math.log2(n / 32);
  for (let i = 1; i < pts.length; i++) {
    const [n0, r0] = pts[i - 1]!;
    const [n1, r1] = pts[i]!;
    if (n <= n1) return r0 + ((r1 - r0) * (Math.log2(Math.max(n, 1)) - Math.log2(n0))) / (Math.log2(n1) - Math.log2(n0));
  }
  return 1.43;
}

/** A binary heap of events by time (ties in insertion order, so a run is reproducible). */
class Events<T> {
  private h: Array<{ t: number; k: number; v: T }> = [];
  private k = 0;
  get size(): number {
    return this.h.length;
  }
  peek(): number {
    return this.h[0]?.t ?? Infinity;
  }
  push(t: number, v: T): void {
    const h = this.h;
    h.push({ t, k: this.k++, v });
    for (let i = h.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (less(h[p]!, h[i]!)) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }
  pop(): { t: number; v: T } {
    const h = this.h;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l]!, h[m]!)) m = l;
        if (r < h.length && less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
}
const less = (a: { t: number; k: number }, b: { t: number; k: number }) => a.t < b.t || (a.t === b.t && a.k < b.k);

type Ev = { kind: 'ready'; slot: number; ok: boolean; node: string } | { kind: 'pulled'; node: string } | { kind: 'check' };

/** One release of the world under `policy`; times in ms inside, reported in s. */
export function simulate(name: string, policy: Policy, w: World): Result {
  const rand = rng(w.seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const hosts = Array.from({ length: w.hosts }, (_, i) => `h${i}`);
  const slow = new Set(hosts.filter(() => rand() < w.slowHosts));
  const failing = new Set<number>();
  for (let i = 0; i < w.instances; i++) if (rand() < w.failOnce) failing.add(i);
  // the same world for every policy: each slot's start draws are fixed up front (first attempt, retry)
  const draws = Array.from({ length: w.instances }, () => [Math.exp(Math.log(w.startMedianS) + w.startSigma * normal()), Math.exp(Math.log(w.startMedianS) + w.startSigma * normal())]);
  const retryHost = Array.from({ length: w.instances }, () => rand());

  const st = newState(Array.from({ length: w.instances }, (_, i) => ({ slot: i, node: hosts[i % w.hosts]! })));
  const index = new Map<number, PlanSlot>(st.slots.map((x) => [x.slot, x]));
  const ev = new Events<Ev>();
  const hasImage = new Set<string>();
  const withImage: string[] = [];
  const pulling = new Map<string, number>(); // host → when its pull ends
  const waiters = new Map<string, Array<{ slot: number; ms: number; ok: boolean }>>();
  let pullsUnderWay = 0;
  let pulls = 0;
  let criticalPulls = 0;
  let retries = 0;
  let maxUnavailable = 0;
  let ready = 0;
  const marks: number[] = [];
  const window = policy.kind === 'smart' ? policy.window : policy.kind === 'lockstep' ? policy.batch : policy.parallelism;

  const startPull = (node: string, now: number) => {
    pulls++;
    pullsUnderWay++;
    const end = now + 1000 * w.pullBoundS * p2pStretch(pullsUnderWay);
    pulling.set(node, end);
    ev.push(end, { kind: 'pulled', node });
  };
  const gotImage = (node: string) => {
    if (hasImage.has(node)) return;
    hasImage.add(node);
    withImage.push(node);
  };

  let now = 0;
  let lastCheck = -1;
  let verdict = 'running';
  for (let guard = 0; guard < 50 * w.instances + 100_000; guard++) {
    st.now = now;
    const d = plan(policy, st);
    if (d.verdict === 'wait-confirm') {
      // the owner's confirmation is not the release's time: it comes at once here
      st.confirmed = true;
      continue;
    }
    if (d.verdict !== 'running') {
      verdict = d.verdict;
      break;
    }
    for (const node of d.prePull) {
      st.pulls[node] = 'pulling';
      if (!hasImage.has(node) && !pulling.has(node)) startPull(node, now);
      else if (hasImage.has(node)) ev.push(now, { kind: 'pulled', node });
    }
    apply(st, d, now, index);
    for (const s of d.start) {
      const x = index.get(s.slot)!;
      let node = x.node;
      if (x.attempts > 1) {
        // the retry goes where the scheduler puts it: a host that has the image if any (not one it failed on)
        retries++;
        const pool = withImage.length ? withImage : hosts;
        node = pool[Math.floor(retryHost[s.slot]! * pool.length)]!;
        if (x.avoid.includes(node)) node = pool.find((h) => !x.avoid.includes(h)) ?? hosts.find((h) => !x.avoid.includes(h))!;
      }
      const ms = 1000 * draws[s.slot]![x.attempts - 1]! * (slow.has(node) ? w.slowFactor : 1);
      const ok = !(x.attempts === 1 && failing.has(s.slot));
      if (hasImage.has(node)) ev.push(now + ms, { kind: 'ready', slot: s.slot, ok, node });
      else {
        criticalPulls++;
        if (!pulling.has(node)) startPull(node, now);
        const q = waiters.get(node) ?? [];
        q.push({ slot: s.slot, ms, ok });
        waiters.set(node, q);
        // the slot's task runs where it was put, once the image is there
        x.node = node;
      }
      if (hasImage.has(node)) x.node = node;
    }
    maxUnavailable = Math.max(maxUnavailable, d.unavailable, unavailable(st));
    if (d.nextCheckAt !== undefined && d.nextCheckAt > now && d.nextCheckAt !== lastCheck) ev.push((lastCheck = d.nextCheckAt), { kind: 'check' });
    if (!ev.size) {
      verdict = 'stuck';
      break;
    }
    // every event of the next instant, then plan again
    now = ev.peek();
    while (ev.size && ev.peek() === now) {
      const e = ev.pop().v;
      if (e.kind === 'ready') {
        settle(st, e.slot, { ok: e.ok, node: e.node }, now, index);
        if (e.ok) {
          ready++;
          gotImage(e.node);
          if (ready === Math.ceil(0.5 * w.instances) || ready === Math.ceil(0.99 * w.instances) || ready === w.instances) marks.push(now);
        }
      } else if (e.kind === 'pulled') {
        if (pulling.get(e.node) === now) {
          pulling.delete(e.node);
          pullsUnderWay--;
        }
        gotImage(e.node);
        st.pulls[e.node] = 'done';
        for (const q of waiters.get(e.node) ?? []) ev.push(now + q.ms, { kind: 'ready', slot: q.slot, ok: q.ok, node: e.node });
        waiters.delete(e.node);
      }
    }
  }
  const [t50 = NaN, t99 = NaN, t100 = NaN] = marks;
  return {
    policy: name, totalS: now / 1000, t50S: t50 / 1000, t99S: t99 / 1000, t100S: t100 / 1000, maxUnavailable, window, criticalPulls, pulls, retries,
    failedSlots: st.slots.filter((x) => x.status === 'failed').length, verdict,
  };
}
