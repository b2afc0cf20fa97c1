/**
 * The release controller: runs releases on the leader through ReleaseOps, with the planner deciding, and keeps each
 * release's record and every slot's progress in etcd (ReleaseStore) before and after each replacement, so that a
 * new leader resumes a release where the last one left it: a slot whose new task exists is awaited, not replaced
 * again; a slot whose replacement never began is started; none is skipped.
 */
import { randomBytes } from 'node:crypto';
import { conflict, errorMessage, notFound } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import type { ReleaseOps } from './ops.js';
import { apply, newState, plan, settle, type Decision, type PlanSlot, type PlanState, type SmartPolicy, type Start } from './planner.js';
import { isActive, MAX_EVENTS, policyOf, type ReleaseHeader, type ReleaseRecord, type ReleaseRequest, type ReleaseState, type SlotRecord } from './record.js';
import type { ReleaseStore } from './store.js';

export type ReleaseAction = 'confirm' | 'pause' | 'resume' | 'rollback';

export interface ControllerOptions {
  /** How often a resumed release looks at a slot whose new task was already starting (ms). */
  pollMs?: number;
  /** At most one record per this many ms to each watcher (the newest wins). */
  watchMs?: number;
}

/** How soon a header follows the slot writes that changed its counts. */
const HEADER_LAZY_MS = 250;
const nowIso = () => new Date().toISOString();
const newId = () => `${Date.now().toString(36).padStart(9, '0')}-${randomBytes(3).toString('hex')}`;
const newestFirst = (a: ReleaseHeader, b: ReleaseHeader) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id);

/** One release being driven. */
class Run {
  readonly st: PlanState;
  readonly index = new Map<number, PlanSlot>();
  readonly extra = new Map<number, { image: string; startMs?: number }>();
  phase: 'forward' | 'rollback';
  policy: SmartPolicy;
  private wakeUp: (() => void) | undefined;
  private writing: Promise<void> = Promise.resolve();
  abort = new AbortController();
  halted = false;
  /** The service was removed: its records are being deleted, and nothing of this run may write them again. */
  gone = false;
  rollbackAsked?: { why: string; user?: string };
  done: Promise<void> = Promise.resolve();
  /** Slots of the other phase (before a rollback, the forward records of slots it leaves alone). */
  readonly others = new Map<number, SlotRecord>();
  /** Hosts whose pre-pull failed: the planner counts them as done (the replacement pulls), the record does not. */
  readonly pullsFailed = new Set<string>();
  /** The state the service was last told (ReleaseOps.status). */
  private reported: ReleaseState | undefined;

  constructor(
    readonly h: ReleaseHeader,
    slots: SlotRecord[],
    private readonly c: ReleaseController,
  ) {
    this.phase = h.state === 'rolling-back' || h.state === 'rolled-back' ? 'rollback' : 'forward';
    this.policy = this.phase === 'rollback' ? rollbackPolicy(h.policy) : h.policy;
    const mine = slots.filter((s) => s.phase === this.phase);
    this.st = newState(mine, Date.now());
    this.st.confirmed = this.phase === 'rollback' || !!h.confirmedAt;
    for (const [i, r] of mine.entries()) {
      Object.assign(this.st.slots[i]!, { status: r.status, attempts: r.attempts, startedAt: r.startedAt, order: r.order, oldGone: r.oldGone, avoid: [...r.avoid], ...(r.straggler && { straggler: true }) });
      this.index.set(r.slot, this.st.slots[i]!);
      this.extra.set(r.slot, { image: r.image, startMs: r.startMs });
    }
    // slots of the other phase stay as they were: the view shows them
    for (const r of slots.filter((s) => s.phase !== this.phase)) this.others.set(r.slot, r);
    this.st.failures = h.failed - (h.failureBase ?? 0);
  }
  get target(): string {
    return this.phase === 'rollback' ? this.h.previousImage : this.h.image;
  }

  /** A wake that comes while the loop is not asleep (writing, planning) is kept for its next sleep, never lost. */
  private woken = false;

  wake(): void {
    const w = this.wakeUp;
    this.wakeUp = undefined;
    if (w) w();
    else this.woken = true;
  }

