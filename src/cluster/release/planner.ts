/**
 * The release planner: pure and deterministic. Given a policy and the slots' states at `now`, it says which slots
 * to start replacing, which hosts to pre-pull on, and the verdict. The controller runs it against the real service
 * (through ReleaseOps); the benchmark runs the same code against a simulated one.
 *
 * Unavailability. A slot is unavailable from the moment its old task is stopped (a stop-first attempt) until a new
 * task is ready. The planner starts a stop-first attempt only while fewer than W slots are unavailable; past that,
 * it starts start-first (the old task serves until the new one is ready, at the cost of one more task for a
 * while). A straggler keeps its old task gone, so it stays unavailable: releasing its window slot buys a start-first
 * replacement, never more unavailability. So "never more than W unavailable" holds in every order and policy.
 */

export type Order = 'stop-first' | 'start-first';
export type FailureAction = 'pause' | 'rollback';

interface PolicyBase {
  /** Failed attempts tolerated; one more and the release pauses or rolls back. */
  maxFailures: number;
  failureAction: FailureAction;
  /** The preferred order; stop-first turns start-first while W slots are unavailable (above). */
  order: Order;
}

/** Sampan's smart release: a first batch, the owner's confirmation, then a sliding window that drops stragglers. */
export interface SmartPolicy extends PolicyBase {
  kind: 'smart';
  firstBatch: number;
  window: number;
  /** An attempt slower than K × the running p90 of ready times is a straggler: it no longer holds its window slot. */
  stragglerFactor: number;
  /** Pre-pull on the hosts of the next 2 × W slots, and prefer the slots whose host has the image. */
  prePull: boolean;
  /** Without it (the comparison's "sliding window"), the first batch is not waited on. */
  confirm?: boolean;
}

/** Fixed batches: each starts when the one before is settled (waits for its slowest). */
export interface LockstepPolicy extends PolicyBase {
  kind: 'lockstep';
  batch: number;
}

/** Docker's update (swarmkit's updater): P workers, each takes the next slot and waits for it to run (delay 0). */
export interface DockerPolicy extends PolicyBase {
  kind: 'docker';
  parallelism: number;
}

export type Policy = SmartPolicy | LockstepPolicy | DockerPolicy;

/** `retry`: an attempt failed and the slot gets one more, on another host. `failed`: no attempt left. */
export type SlotStatus = 'pending' | 'in-flight' | 'retry' | 'ready' | 'failed';

export interface PlanSlot {
  slot: number;
  /** The host of its task: the old one's, then the new one's. */
  node: string;
  status: SlotStatus;
  /** Attempts started. */
  attempts: number;
  /** When the current attempt started (ms). */
  startedAt?: number;
  order?: Order;
  /** The old task was stopped (a stop-first attempt): unavailable until a new one is ready. */
  oldGone: boolean;
  /** Hosts an attempt failed on: the retry avoids them. */
  avoid: string[];
  /** Found a straggler: it stays one until it settles, even if the p90 grows past it later. */
  straggler?: boolean;
}

export interface PlanState {
  /** In release order. */
  slots: PlanSlot[];
  now: number;
  /** The owner confirmed the first batch (smart). */
  confirmed: boolean;
  /** Failed attempts so far. */
  failures: number;
  /** Ready times (ms from an attempt's start) of the attempts that became ready, ascending. */
  samples: number[];
  /** Pre-pulls by host; `done` also for a host that has the image because a new task is ready there. */
  pulls: Record<string, 'pulling' | 'done'>;
}

export interface Start {
  slot: number;
  order: Order;
  avoid: string[];
}

export type Verdict = 'running' | 'wait-confirm' | 'pause' | 'rollback' | 'done';

export interface Decision {
  start: Start[];
  /** Hosts to start pre-pulling on now. */
  prePull: string[];
  verdict: Verdict;
  /** In-flight slots that no longer hold a window slot. */
  stragglers: number[];
  /** Slots unavailable once `start` is under way. */
  unavailable: number;
  /** When an in-flight attempt becomes a straggler, if one will: plan again then. */
  nextCheckAt?: number;
}

/** One retry, on another host. */
export const MAX_ATTEMPTS = 2;
/** Ready times needed before the p90 is trusted. */
export const MIN_SAMPLES = 10;

