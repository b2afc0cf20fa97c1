/**
 * The REST routes and the `sampan release` CLI end to end: the routes on the Docker API server the manager uses
 * (its error mapping), the controller over a real etcd, a service of our own behind ReleaseOps, the real CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { DockerApiServer, type Backends } from '../../docker-api/index.js';
import { createLogger } from '../../lib/log.js';
import { runCmd, SAMPAN } from '../../../test/harness.js';
import { EtcdCluster } from '../etcd.js';
import { ClusterStore } from '../store.js';
import { ReleaseController } from './controller.js';
import type { ReleaseInstance, ReleaseOps, ReplaceResult } from './ops.js';
import type { ReleaseHeader, ReleaseRecord } from './record.js';
import { releaseRoutes } from './routes.js';
import { EtcdReleaseStore } from './store.js';

const log = createLogger('release-routes-test', 'silent');

/** Instances in memory; a new task is ready `ms` after its replacement starts, and `bad` images fail. */
class Service implements ReleaseOps {
  readonly tasks = new Map<number, ReleaseInstance>();
  constructor(readonly name: string, n: number, image: string, private readonly ms = 10) {
    for (let i = 1; i <= n; i++) this.tasks.set(i, { slot: i, taskId: `t${i}`, node: `h${i % 3}`, image, state: 'running' });
  }
  instances(service: string): ReleaseInstance[] {
    return service === this.name ? [...this.tasks.values()].map((t) => ({ ...t })) : [];
  }
  async replace(_s: string, slot: number, image: string): Promise<ReplaceResult> {
    const t: ReleaseInstance = { ...this.tasks.get(slot)!, image, state: 'starting' };
    this.tasks.set(slot, t);
    await new Promise((r) => setTimeout(r, this.ms));
    const ok = !image.includes('bad');
    t.state = ok ? 'running' : 'failed';
    return { ok, node: t.node, startMs: this.ms, ...(!ok && { error: 'exec format error' }) };
  }
  async prePull(): Promise<void> {}
  async setImage(): Promise<void> {}
}

async function serve(t: { after(fn: () => Promise<void> | void): void }): Promise<{ sock: string; svc: Service }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sprelr-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const etcd = await EtcdCluster.start({ dir: path.join(dir, 'etcd') });
  t.after(() => etcd.stop());
  const store = ClusterStore.connect(etcd.endpoints, 'r');
  const svc = new Service('web', 6, 'web:1');
  const c = new ReleaseController(svc, new EtcdReleaseStore(store), log, { watchMs: 10 });
  // only the release routes are asked for here: the Docker backends are not
  const api = new DockerApiServer({} as Backends, log, 'sampan_test_');
  releaseRoutes((m, p, h) => api.route(m, p, h), c);
  const sock = path.join(dir, 'api.sock');
  await api.listen([`unix://${sock}`]);
  t.after(async () => {
    await c.stop();
    await api.close(500);
    store.close();
  });
  return { sock, svc };
}

/** Asks again until `pred` holds (bounded, so that a release that never gets there fails instead of hanging). */
async function poll<T>(get: () => Promise<T>, pred: (v: T) => boolean): Promise<T> {
  for (const end = Date.now() + 60_000; ;) {
    const v = await get();
    if (pred(v)) return v;
    if (Date.now() > end) assert.fail(`never got there: ${JSON.stringify(v).slice(0, 500)}`);
  }
}

