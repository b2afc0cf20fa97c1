/** The planner's guarantees, as properties over random services, timings, failures and policies (fast-check). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { apply, begin, newState, plan, settle, unavailable, MAX_ATTEMPTS, type Policy, type PlanState, type SmartPolicy } from './planner.js';

interface World {
  n: number;
  hosts: number;
  /** Per slot, per attempt: how long it takes (ms) and whether it fails. */
  times: number[][];
  fails: boolean[][];
  pullMs: number;
}

const worldArb = fc.integer({ min: 1, max: 40 }).chain((n) =>
  fc.record({
    n: fc.constant(n),
    hosts: fc.integer({ min: 1, max: 12 }),
    times: fc.array(fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: MAX_ATTEMPTS, maxLength: MAX_ATTEMPTS }), { minLength: n, maxLength: n }),
    fails: fc.array(fc.array(fc.integer({ min: 0, max: 9 }).map((v) => v < 2), { minLength: MAX_ATTEMPTS, maxLength: MAX_ATTEMPTS }), { minLength: n, maxLength: n }),
    pullMs: fc.integer({ min: 0, max: 3000 }),
  }),
);

const base = { maxFailures: fc.integer({ min: 0, max: 100 }), failureAction: fc.constantFrom('pause' as const, 'rollback' as const), order: fc.constantFrom('stop-first' as const, 'start-first' as const) };
const policyArb: fc.Arbitrary<Policy> = fc.oneof(
  fc.record({ kind: fc.constant('smart' as const), firstBatch: fc.integer({ min: 1, max: 10 }), window: fc.integer({ min: 1, max: 10 }), stragglerFactor: fc.double({ min: 1, max: 5, noNaN: true }), prePull: fc.boolean(), confirm: fc.boolean(), ...base }),
  fc.record({ kind: fc.constant('lockstep' as const), batch: fc.integer({ min: 1, max: 10 }), ...base }),
  fc.record({ kind: fc.constant('docker' as const), parallelism: fc.integer({ min: 1, max: 10 }), ...base }),
);

const windowOf = (p: Policy) => (p.kind === 'smart' ? p.window : p.kind === 'lockstep' ? p.batch : p.parallelism);

interface Outcome {
  state: PlanState;
  verdict: string;
  starts: Map<number, number>;
}

/** Runs a release of `w` under `p` in simulated time, checking the invariants at every step. */
function simulate(p: Policy, w: World): Outcome {
  const s = newState(Array.from({ length: w.n }, (_, i) => ({ slot: i + 1, node: `h${i % w.hosts}` })));
  const W = windowOf(p);
  const ends = new Map<number, { at: number; ok: boolean }>();
  const pulls = new Map<string, number>();
  const starts = new Map<number, number>();
  const failedOnce = new Set<number>();
  const gated = p.kind === 'smart' && p.confirm !== false;
  const first = p.kind === 'smart' ? Math.min(p.firstBatch, w.n) : 0;
  for (let step = 0; step < 100_000; step++) {
    const before = JSON.stringify(s);
    const d = plan(p, s);
    assert.equal(JSON.stringify(s), before, 'plan changed its state');
    assert.deepEqual(plan(p, s), d, 'plan is not deterministic');
    if (d.verdict === 'done') {
      assert.ok(s.slots.every((x) => x.status === 'ready' || x.status === 'failed'));
      return { state: s, verdict: d.verdict, starts };
    }
    if (d.verdict === 'pause' || d.verdict === 'rollback') {
      assert.ok(s.failures > p.maxFailures);
      assert.equal(d.verdict, p.failureAction);
      return { state: s, verdict: d.verdict, starts };
    }
    if (d.verdict === 'wait-confirm') {
      assert.ok(gated && !s.confirmed);
      assert.ok(s.slots.slice(0, first).every((x) => x.status === 'ready' || x.status === 'failed'), 'waits before its first batch settled');
      s.confirmed = true;
      continue;
    }
    for (const node of d.prePull) {
      assert.equal(s.pulls[node], undefined, 'pre-pull asked twice of one host');
      s.pulls[node] = 'pulling';
      pulls.set(node, s.now + w.pullMs);
    }
    for (const st of d.start) {
      const x = s.slots.find((y) => y.slot === st.slot)!;
      assert.ok(x.status === 'pending' || x.status === 'retry', `slot ${st.slot} started while ${x.status}`);
      if (x.status === 'retry') assert.ok(failedOnce.has(st.slot));
    }
    apply(s, d, s.now);
    for (const st of d.start) {
      const x = s.slots.find((y) => y.slot === st.slot)!;
      starts.set(st.slot, (starts.get(st.slot) ?? 0) + 1);
      const a = x.attempts - 1;
      ends.set(st.slot, { at: s.now + w.times[st.slot - 1]![a]!, ok: !w.fails[st.slot - 1]![a] });
    }
    // the guarantees, after the starts
    assert.ok(unavailable(s) <= W, `${unavailable(s)} unavailable, window ${W}`);
    assert.equal(d.unavailable, unavailable(s));
    const inFlight = s.slots.filter((x) => x.status === 'in-flight').length;
    if (p.kind === 'docker') assert.ok(inFlight <= W);
    if (p.kind === 'smart' && s.confirmed) assert.ok(inFlight <= 2 * W && inFlight - plan(p, s).stragglers.length <= W);
    if (gated && !s.confirmed) assert.ok(s.slots.slice(first).every((x) => x.attempts === 0), 'a slot past the first batch started before the confirmation');
    // lockstep: a new batch (first attempts) only once the one before has nothing in flight, and at most W of it
    const fresh = d.start.filter((x) => s.slots.find((y) => y.slot === x.slot)!.attempts === 1);
    if (p.kind === 'lockstep' && fresh.length) {
      assert.equal(inFlight, d.start.length, 'a lockstep batch started beside another one');
      assert.ok(fresh.length <= W);
    }
    assert.ok(s.slots.every((x) => x.attempts <= MAX_ATTEMPTS));
    // the next event
    const next = Math.min(...[...ends.values()].map((e) => e.at), ...pulls.values(), d.nextCheckAt ?? Infinity);
    assert.ok(Number.isFinite(next), `stuck: nothing in flight, verdict ${d.verdict}`);
    s.now = Math.max(s.now, next);
    for (const [slot, e] of [...ends]) {
      if (e.at > s.now) continue;
      ends.delete(slot);
      if (!e.ok) failedOnce.add(slot);
      settle(s, slot, { ok: e.ok }, s.now);
    }
    for (const [node, at] of [...pulls]) {
      if (at > s.now) continue;
      pulls.delete(node);
      s.pulls[node] = 'done';
    }
  }
  assert.fail('no end after 100,000 steps');
}