  sleep(untilMs?: number): Promise<void> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const t = untilMs === undefined ? undefined : setTimeout(() => {
        this.wakeUp = undefined;
        resolve();
      }, Math.max(1, untilMs - Date.now()));
      this.wakeUp = () => {
        if (t) clearTimeout(t);
        resolve();
      };
    });
  }

  slotRecord(x: PlanSlot): SlotRecord {
    const e = this.extra.get(x.slot)!;
    return {
      slot: x.slot, node: x.node, status: x.status, attempts: x.attempts, oldGone: x.oldGone, avoid: x.avoid, image: e.image, phase: this.phase,
      ...(x.startedAt !== undefined && { startedAt: x.startedAt }), ...(x.order && { order: x.order }), ...(x.straggler && { straggler: true }), ...(e.startMs !== undefined && { startMs: e.startMs }),
    };
  }

  counts(): void {
    let updated = 0;
    let inFlight = 0;
    for (const x of this.st.slots) {
      if (x.status === 'ready') updated++;
      if (x.status === 'in-flight') inFlight++;
    }
    this.h.updated = updated;
    this.h.inFlight = inFlight;
    this.h.prePulled = Object.entries(this.st.pulls).filter(([n, p]) => p === 'done' && !this.pullsFailed.has(n)).length;
  }

  event(type: string, message: string, user?: string): void {
    this.h.events.push({ time: nowIso(), type, message, ...(user && { user }) });
    this.c.logger.info({ service: this.h.service, release: this.h.id, event: type, ...(user && { user }) }, message);
    if (this.h.events.length > MAX_EVENTS) this.h.events.splice(0, this.h.events.length - MAX_EVENTS);
  }

  /**
   * Writes `slots` and the header after the writes before it (so the last header written is the newest). A slot's
   * progress is written at once (a new leader goes by it); with `lazy`, the header (counts, events: the part that
   * grows) follows within HEADER_LAZY_MS, so thousands of slots settling do not write it thousands of times.
   */
  persist(slots: PlanSlot[] | SlotRecord[] = [], lazy = false): Promise<void> {
    if (this.gone) return Promise.resolve();
    this.counts();
    this.c.notify(this);
    const recs = slots.map((x) => ('phase' in x ? x : this.slotRecord(x)));
    if (lazy) {
      // a halted run writes nothing more: the next leader's writes are the ones that count
      this.headerSoon ??= setTimeout(() => {
        this.headerSoon = undefined;
        if (!this.halted) void this.persist().catch(() => undefined);
      }, HEADER_LAZY_MS);
      if (!recs.length) return Promise.resolve();
      return this.chain(() => this.c.store.putSlots(this.h.service, this.h.id, recs));
    }
    clearTimeout(this.headerSoon);
    this.headerSoon = undefined;
    const h = structuredClone(this.h);
    const w = this.chain(() => this.c.store.put(h, recs));
    if (this.reported !== h.state) {
      // after the record, so that a service that says "completed" has a record that says so too
      this.reported = h.state;
      const last = h.events[h.events.length - 1]?.message ?? '';
      void this.chain(() => this.c.tellService(h, last)).catch((err: unknown) => this.c.logger.warn({ err: errorMessage(err), service: h.service }, 'the service could not be told the release\'s state'));
    }
    return w;
  }

  private headerSoon: NodeJS.Timeout | undefined;

  /** No header write pending. */
  quiet(): void {
    clearTimeout(this.headerSoon);
    this.headerSoon = undefined;
  }

  /** Resolves when the writes asked so far have ended. */
  flushed(): Promise<void> {
    return this.writing;
  }

  private chain(write: () => Promise<void>): Promise<void> {
    const w = this.writing.then(write);
    this.writing = w.catch(() => undefined);
    return w;
  }

  view(): ReleaseRecord {
    this.counts();
    const instances = [...this.others.values()].filter((r) => !this.index.has(r.slot)).map((r) => ({ slot: r.slot, node: r.node, state: r.status, image: r.image, ...(r.startMs !== undefined && { startMs: r.startMs }) }));
    for (const x of this.st.slots) {
      const e = this.extra.get(x.slot)!;
      instances.push({ slot: x.slot, node: x.node, state: x.status, image: e.image, ...(e.startMs !== undefined && { startMs: e.startMs }) });
    }
    instances.sort((a, b) => a.slot - b.slot);
    return { ...structuredClone(this.h), instances };
  }
}

