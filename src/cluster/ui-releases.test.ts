/**
 * The stream's `releases` topic over a real controller and etcd: every record change of every service lands in it
 * (no per-service watch), and a manager that starts to lead reads each service's last release from etcd.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../lib/log.js';
import { EtcdCluster } from './etcd.js';
import { ClusterStore } from './store.js';
import { EtcdReleaseStore, ReleaseController, validateRelease, type ReleaseInstance, type ReleaseOps, type ReplaceResult } from './release/index.js';
import { ReleaseTopic } from './ui-releases.js';

const log = createLogger('ui-releases-test', 'silent');

/** A service of our own: each slot's new task is ready at once. */
class Service implements ReleaseOps {
  readonly tasks = new Map<number, ReleaseInstance>();
  constructor(readonly name: string, n: number, image: string) {
    for (let i = 1; i <= n; i++) this.tasks.set(i, { slot: i, taskId: `t${i}`, node: `h${i}`, image, state: 'running' });
  }
  instances(service: string): ReleaseInstance[] {
    return service === this.name ? [...this.tasks.values()].map((t) => ({ ...t })) : [];
  }
  async replace(_s: string, slot: number, image: string): Promise<ReplaceResult> {
    const t = { ...this.tasks.get(slot)!, image, taskId: `${slot}-${image}` };
    this.tasks.set(slot, t);
    return { ok: true, node: t.node, taskId: t.taskId, startMs: 1 };
  }
  async prePull(): Promise<void> {}
  async setImage(): Promise<void> {}
}

async function until(pred: () => boolean | Promise<boolean>, what: string): Promise<void> {
  // a bound on a wait, not a timing assertion
  for (const end = Date.now() + 30_000; !(await pred());) {
    if (Date.now() > end) assert.fail(`never: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('the topic carries every service\'s latest record as it changes, and a new leader reads them from etcd', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'spuirel-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const e = await EtcdCluster.start({ dir, members: 1 });
  t.after(() => e.stop());
  const store = ClusterStore.connect(e.endpoints, 'a');
  t.after(() => store.close());
  const web = new Service('web', 3, 'web:1');
  const ops: ReleaseOps = {
    instances: (s) => (s === 'web' ? web : api).instances(s),
    replace: (s, slot, image) => (s === 'web' ? web : api).replace(s, slot, image),
    prePull: async () => undefined,
    setImage: async () => undefined,
  };
  const api = new Service('api', 2, 'api:1');
  const c = new ReleaseController(ops, new EtcdReleaseStore(store), log, { pollMs: 20, watchMs: 10 });
  t.after(() => c.stop());
  const topic = new ReleaseTopic(c, log);
  const states = (s: string) => [...topic.read()].find((r) => r.service === s)?.state;

  await c.start(validateRelease({ service: 'web', image: 'web:2', firstBatch: 1, prePull: false }), 'unix:0');
  await c.start(validateRelease({ service: 'api', image: 'api:2', firstBatch: 1, prePull: false }), 'unix:0');
  await until(() => states('web') === 'waiting-confirm' && states('api') === 'waiting-confirm', 'both wait for a confirmation in the topic');
  const waiting = [...topic.read()].find((r) => r.service === 'web')!;
  assert.equal(waiting.instances.length, 3);
  assert.equal(waiting.updated, 1);
  await c.act('web', 'confirm', 'unix:1000');
  await until(() => states('web') === 'done', 'web done in the topic');
  await c.act('api', 'rollback', 'unix:1000');
  await until(() => states('api') === 'rolled-back', 'api rolled back in the topic');
  await c.settled('web');
  await c.settled('api');
  const done = [...topic.read()].find((r) => r.service === 'web')!;
  assert.equal(done.updated, 3);
  assert.equal(done.confirmedBy, 'unix:1000');
  topic.close();

  // another manager's topic, seeded as it starts to lead
  const c2 = new ReleaseController(ops, new EtcdReleaseStore(store), log);
  const seeded = new ReleaseTopic(c2, log);
  await seeded.seed();
  assert.deepEqual([...seeded.read()].map((r) => `${r.service} ${r.state} ${r.instances.length}`).sort(), ['api rolled-back 2', 'web done 3']);
  seeded.close();
});
