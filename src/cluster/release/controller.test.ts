/**
 * The controller over a service of our own (ReleaseOps in memory: instances that start after the delays a test
 * sets) and a real etcd, through the cluster's store: confirm, conflicts, the failure budget's rollback, and a new
 * leader resuming a release that the last one left half done.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isCode } from '../../lib/errors.js';
import { createLogger } from '../../lib/log.js';
import { EtcdCluster } from '../etcd.js';
import { ClusterStore } from '../store.js';
import { ReleaseController } from './controller.js';
import type { ReleaseInstance, ReleaseOps, ReplaceResult } from './ops.js';
import { validateRelease, type ReleaseRecord } from './record.js';
import { EtcdReleaseStore } from './store.js';

const log = createLogger('release-test', 'silent');

/** A service in memory: `behave` says how long a slot's new task takes to be ready, and whether it fails. */
class Service implements ReleaseOps {
  readonly tasks = new Map<number, ReleaseInstance>();
  readonly calls: Array<{ slot: number; image: string; order: string; avoid: string[] }> = [];
  readonly prePulls: string[] = [];
  readonly images: string[] = [];
  behave: (slot: number, image: string) => { ms: number; fail?: boolean } = () => ({ ms: 5 });
  private seq = 0;

  constructor(readonly name: string, n: number, image: string, readonly nodes = ['h1', 'h2', 'h3']) {
    for (let i = 1; i <= n; i++) this.tasks.set(i, { slot: i, taskId: `t${++this.seq}`, node: nodes[i % nodes.length]!, image, state: 'running' });
  }

  instances(service: string): ReleaseInstance[] {
    return service === this.name ? [...this.tasks.values()].map((t) => ({ ...t })) : [];
  }

  async replace(_s: string, slot: number, image: string, o: { order: 'stop-first' | 'start-first'; avoid?: string[]; signal?: AbortSignal }): Promise<ReplaceResult> {
    this.calls.push({ slot, image, order: o.order, avoid: o.avoid ?? [] });
    const old = this.tasks.get(slot)!;
    const node = this.nodes.find((n) => !(o.avoid ?? []).includes(n)) ?? old.node;
    const t: ReleaseInstance = { slot, taskId: `t${++this.seq}`, node: o.avoid?.length ? node : old.node, image, state: 'starting' };
    this.tasks.set(slot, t);
    const b = this.behave(slot, image);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, b.ms);
      o.signal?.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
    const ok = !b.fail && !o.signal?.aborted;
    t.state = ok ? 'running' : 'failed';
    return { ok, node: t.node, taskId: t.taskId, startMs: b.ms, ...(!ok && { error: o.signal?.aborted ? 'aborted' : `${image}: exec format error` }) };
  }

  async prePull(node: string, image: string): Promise<void> {
    this.prePulls.push(`${node} ${image}`);
  }

  async setImage(_s: string, image: string): Promise<void> {
    this.images.push(image);
  }
}

async function etcd(t: { after(fn: () => Promise<void> | void): void }): Promise<EtcdCluster> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sprel-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const e = await EtcdCluster.start({ dir, members: 1 });
  t.after(() => e.stop());
  return e;
}

function controller(t: { after(fn: () => Promise<void> | void): void }, e: EtcdCluster, svc: Service, cluster: string): ReleaseController {
  const store = ClusterStore.connect(e.endpoints, cluster);
  const c = new ReleaseController(svc, new EtcdReleaseStore(store), log, { pollMs: 20, watchMs: 10 });
  t.after(async () => {
    await c.stop();
    store.close();
  });
  return c;
}

async function until(c: ReleaseController, service: string, pred: (r: ReleaseRecord) => boolean): Promise<ReleaseRecord> {
  // a bound on a wait, not a timing assertion: a release that never gets there fails the test instead of hanging it
  for (const end = Date.now() + 30_000; ;) {
    const r = await c.current(service);
    if (pred(r)) return r;
    if (Date.now() > end) assert.fail(`release of ${service} never got there: ${r.state}, ${JSON.stringify(r.events.map((x) => x.type))}`);
    await new Promise((res) => setTimeout(res, 10));
  }
}