/** Rolling back: the same planner, no confirmation, no pre-pull (the hosts had the previous image), no budget to stop it. */
const rollbackPolicy = (p: SmartPolicy): SmartPolicy => ({ ...p, confirm: false, prePull: false, maxFailures: Number.MAX_SAFE_INTEGER });

export class ReleaseController {
  private readonly runs = new Map<string, Run>();
  private readonly watchers = new Map<string, Set<(r: ReleaseRecord) => void>>();
  /** Told every service's record as it changes (the dashboard's stream): as watchers are, for all services. */
  private readonly observers = new Set<(r: ReleaseRecord) => void>();
  private readonly goneObservers = new Set<(service: string) => void>();
  private readonly pending = new Map<string, NodeJS.Timeout>();
  private readonly sentState = new Map<string, ReleaseState>();
  private stopped = false;

  constructor(
    private readonly ops: ReleaseOps,
    readonly store: ReleaseStore,
    private readonly log: Logger,
    private readonly opts: ControllerOptions = {},
  ) {}

  /** Starts a release of `req.service` to `req.image`; a release of that service still active is a 409. */
  async start(req: ReleaseRequest, user?: string): Promise<ReleaseRecord> {
    const running = this.active(req.service);
    if (running) throw conflict(`a release of ${req.service} is already in progress (${running.h.id}, ${running.h.state}): wait for it, or roll it back`);
    // etcd's copy of a run this manager holds may lag its memory (a final write under way): memory wins
    const last = this.runs.has(req.service) ? undefined : (await this.store.list(req.service)).sort(newestFirst)[0];
    if (last && isActive(last.state)) throw conflict(`a release of ${req.service} is already in progress (${last.id}, ${last.state})`);
    if (this.active(req.service)) throw conflict(`a release of ${req.service} is already in progress`);
    const instances = [...this.ops.instances(req.service)].sort((a, b) => a.slot - b.slot);
    if (!instances.length) throw notFound(`service ${req.service} has no instances to release`);
    const previousImage = mostCommon(instances.map((i) => i.image));
    const h: ReleaseHeader = {
      id: newId(), service: req.service, image: req.image, previousImage, policy: policyOf(req), state: 'running', total: instances.length,
      updated: 0, failed: 0, inFlight: 0, stragglers: 0, prePulled: 0, batches: [{ n: 1, slots: Math.min(req.firstBatch, instances.length), startedAt: nowIso() }], events: [], createdAt: nowIso(),
    };
    const slots: SlotRecord[] = instances.map((i) => ({ slot: i.slot, node: i.node, status: 'pending', attempts: 0, oldGone: false, avoid: [], image: req.image, phase: 'forward' }));
    // Docker's updater, or another manager's release, may hold the service: a 409 before anything is written
    await this.ops.claim?.(req.service, h.id);
    const run = new Run(h, slots, this);
    this.runs.set(req.service, run);
    run.event('start', `release of ${req.service} from ${previousImage} to ${req.image}: ${instances.length} instances, first batch ${req.firstBatch}, window ${req.window}`, user);
    try {
      await run.persist(slots);
    } catch (err) {
      this.runs.delete(req.service);
      await this.ops.status?.(req.service, h.id, 'failed', `the release could not be recorded: ${errorMessage(err)}`).catch(() => undefined);
      throw err;
    }
    try {
      await this.ops.setImage(req.service, req.image);
    } catch (err) {
      // written as running already: it must not stay so and hold the service's next release off
      h.state = 'failed';
      h.finishedAt = nowIso();
      run.event('failed', `the service's image could not be set: ${errorMessage(err)}`);
      await run.persist().catch(() => undefined);
      this.runs.delete(req.service);
      throw err;
    }
    this.preheat(run);
    this.drive(run);
    return run.view();
  }