test('every policy: never more than W unavailable, a slot replaced once unless retried, the confirm gate holds, always an end', () => {
  fc.assert(fc.property(policyArb, worldArb, (p, w) => {
    const o = simulate(p, w);
    for (const x of o.state.slots) {
      const started = o.starts.get(x.slot) ?? 0;
      assert.ok(started <= MAX_ATTEMPTS);
      if (started === 2) assert.ok(w.fails[x.slot - 1]![0], `slot ${x.slot} started twice without failing`);
    }
  }), { numRuns: 400, seed: 19, includeErrorInReport: true });
});

test('without failures every slot is replaced exactly once and the release is done', () => {
  fc.assert(fc.property(policyArb, worldArb, (p, w) => {
    const o = simulate(p, { ...w, fails: w.fails.map((a) => a.map(() => false)) });
    assert.equal(o.verdict, 'done');
    assert.ok(o.state.slots.every((x) => x.status === 'ready' && x.attempts === 1));
  }), { numRuns: 300, seed: 7, includeErrorInReport: true });
});

const smart = (o: Partial<SmartPolicy> = {}): SmartPolicy => ({ kind: 'smart', firstBatch: 2, window: 2, stragglerFactor: 2, maxFailures: 0, failureAction: 'pause', prePull: false, order: 'stop-first', ...o });

test('a straggler past K × p90 gives its window slot up, and the slot taking it starts start-first while W are unavailable', () => {
  const s = newState(Array.from({ length: 20 }, (_, i) => ({ slot: i, node: `h${i}` })));
  s.confirmed = true;
  const p = smart({ window: 2 });
  for (let i = 0; i < 10; i++) {
    begin(s, { slot: i, order: 'stop-first', avoid: [] }, 0);
    settle(s, i, { ok: true }, 100); // p90 = 100 ms
  }
  s.now = 1000;
  const d1 = plan(p, s);
  assert.deepEqual(d1.start.map((x) => [x.slot, x.order]), [[10, 'stop-first'], [11, 'stop-first']]);
  apply(s, d1, 1000);
  assert.equal(plan(p, s).start.length, 0);
  assert.equal(plan(p, s).nextCheckAt, 1200);
  s.now = 1200; // both are stragglers now (2 × 100 ms)
  const d2 = plan(p, s);
  assert.deepEqual(d2.stragglers, [10, 11]);
  assert.deepEqual(d2.start.map((x) => [x.slot, x.order]), [[12, 'start-first'], [13, 'start-first']]);
  assert.equal(d2.unavailable, 2);
});

test('pre-pull: the next 2 × W hosts pull first, a slot whose host has the image goes first, none pulls on the critical path', () => {
  const s = newState(Array.from({ length: 10 }, (_, i) => ({ slot: i, node: `h${i}` })));
  s.confirmed = true;
  const p = smart({ window: 2, prePull: true });
  const d = plan(p, s);
  assert.deepEqual(d.start, []);
  assert.deepEqual(d.prePull, ['h0', 'h1', 'h2', 'h3']);
  for (const h of d.prePull) s.pulls[h] = 'pulling';
  s.pulls.h3 = 'done';
  const d2 = plan(p, s);
  assert.deepEqual(d2.start.map((x) => x.slot), [3]);
});

test('the failure budget: one failure past it pauses or rolls back, per policy', () => {
  for (const action of ['pause', 'rollback'] as const) {
    const s = newState([{ slot: 1, node: 'a' }, { slot: 2, node: 'b' }, { slot: 3, node: 'c' }]);
    s.confirmed = true;
    const p = smart({ maxFailures: 1, failureAction: action, window: 3 });
    for (const st of plan(p, s).start) begin(s, st, 0);
    settle(s, 1, { ok: false }, 10);
    assert.equal(plan(p, s).verdict, 'running');
    assert.deepEqual(plan(p, s).start.map((x) => [x.slot, x.avoid]), [[1, ['a']]]);
    settle(s, 2, { ok: false }, 10);
    assert.equal(plan(p, s).verdict, action);
  }
});