const req = (o: Record<string, unknown>) => validateRelease({ service: 'web', image: 'web:2', ...o });

test('smart release: the first batch, a wait for confirmation, then the rest; each slot replaced once; the record in etcd', async (t) => {
  const e = await etcd(t);
  const svc = new Service('web', 7, 'web:1');
  const c = controller(t, e, svc, 'a');
  const watched: string[] = [];
  const unwatch = c.watch('web', (r) => watched.push(r.state));
  const r0 = await c.start(req({ firstBatch: 2, window: 2, prePull: true }), 'unix:0');
  assert.equal(r0.previousImage, 'web:1');
  assert.equal(r0.total, 7);
  const waiting = await until(c, 'web', (r) => r.state === 'waiting-confirm');
  assert.deepEqual(svc.calls.map((x) => x.slot).sort(), [1, 2]);
  assert.equal(waiting.updated, 2);
  await assert.rejects(c.start(req({})), (err) => isCode(err, 'CONFLICT'));
  await c.act('web', 'confirm', 'unix:1000');
  const done = await until(c, 'web', (r) => r.state === 'done');
  await c.settled('web');
  unwatch();
  assert.deepEqual(svc.calls.map((x) => x.slot).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7]);
  assert.ok([...svc.tasks.values()].every((x) => x.image === 'web:2' && x.state === 'running'));
  assert.equal(done.confirmedBy, 'unix:1000');
  assert.equal(done.updated, 7);
  assert.deepEqual(done.events.map((x) => x.type).filter((x) => x !== 'straggler'), ['start', 'wait-confirm', 'confirm', 'done']);
  assert.deepEqual(svc.images, ['web:2']);
  assert.ok(svc.prePulls.length > 0, 'pre-pulls were asked for');
  assert.ok(watched.includes('waiting-confirm') && watched.includes('done'));
  // what etcd holds: the history, and the record with its instances
  const again = controller(t, e, svc, 'a');
  const hist = await again.history('web');
  assert.equal(hist.length, 1);
  assert.equal(hist[0]!.state, 'done');
  const rec = await again.current('web');
  assert.equal(rec.instances.length, 7);
  assert.ok(rec.instances.every((i) => i.state === 'ready' && i.image === 'web:2'));
  // a release that is not waiting cannot be confirmed; a new one may start now
  await assert.rejects(c.act('web', 'confirm', 'unix:0'), (err) => isCode(err, 'CONFLICT') && /done/.test((err as Error).message));
  await assert.rejects(c.current('nope'), (err) => isCode(err, 'NOT_FOUND'));
});

test('an image that cannot start: past the failure budget the release rolls back by itself, every instance on the old image', async (t) => {
  const e = await etcd(t);
  const svc = new Service('web', 6, 'web:1');
  svc.behave = (slot, image) => (image === 'web:bad' && slot !== 6 ? { ms: 5, fail: true } : { ms: 5 });
  const c = controller(t, e, svc, 'b');
  await c.start(req({ image: 'web:bad', firstBatch: 1, window: 3, maxFailures: 2, failureAction: 'rollback', prePull: false }), 'unix:0');
  await until(c, 'web', (r) => r.state === 'waiting-confirm' || r.state === 'rolled-back');
  const r1 = await c.current('web');
  if (r1.state === 'waiting-confirm') await c.act('web', 'confirm', 'unix:0');
  const r = await until(c, 'web', (x) => x.state === 'rolled-back' || x.state === 'failed');
  await c.settled('web');
  assert.equal(r.state, 'rolled-back');
  assert.ok(r.failed > 2);
  assert.ok([...svc.tasks.values()].every((x) => x.image === 'web:1' && x.state === 'running'), JSON.stringify([...svc.tasks.values()]));
  assert.deepEqual(svc.images, ['web:bad', 'web:1']);
  assert.ok(r.events.some((x) => x.type === 'rollback'));
  // the retry of a failed slot went to another host
  assert.ok(svc.calls.some((x) => x.image === 'web:bad' && x.avoid.length > 0));
});