function call(sock: string, method: string, p: string, body?: unknown): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: sock, method, path: p, headers: { 'Content-Type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

test('REST: 201 on start, 409 for a second release and for a confirm that is not awaited, 400 for bad input, 404 for none; history newest first', async (t) => {
  const { sock } = await serve(t);
  assert.equal((await call(sock, 'POST', '/sampan/v1/releases', { service: 'web' })).status, 400);
  assert.equal((await call(sock, 'POST', '/sampan/v1/releases', { service: 'web', image: 'web:2', window: 0 })).status, 400);
  assert.equal((await call(sock, 'POST', '/sampan/v1/releases', { service: 'web', image: 'web:2', colour: 'red' })).status, 400);
  assert.equal((await call(sock, 'GET', '/sampan/v1/releases/none')).status, 404);
  assert.equal((await call(sock, 'POST', '/sampan/v1/releases', { service: 'none', image: 'x:1' })).status, 404);
  const started = await call(sock, 'POST', '/sampan/v1/releases', { service: 'web', image: 'web:2', firstBatch: 2, window: 2, user: 'unix:1000' });
  assert.equal(started.status, 201);
  const rec = started.json as ReleaseRecord;
  assert.equal(rec.service, 'web');
  assert.equal(rec.previousImage, 'web:1');
  assert.equal(rec.instances.length, 6);
  assert.equal(rec.events[0]!.user, 'unix:1000');
  const again = await call(sock, 'POST', '/sampan/v1/releases', { service: 'web', image: 'web:3' });
  assert.equal(again.status, 409);
  assert.match(again.json.message, /already in progress/);
  const rec$ = async () => (await call(sock, 'GET', '/sampan/v1/releases/web')).json as ReleaseRecord;
  await poll(rec$, (r) => r.state === 'waiting-confirm');
  assert.equal((await call(sock, 'POST', '/sampan/v1/releases/web/frobnicate')).status, 400);
  const ok = await call(sock, 'POST', '/sampan/v1/releases/web/confirm', { user: 'unix:42' });
  assert.equal(ok.status, 200);
  assert.equal(ok.json.confirmedBy, 'unix:42');
  const twice = await call(sock, 'POST', '/sampan/v1/releases/web/confirm', {});
  assert.equal(twice.status, 409);
  assert.match(twice.json.message, /not waiting for confirmation/);
  await poll(rec$, (r) => r.state === 'done');
  const second = await call(sock, 'POST', '/sampan/v1/releases', { service: 'web', image: 'web:3', firstBatch: 6 });
  assert.equal(second.status, 201);
  await poll(rec$, (r) => r.state === 'done');
  const hist = (await call(sock, 'GET', '/sampan/v1/releases?service=web')).json as ReleaseHeader[];
  assert.deepEqual(hist.map((h) => h.image), ['web:3', 'web:2']);
  assert.equal((await call(sock, 'GET', '/sampan/v1/releases')).json.length, 2);
});

test('CLI: start, status with --format json, confirm, status followed to the end, ls; a failing image rolls back and status says so', async (t) => {
  const { sock, svc } = await serve(t);
  const sampan = (...args: string[]) => runCmd(SAMPAN, ['-H', `unix://${sock}`, ...args], { timeoutMs: 60_000 });
  const start = await sampan('release', 'start', 'web', 'web:2', '--first-batch', '2', '--window', '3', '--format', 'json');
  assert.equal(start.code, 0, start.stderr);
  assert.equal((JSON.parse(start.stdout) as ReleaseRecord).image, 'web:2');
  const dup = await sampan('release', 'start', 'web', 'web:9');
  assert.notEqual(dup.code, 0);
  assert.match(dup.stderr, /already in progress/);
  await poll(async () => JSON.parse((await sampan('release', 'status', 'web', '--no-follow', '--format', 'json')).stdout) as ReleaseRecord, (r) => r.state === 'waiting-confirm');
  const confirm = await sampan('release', 'confirm', 'web');
  assert.equal(confirm.code, 0, confirm.stderr);
  assert.match(confirm.stdout, /release .* of web: running/);
  assert.match(JSON.parse((await sampan('release', 'status', 'web', '--no-follow', '--format', 'json')).stdout).confirmedBy, /^unix:\d+$/);
  const follow = await sampan('release', 'status', 'web');
  assert.equal(follow.code, 0, follow.stderr);
  assert.match(follow.stdout, /done, 6\/6 on web:2/);
  const notWaiting = await sampan('release', 'confirm', 'web');
  assert.equal(notWaiting.code, 1);
  assert.match(notWaiting.stderr, /is done: there is nothing to confirm/);
  const ls = await sampan('release', 'ls');
  assert.match(ls.stdout, /ID\s+SERVICE\s+STATE/);
  assert.match(ls.stdout, /web\s+done\s+web:2\s+web:1\s+6\/6/);
  // an image that cannot start: the budget (0) is passed at once and the release rolls back by itself
  const bad = await sampan('release', 'start', 'web', 'web:bad', '--first-batch', '1', '--failure-action', 'rollback');
  assert.equal(bad.code, 0, bad.stderr);
  const end = await sampan('release', 'status', 'web', '--format', 'json');
  assert.equal(end.code, 1);
  // followed: a JSON line per change; already ended: the record once
  const text = end.stdout.trim();
  const last = (text.startsWith('{\n') ? JSON.parse(text) : JSON.parse(text.split('\n').at(-1)!)) as ReleaseRecord;
  assert.equal(last.state, 'rolled-back');
  assert.ok([...svc.tasks.values()].every((x) => x.image === 'web:2' && x.state === 'running'));
});