  /** The image seeded into the P2P network first, beside the release: a failure is an event, not a stop. */
  private preheat(run: Run): void {
    const preheat = this.ops.preheat?.bind(this.ops);
    if (!preheat) return;
    const image = run.h.image;
    run.event('preheat', `preheating ${image} into the P2P network`);
    preheat(image).then(
      () => run.event('preheat-done', `${image} preheated`),
      (err: unknown) => run.event('preheat-failed', `preheat of ${image}: ${errorMessage(err)} (the hosts pull on their own)`),
    ).finally(() => {
      if (!run.halted) void run.persist([], true).catch(() => undefined);
    });
  }

  /** @internal: the service shows the release's state (ReleaseOps.status). */
  async tellService(h: ReleaseHeader, message: string): Promise<void> {
    await this.ops.status?.(h.service, h.id, h.state, `sampan release ${h.id} ${h.state}: ${message}`);
  }

  async act(service: string, action: ReleaseAction, user: string): Promise<ReleaseRecord> {
    const run = this.active(service);
    if (!run) {
      const last = this.runs.get(service)?.h ?? (await this.last(service));
      throw conflict(`release ${last.id} of ${service} is ${last.state}: there is nothing to ${action}`);
    }
    const h = run.h;
    const refuse = (): never => {
      throw conflict(`release ${h.id} of ${service} is ${h.state}${action === 'confirm' ? ', not waiting for confirmation' : ''}: cannot ${action} it`);
    };
    switch (action) {
      case 'confirm':
        if (h.state !== 'waiting-confirm') refuse();
        h.state = 'running';
        h.confirmedBy = user;
        h.confirmedAt = nowIso();
        run.st.confirmed = true;
        h.batches[0]!.endedAt ??= h.confirmedAt;
        h.batches.push({ n: 2, slots: h.total - h.batches[0]!.slots, startedAt: h.confirmedAt });
        run.event('confirm', `first batch confirmed by ${user}`, user);
        break;
      case 'pause':
        if (h.state !== 'running' && h.state !== 'waiting-confirm') refuse();
        h.state = 'paused';
        run.event('pause', `paused by ${user}`, user);
        break;
      case 'resume':
        if (h.state !== 'paused') refuse();
        // the planner says again whether the first batch still waits for its confirmation
        h.state = run.phase === 'rollback' ? 'rolling-back' : 'running';
        // the failure budget counts from here
        h.failureBase = h.failed;
        run.st.failures = 0;
        run.event('resume', `resumed by ${user}`, user);
        break;
      case 'rollback':
        if (run.phase === 'rollback') refuse();
        run.rollbackAsked = { why: `rollback asked by ${user}`, user };
        run.abort.abort(new Error('the release is rolling back'));
        break;
    }
    await run.persist();
    run.wake();
    return run.view();
  }

  /** The service's run while its release is active (a run that has just ended is on its way out). */
  private active(service: string): Run | undefined {
    const run = this.runs.get(service);
    return run && isActive(run.h.state) ? run : undefined;
  }

  /** The service's active release, or its last. */
  async current(service: string): Promise<ReleaseRecord> {
    const run = this.runs.get(service);
    if (run) return run.view();
    const last = await this.last(service);
    return this.recordOf(last);
  }

  private async last(service: string): Promise<ReleaseHeader> {
    const last = (await this.store.list(service)).sort(newestFirst)[0];
    if (!last) throw notFound(`no release of service ${service}`);
    return last;
  }

  private async recordOf(h: ReleaseHeader): Promise<ReleaseRecord> {
    const slots = await this.store.slots(h.service, h.id);
    const bySlot = new Map<number, SlotRecord>();
    // the rollback's record of a slot is its latest
    for (const s of slots) if (!bySlot.has(s.slot) || s.phase === 'rollback') bySlot.set(s.slot, s);
    return { ...h, instances: [...bySlot.values()].map((r) => ({ slot: r.slot, node: r.node, state: r.status, image: r.image, ...(r.startMs !== undefined && { startMs: r.startMs }) })) };
  }

  /** The releases, newest first (records without their instances: `current` has those). */
  async history(service?: string): Promise<ReleaseHeader[]> {
    const all = await this.store.list(service);
    for (const run of this.runs.values()) {
      const i = all.findIndex((h) => h.id === run.h.id);
      if (i >= 0) all[i] = structuredClone(run.h);
    }
    return all.sort(newestFirst);
  }