test('pause holds new starts, resume goes on; a rollback asked by the owner restores the old image', async (t) => {
  const e = await etcd(t);
  const svc = new Service('web', 8, 'web:1');
  svc.behave = () => ({ ms: 20 });
  const c = controller(t, e, svc, 'c');
  await c.start(req({ firstBatch: 1, window: 1, prePull: false }), 'unix:0');
  await until(c, 'web', (r) => r.state === 'waiting-confirm');
  await c.act('web', 'confirm', 'unix:0');
  await c.act('web', 'pause', 'unix:0');
  await assert.rejects(c.act('web', 'confirm', 'unix:0'), (err) => isCode(err, 'CONFLICT') && /not waiting for confirmation/.test((err as Error).message));
  const held = svc.calls.length;
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(svc.calls.length <= held + 1, 'paused, it started no more than what was under way');
  await c.act('web', 'resume', 'unix:0');
  await until(c, 'web', (r) => r.updated >= 4);
  const rb = await c.act('web', 'rollback', 'unix:7');
  assert.ok(rb.state !== 'done');
  const r = await until(c, 'web', (x) => x.state === 'rolled-back');
  await c.settled('web');
  assert.ok([...svc.tasks.values()].every((x) => x.image === 'web:1' && x.state === 'running'));
  assert.equal(r.events.find((x) => x.type === 'rollback')!.user, 'unix:7');
});

test('a new leader resumes a release from etcd: no slot replaced twice, none skipped', async (t) => {
  const e = await etcd(t);
  const svc = new Service('web', 12, 'web:1');
  svc.behave = (slot) => ({ ms: slot % 3 === 0 ? 150 : 15 });
  const a = controller(t, e, svc, 'd');
  await a.start(req({ firstBatch: 2, window: 3, prePull: false }), 'unix:0');
  await until(a, 'web', (r) => r.state === 'waiting-confirm');
  await a.act('web', 'confirm', 'unix:0');
  // the leader goes away with slots in flight (their new tasks go on starting, as on the engines)
  await until(a, 'web', (r) => r.updated >= 4 && r.inFlight > 0);
  await a.stop();
  const b = controller(t, e, svc, 'd');
  await b.resumeAll();
  const r = await until(b, 'web', (x) => x.state === 'done');
  await b.settled('web');
  const perSlot = new Map<number, number>();
  for (const x of svc.calls) perSlot.set(x.slot, (perSlot.get(x.slot) ?? 0) + 1);
  assert.equal(perSlot.size, 12, 'every slot replaced');
  assert.ok([...perSlot.values()].every((n) => n === 1), `a slot replaced twice: ${JSON.stringify([...perSlot])}`);
  assert.equal(r.updated, 12);
  assert.ok(r.events.some((x) => x.type === 'resume'));
  assert.ok([...svc.tasks.values()].every((x) => x.image === 'web:2' && x.state === 'running'));
});

test('past the failure budget with pause: the release pauses; resume counts the budget again; then a rollback', async (t) => {
  const e = await etcd(t);
  const svc = new Service('web', 6, 'web:1');
  svc.behave = (_slot, image) => ({ ms: 5, fail: image === 'web:bad' });
  const c = controller(t, e, svc, 'e');
  await c.start(req({ image: 'web:bad', firstBatch: 1, window: 2, maxFailures: 1, failureAction: 'pause', prePull: false }), 'unix:0');
  const p1 = await until(c, 'web', (r) => r.state === 'paused');
  assert.ok(p1.failed >= 2);
  assert.ok(p1.events.some((x) => x.type === 'pause' && /past the budget/.test(x.message)));
  await assert.rejects(c.act('web', 'confirm', 'unix:0'), (err) => isCode(err, 'CONFLICT'));
  // the first batch has settled (its slot failed twice): resumed, it waits for the confirmation, then fails on
  await c.act('web', 'resume', 'unix:0');
  await until(c, 'web', (r) => r.state === 'waiting-confirm');
  await c.act('web', 'confirm', 'unix:0');
  const p2 = await until(c, 'web', (r) => r.state === 'paused' && r.failed > p1.failed);
  assert.ok(p2.failureBase! >= p1.failed);
  await c.act('web', 'rollback', 'unix:0');
  const r = await until(c, 'web', (x) => x.state === 'rolled-back');
  await c.settled('web');
  assert.ok([...svc.tasks.values()].every((x) => x.image === 'web:1' && x.state === 'running'));
  assert.equal(r.instances.length, 6);
});