export function newState(slots: Array<{ slot: number; node: string }>, now = 0): PlanState {
  return { slots: slots.map((s) => ({ slot: s.slot, node: s.node, status: 'pending', attempts: 0, oldGone: false, avoid: [] })), now, confirmed: false, failures: 0, samples: [], pulls: {} };
}

/** The running p90 of ready times; before MIN_SAMPLES, the slowest seen (a cautious stand-in); none yet: undefined. */
export function p90(samples: number[]): number | undefined {
  if (!samples.length) return undefined;
  if (samples.length < MIN_SAMPLES) return samples[samples.length - 1];
  return samples[Math.min(samples.length - 1, Math.ceil(0.9 * samples.length) - 1)];
}

/** How long an attempt may take before it is a straggler (smart only). */
export function stragglerAfter(p: Policy, s: PlanState): number {
  if (p.kind !== 'smart') return Infinity;
  const q = p90(s.samples);
  return q === undefined ? Infinity : p.stragglerFactor * q;
}

const windowOf = (p: Policy) => (p.kind === 'smart' ? p.window : p.kind === 'lockstep' ? p.batch : p.parallelism);

export function unavailable(s: PlanState): number {
  let n = 0;
  for (const x of s.slots) if (x.oldGone && x.status !== 'ready') n++;
  return n;
}

/** What to do now. Pure: reads the state, never changes it. */
export function plan(p: Policy, s: PlanState): Decision {
  const w = windowOf(p);
  const after = stragglerAfter(p, s);
  const stragglers: number[] = [];
  let inFlight = 0;
  let holding = 0;
  let open = 0; // pending or retry
  let nextCheckAt: number | undefined;
  let unavail = 0;
  for (const x of s.slots) {
    if (x.oldGone && x.status !== 'ready') unavail++;
    if (x.status === 'pending' || x.status === 'retry') open++;
    if (x.status !== 'in-flight') continue;
    inFlight++;
    const deadline = x.startedAt! + after;
    if (x.straggler || s.now >= deadline) stragglers.push(x.slot);
    else {
      holding++;
      if (deadline !== Infinity && (nextCheckAt === undefined || deadline < nextCheckAt)) nextCheckAt = deadline;
    }
  }
  const decision = (verdict: Verdict, start: Start[] = [], prePull: string[] = []): Decision => ({ start, prePull, verdict, stragglers, unavailable: unavail, ...(nextCheckAt !== undefined && { nextCheckAt }) });
  if (s.failures > p.maxFailures) return decision(p.failureAction === 'pause' ? 'pause' : 'rollback');
  if (!open && !inFlight) return decision('done');

  // the confirm gate: until the owner confirms, only the first batch, and nothing past it
  const gated = p.kind === 'smart' && p.confirm !== false && !s.confirmed;
  const firstBatch = p.kind === 'smart' ? Math.min(p.firstBatch, s.slots.length) : 0;
  const eligible = (i: number) => !gated || i < firstBatch;

  let room: number;
  if (p.kind === 'lockstep') room = inFlight ? 0 : w;
  else if (p.kind === 'docker') room = w - inFlight;
  else {
    // stragglers give their window slot up, but no more than W of them at once: W in flight, and W stragglers
    room = Math.min(w - holding, 2 * w - inFlight);
    if (gated) room = firstBatch;
  }

  const prePulling = p.kind === 'smart' && p.prePull;
  const start: Start[] = [];
  const orderFor = (x: PlanSlot): Order => {
    // a slot whose old task is gone adds nothing to unavailability, whatever its order
    if (x.oldGone || p.order === 'start-first') return x.oldGone ? 'stop-first' : 'start-first';
    if (unavail < w) {
      unavail++;
      return 'stop-first';
    }
    return 'start-first';
  };
  const take = (x: PlanSlot) => {
    start.push({ slot: x.slot, order: orderFor(x), avoid: [...x.avoid] });
    room--;
  };
  // retries first: they were due before the slots after them (and lockstep retries inside its batch at once)
  const inBatchRetry = p.kind === 'lockstep';
  for (let i = 0; i < s.slots.length && (room > 0 || inBatchRetry); i++) {
    const x = s.slots[i]!;
    if (x.status === 'retry' && eligible(i)) {
      if (inBatchRetry) {
        start.push({ slot: x.slot, order: orderFor(x), avoid: [...x.avoid] });
      } else take(x);
    }
  }
  if (inBatchRetry && start.length) return decision('running', start); // lockstep: the batch is not settled yet
  if (p.kind === 'smart' && gated) room = firstBatch - inFlight - start.length - settledIn(s, firstBatch);
  const prePull: string[] = [];
  if (room > 0 && !prePulling) {
    for (let i = 0; i < s.slots.length && room > 0; i++) if (s.slots[i]!.status === 'pending' && eligible(i)) take(s.slots[i]!);
  } else if (prePulling) {
    for (let i = 0; i < s.slots.length && room > 0; i++) {
      const x = s.slots[i]!;
      if (x.status === 'pending' && eligible(i) && s.pulls[x.node] === 'done') take(x);
    }
    // the hosts of the next 2 × W slots not yet started (the first batch's too, before the confirmation)
    const taken = new Set(start.map((x) => x.slot));
    const wanted = new Set<string>();
    let ahead = 2 * w + (gated ? firstBatch : 0);
    for (let i = 0; i < s.slots.length && ahead > 0; i++) {
      const x = s.slots[i]!;
      if (x.status !== 'pending' || taken.has(x.slot)) continue;
      ahead--;
      if (!s.pulls[x.node]) wanted.add(x.node);
    }
    prePull.push(...wanted);
    // nothing would ever come (no pull under way, none to start): a host pulls on the critical path
    if (room > 0 && !start.length && !inFlight && !prePull.length && !Object.values(s.pulls).includes('pulling')) {
      for (let i = 0; i < s.slots.length && room > 0; i++) if (s.slots[i]!.status === 'pending' && eligible(i)) take(s.slots[i]!);
    }
  }
  let verdict: Verdict = 'running';
  if (gated && !start.length && !inFlight && firstBatchSettled(s, firstBatch)) verdict = 'wait-confirm';
  return decision(verdict, start, prePull);
}