  /** Tells `fn` the service's record as it changes (at most every watchMs), until the returned function is called. */
  watch(service: string, fn: (r: ReleaseRecord) => void): () => void {
    let set = this.watchers.get(service);
    if (!set) this.watchers.set(service, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (!set.size) this.watchers.delete(service);
    };
  }

  /**
   * Tells `fn` every service's record as it changes (as `watch` does for one), and `gone` a service whose releases
   * were forgotten, until the returned function is called.
   */
  observe(fn: (r: ReleaseRecord) => void, gone?: (service: string) => void): () => void {
    this.observers.add(fn);
    if (gone) this.goneObservers.add(gone);
    return () => {
      this.observers.delete(fn);
      if (gone) this.goneObservers.delete(gone);
    };
  }

  /**
   * The service was removed (`docker service rm`): its release stops where it is, writing nothing more, and its
   * releases are deleted, as Docker forgets a removed service's update status. A later service of that name starts
   * with no history.
   */
  async forget(service: string): Promise<void> {
    const run = this.runs.get(service);
    if (run) {
      run.gone = run.halted = true;
      run.quiet();
      run.abort.abort(new Error(`service ${service} was removed`));
      run.wake();
      await run.done;
      await run.flushed();
    }
    clearTimeout(this.pending.get(service));
    this.pending.delete(service);
    this.sentState.delete(service);
    await this.store.remove(service);
    for (const fn of this.goneObservers) fn(service);
  }

  /** @internal: where runs log their events. */
  get logger(): Logger {
    return this.log;
  }

  /** @internal: a run's record changed. Counts reach watchers at most every watchMs; a change of state at once. */
  notify(run: Run): void {
    const service = run.h.service;
    if (!this.watchers.has(service) && !this.observers.size) return;
    const send = () => {
      clearTimeout(this.pending.get(service));
      this.pending.delete(service);
      if (this.runs.has(service) && this.runs.get(service) !== run) return;
      const r = run.view();
      this.sentState.set(service, r.state);
      for (const fn of this.watchers.get(service) ?? []) fn(r);
      for (const fn of this.observers) fn(r);
    };
    if (this.sentState.get(service) !== run.h.state) send();
    else if (!this.pending.has(service)) this.pending.set(service, setTimeout(send, this.opts.watchMs ?? 100));
  }

  /** On becoming the leader: every release etcd holds as active is driven again from its slots' progress. */
  async resumeAll(): Promise<void> {
    this.stopped = false;
    for (const h of await this.store.list()) {
      if (!isActive(h.state) || this.runs.has(h.service)) continue;
      const run = new Run(h, await this.store.slots(h.service, h.id), this);
      this.runs.set(h.service, run);
      run.event('resume', 'resumed by a new leader');
      await run.persist();
      this.drive(run);
    }
  }

  /** On losing the leadership (or shutting down): the runs stop where they are; their records stay as written. */
  async stop(): Promise<void> {
    this.stopped = true;
    const runs = [...this.runs.values()];
    for (const r of runs) {
      r.halted = true;
      r.quiet();
      r.wake();
    }
    await Promise.all(runs.map((r) => r.done));
    for (const t of this.pending.values()) clearTimeout(t);
    this.pending.clear();
  }

  /** Resolves when the service's run has ended (done, rolled back, failed or halted). */
  async settled(service: string): Promise<void> {
    await this.runs.get(service)?.done;
  }

  private drive(run: Run): void {
    run.done = this.loop(run).catch((err: unknown) => {
      // a write refused or etcd gone: this manager stops driving; the next leader resumes from what etcd holds
      run.halted = true;
      run.quiet();
      this.log.error({ err, service: run.h.service, release: run.h.id }, 'release halted: its progress could not be written');
    }).finally(() => {
      if (this.runs.get(run.h.service) === run) this.runs.delete(run.h.service);
      this.notify(run);
    });
  }