test('a new leader starts a slot the last one wrote in flight but never replaced, and awaits one whose new task was starting', async (t) => {
  const e = await etcd(t);
  const svc = new Service('web', 4, 'web:1');
  // as the last leader left it: slots 1 ready, 2 written in flight and its new task starting, 3 written in flight
  // but never replaced (still web:1), 4 pending
  svc.tasks.set(1, { ...svc.tasks.get(1)!, image: 'web:2' });
  svc.tasks.set(2, { ...svc.tasks.get(2)!, image: 'web:2', state: 'starting' });
  const store = ClusterStore.connect(e.endpoints, 'f');
  t.after(() => store.close());
  const rs = new EtcdReleaseStore(store);
  const now = Date.now();
  const h = {
    id: 'r1', service: 'web', image: 'web:2', previousImage: 'web:1', state: 'running' as const, total: 4, updated: 1, failed: 0, inFlight: 2, stragglers: 0, prePulled: 0,
    policy: { kind: 'smart' as const, firstBatch: 1, window: 2, stragglerFactor: 3, maxFailures: 0, failureAction: 'pause' as const, prePull: false, order: 'stop-first' as const },
    batches: [{ n: 1, slots: 1, startedAt: new Date(now).toISOString() }], events: [], createdAt: new Date(now).toISOString(), confirmedBy: 'unix:0', confirmedAt: new Date(now).toISOString(),
  };
  const slot = (n: number, status: 'ready' | 'in-flight' | 'pending') => ({ slot: n, node: svc.tasks.get(n)!.node, status, attempts: status === 'pending' ? 0 : 1, oldGone: status === 'in-flight', avoid: [], image: 'web:2', phase: 'forward' as const, ...(status !== 'pending' && { startedAt: now, order: 'stop-first' as const }) });
  await rs.put(h, [slot(1, 'ready'), slot(2, 'in-flight'), slot(3, 'in-flight'), slot(4, 'pending')]);
  const c = controller(t, e, svc, 'f');
  await c.resumeAll();
  // slot 2's task becomes ready on its own (the engine went on starting it)
  setTimeout(() => (svc.tasks.get(2)!.state = 'running'), 50);
  const r = await until(c, 'web', (x) => x.state === 'done');
  await c.settled('web');
  assert.deepEqual(svc.calls.map((x) => x.slot).sort(), [3, 4]);
  assert.equal(r.updated, 4);
  assert.ok([...svc.tasks.values()].every((x) => x.image === 'web:2' && x.state === 'running'));
  assert.ok(r.events.some((x) => x.type === 'recover' && /3 had not started/.test(x.message)));
});

test('a release whose image services refuse fails at once and holds no later release off', async (t) => {
  const e = await etcd(t);
  const svc = new Service('web', 2, 'web:1');
  svc.setImage = async (_s, image) => {
    if (image === 'web:refused') throw new Error('invalid reference format');
    svc.images.push(image);
  };
  const c = controller(t, e, svc, 'g');
  await assert.rejects(c.start(req({ image: 'web:refused' })), /invalid reference format/);
  assert.equal((await c.current('web')).state, 'failed');
  assert.equal(svc.calls.length, 0);
  await c.start(req({ firstBatch: 2, prePull: false }), 'unix:0');
  assert.equal((await until(c, 'web', (r) => r.state === 'done')).updated, 2);
  await c.settled('web');
});