function settledIn(s: PlanState, n: number): number {
  let k = 0;
  for (let i = 0; i < n; i++) if (s.slots[i]!.status === 'ready' || s.slots[i]!.status === 'failed') k++;
  return k;
}

function firstBatchSettled(s: PlanState, n: number): boolean {
  return settledIn(s, n) === n;
}

const byIndex = (s: PlanState) => {
  const m = new Map<number, PlanSlot>();
  for (const x of s.slots) m.set(x.slot, x);
  return m;
};

/** The slot's record (a linear lookup is fine for a controller; the simulator keeps its own index). */
export function slotOf(s: PlanState, slot: number, index?: Map<number, PlanSlot>): PlanSlot {
  const x = (index ?? byIndex(s)).get(slot);
  if (!x) throw new Error(`no slot ${slot} in this release`);
  return x;
}

/** Carries a decision out on the state: its stragglers marked, its starts begun (at `now`). */
export function apply(s: PlanState, d: Decision, now: number, index?: Map<number, PlanSlot>): void {
  for (const slot of d.stragglers) slotOf(s, slot, index).straggler = true;
  for (const st of d.start) begin(s, st, now, index);
}

/** A started attempt, as the planner said. */
export function begin(s: PlanState, st: Start, now: number, index?: Map<number, PlanSlot>): void {
  const x = slotOf(s, st.slot, index);
  if (x.status !== 'pending' && x.status !== 'retry') throw new Error(`slot ${st.slot} is ${x.status}: it cannot start again`);
  x.status = 'in-flight';
  x.attempts++;
  x.startedAt = now;
  x.order = st.order;
  if (st.order === 'stop-first') x.oldGone = true;
}

/** An attempt's outcome: ready (its ready time becomes a sample), or failed (a retry on another host while attempts last). */
export function settle(s: PlanState, slot: number, r: { ok: boolean; node?: string }, now: number, index?: Map<number, PlanSlot>): void {
  const x = slotOf(s, slot, index);
  if (x.status !== 'in-flight') throw new Error(`slot ${slot} is ${x.status}, not in flight`);
  if (r.node) x.node = r.node;
  delete x.straggler;
  if (r.ok) {
    x.status = 'ready';
    x.oldGone = false;
    insertSorted(s.samples, now - x.startedAt!);
    s.pulls[x.node] = 'done';
    return;
  }
  s.failures++;
  if (!x.avoid.includes(x.node)) x.avoid.push(x.node);
  x.status = x.attempts < MAX_ATTEMPTS ? 'retry' : 'failed';
}

function insertSorted(a: number[], v: number): void {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid]! <= v) lo = mid + 1;
    else hi = mid;
  }
  a.splice(lo, 0, v);
}