  private async loop(run: Run): Promise<void> {
    await this.recover(run);
    for (;;) {
      if (run.halted || this.stopped) return;
      if (run.rollbackAsked && !run.st.slots.some((x) => x.status === 'in-flight')) {
        await this.beginRollback(run);
        continue;
      }
      const h = run.h;
      run.st.now = Date.now();
      const d = plan(run.policy, run.st);
      h.stragglers = d.stragglers.length;
      const live = h.state === 'running' || h.state === 'rolling-back';
      if (d.verdict === 'done') {
        h.state = run.phase === 'rollback' ? (run.st.slots.some((x) => x.status === 'failed') ? 'failed' : 'rolled-back') : 'done';
        h.finishedAt = nowIso();
        for (const b of h.batches) b.endedAt ??= h.finishedAt;
        run.event(h.state, h.state === 'done' ? `${h.updated} of ${h.total} instances on ${h.image}` : `rollback to ${h.previousImage} ended: ${h.state}`);
        await run.persist();
        return;
      }
      if (d.verdict === 'rollback' && !run.rollbackAsked) {
        run.rollbackAsked = { why: `${run.st.failures} failures, past the budget of ${run.policy.maxFailures}` };
        run.abort.abort(new Error('the release is rolling back'));
        continue;
      }
      if (d.verdict === 'pause' && h.state === 'running') {
        h.state = 'paused';
        run.event('pause', `${run.st.failures} failures, past the budget of ${run.policy.maxFailures}: paused`);
        await run.persist();
      }
      if (d.verdict === 'wait-confirm' && h.state === 'running') {
        h.state = 'waiting-confirm';
        h.batches[0]!.endedAt = nowIso();
        run.event('wait-confirm', `first batch of ${h.batches[0]!.slots} settled: waiting for confirmation (sampan release confirm ${h.service})`);
        await run.persist();
      }
      for (const node of d.prePull) this.prePull(run, node);
      const fresh = d.stragglers.filter((slot) => !run.index.get(slot)!.straggler);
      if (fresh.length) run.event('straggler', `slots ${fresh.join(', ')} take longer than ${run.policy.stragglerFactor} × the p90 ready time: they keep starting, their window slots go to the next`);
      if (live && !run.rollbackAsked) await this.launch(run, d);
      else for (const slot of fresh) run.index.get(slot)!.straggler = true;
      await run.sleep(d.nextCheckAt);
    }
  }

  private prePull(run: Run, node: string): void {
    run.st.pulls[node] = 'pulling';
    run.pullsFailed.delete(node);
    const image = run.target;
    this.ops.prePull(node, image).then(
      () => undefined,
      // a failed pre-pull leaves the pull to the replacement itself
      (err: unknown) => {
        run.pullsFailed.add(node);
        run.event('pre-pull-failed', `pre-pull of ${image} on ${node}: ${errorMessage(err)}`);
      },
    ).finally(() => {
      run.st.pulls[node] = 'done';
      void run.persist([], true).catch(() => undefined);
      run.wake();
    });
  }

  /** Slots start only once etcd says they did (so a new leader knows to look at them), then are replaced. */
  private async launch(run: Run, d: Decision): Promise<void> {
    const marked = d.stragglers.filter((slot) => !run.index.get(slot)!.straggler);
    apply(run.st, d, Date.now(), run.index);
    const xs: PlanSlot[] = [...marked, ...d.start.map((s) => s.slot)].map((slot) => run.index.get(slot)!);
    for (const s of d.start) run.extra.get(s.slot)!.image = run.target;
    if (xs.length) await run.persist(xs, true);
    for (const s of d.start) void this.replace(run, s);
  }

  private async replace(run: Run, s: Start): Promise<void> {
    const service = run.h.service;
    const image = run.target;
    let r: { ok: boolean; node?: string; error?: string; startMs: number };
    try {
      r = await this.ops.replace(service, s.slot, image, { order: s.order, avoid: s.avoid, signal: run.abort.signal });
    } catch (err) {
      r = { ok: false, error: errorMessage(err), startMs: 0 };
    }
    if (run.halted) return;
    this.settleSlot(run, s.slot, r);
  }