test('the service is claimed first and told every state; a failed preheat is an event, failed pre-pulls are not counted', async (t) => {
  const e = await etcd(t);
  class Told extends Service {
    readonly states: string[] = [];
    held?: string;
    async claim(_s: string, id: string): Promise<void> {
      if (this.held && this.held !== id) throw new Error('held');
      this.held = id;
    }
    async status(_s: string, id: string, state: string): Promise<void> {
      assert.equal(id, this.held);
      this.states.push(state);
    }
    async preheat(image: string): Promise<void> {
      throw new Error(`no scheduler for ${image}`);
    }
    override async prePull(node: string, image: string): Promise<void> {
      await super.prePull(node, image);
      if (node === 'h3') throw new Error('h3 cannot pull');
    }
  }
  const svc = new Told('web', 6, 'web:1');
  const c = controller(t, e, svc, 'told');
  const r0 = await c.start(req({ firstBatch: 1, window: 2, prePull: true }));
  assert.equal(svc.held, r0.id);
  await until(c, 'web', (r) => r.state === 'waiting-confirm');
  await c.act('web', 'confirm', 'unix:0');
  const done = await until(c, 'web', (r) => r.state === 'done');
  await c.settled('web');
  const types = done.events.map((x) => x.type);
  assert.ok(types.includes('preheat') && types.includes('preheat-failed'), types.join(', '));
  assert.ok(types.includes('pre-pull-failed'), types.join(', '));
  assert.equal(done.prePulled, new Set(svc.prePulls.map((p) => p.split(' ')[0])).size - 1, 'h3 failed: not counted');
  await until(c, 'web', () => svc.states.at(-1) === 'done');
  assert.deepEqual(svc.states.filter((s, i, a) => a.indexOf(s) === i), ['running', 'waiting-confirm', 'done']);
});

test('a removed service\'s release stops and its releases are deleted; nothing of it is written after', async (t) => {
  const e = await etcd(t);
  const svc = new Service('web', 6, 'web:1');
  svc.behave = () => ({ ms: 30 });
  const c = controller(t, e, svc, 'g');
  const gone: string[] = [];
  const seen: string[] = [];
  c.observe((r) => seen.push(r.service), (s) => gone.push(s));
  // one finished release in the history, one waiting with pre-pulls under way
  const release = async (image: string) => {
    await c.start(req({ image, firstBatch: 3, window: 3, prePull: false }), 'unix:0');
    await until(c, 'web', (r) => r.state === 'waiting-confirm');
    await c.act('web', 'confirm', 'unix:0');
    await until(c, 'web', (r) => r.state === 'done');
    await c.settled('web');
  };
  await release('web:2');
  await c.start(req({ image: 'web:3', firstBatch: 2, window: 2, prePull: true }), 'unix:0');
  await until(c, 'web', (r) => r.state === 'waiting-confirm');
  await c.forget('web');
  assert.deepEqual(gone, ['web']);
  const keys = async () => {
    const store = ClusterStore.connect(e.endpoints, 'g');
    try {
      return [...(await store.readAll('releases/')).keys(), ...(await store.readAll('release-slots/')).keys()];
    } finally {
      store.close();
    }
  };
  assert.deepEqual(await keys(), []);
  assert.deepEqual(await c.history('web'), []);
  await assert.rejects(c.current('web'), (err) => isCode(err, 'NOT_FOUND'));
  // the lazy header write and the pre-pulls' ends come after: they write nothing, and nobody is told the record again
  const told = seen.length;
  await new Promise((r) => setTimeout(r, 600));
  assert.deepEqual(await keys(), []);
  assert.equal(seen.length, told);
  // a new release of a service of that name starts with no history
  await release('web:4');
  assert.equal((await c.history('web')).length, 1);
});