  private settleSlot(run: Run, slot: number, r: { ok: boolean; node?: string; error?: string; startMs: number }): void {
    const x = run.index.get(slot)!;
    if (x.status !== 'in-flight') return;
    settle(run.st, slot, r, Date.now(), run.index);
    run.extra.get(slot)!.startMs = r.startMs;
    if (!r.ok) {
      run.h.failed++;
      run.event('instance-failed', `slot ${slot} on ${r.node ?? x.node}: ${r.error ?? 'failed'}${(x.status as string) === 'retry' ? ' (retried on another host)' : ''}`);
    }
    void run.persist([x], true).catch((err: unknown) => {
      run.halted = true;
      run.wake();
      this.log.error({ err, service: run.h.service }, 'release halted: a slot\'s progress could not be written');
    });
    run.wake();
  }

  /**
   * A resumed run's slots that were in flight: a new task of the target image is awaited (ready, failed) rather
   * than replaced again; one that never appeared is started again, its attempt not counted.
   */
  private async recover(run: Run): Promise<void> {
    const inFlight = run.st.slots.filter((x) => x.status === 'in-flight');
    if (!inFlight.length) return;
    const poll = this.opts.pollMs ?? 500;
    const look = () => new Map(this.ops.instances(run.h.service).map((i) => [i.slot, i]));
    const back: PlanSlot[] = [];
    const now = look();
    for (const x of inFlight) {
      const i = now.get(x.slot);
      if (!i || i.image !== run.target || i.state === 'shutdown') {
        x.attempts--;
        x.status = x.attempts ? 'retry' : 'pending';
        back.push(x);
      }
    }
    if (back.length) {
      run.event('recover', `slots ${back.map((x) => x.slot).join(', ')} had not started their replacement: started again`);
      await run.persist(back);
    }
    const waiting = new Set(inFlight.filter((x) => x.status === 'in-flight').map((x) => x.slot));
    if (!waiting.size) return;
    run.event('recover', `slots ${[...waiting].join(', ')} were being replaced: awaited`);
    // awaited beside the loop, which goes on with the other slots
    void (async () => {
      while (waiting.size && !run.halted && !this.stopped) {
        for (const [slot, i] of look()) {
          if (!waiting.has(slot) || i.image !== run.target) continue;
          const ready = i.state === 'running' && i.healthy !== false;
          if (ready || i.state === 'failed') {
            waiting.delete(slot);
            this.settleSlot(run, slot, { ok: ready, node: i.node, startMs: Date.now() - (run.index.get(slot)!.startedAt ?? Date.now()), ...(!ready && { error: 'the task failed' }) });
          }
        }
        if (waiting.size) await new Promise((r) => setTimeout(r, poll));
      }
    })();
  }

  /** Every slot the release touched goes back to the previous image: the same planner, in reverse order. */
  private async beginRollback(run: Run): Promise<void> {
    const asked = run.rollbackAsked!;
    const h = run.h;
    const touched = run.st.slots.filter((x) => x.attempts > 0).reverse();
    for (const x of run.st.slots) run.others.set(x.slot, run.slotRecord(x));
    run.phase = 'rollback';
    run.policy = rollbackPolicy(h.policy);
    run.rollbackAsked = undefined;
    run.abort = new AbortController();
    const fresh = newState(touched, Date.now());
    fresh.confirmed = true;
    Object.assign(run.st, fresh);
    run.index.clear();
    for (const x of run.st.slots) {
      run.index.set(x.slot, x);
      run.extra.set(x.slot, { image: h.previousImage });
    }
    h.state = 'rolling-back';
    h.failureBase = h.failed;
    h.batches.forEach((b) => (b.endedAt ??= nowIso()));
    h.batches.push({ n: h.batches.length + 1, slots: touched.length, startedAt: nowIso() });
    run.event('rollback', `${asked.why}: ${touched.length} instances back to ${h.previousImage}`, asked.user);
    await run.persist(run.st.slots);
    await this.ops.setImage(h.service, h.previousImage);
  }
}

function mostCommon(xs: string[]): string {
  const n = new Map<string, number>();
  for (const x of xs) n.set(x, (n.get(x) ?? 0) + 1);
  return [...n].sort((a, b) => b[1] - a[1])[0]![0];
}

export type { ReleaseState };
