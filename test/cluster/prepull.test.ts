/** The manager's pre-puller over a real engine and a real registry: caps per host and per registry, one pull per node and image, status, metrics. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { Registry } from 'prom-client';
import { EngineClient } from '../../src/lib/engine-client.js';
import { silentLogger } from '../../src/lib/log.js';
import { PrePuller, type PrePullStatus } from '../../src/cluster/prepull.js';
import { ClusterState, type NodeEntry } from '../../src/cluster/state.js';
import type { NodeImage } from '../../src/lib/node-protocol.js';
import { SAMPAN, TestEngine, freePort, until } from '../harness.js';

let e: TestEngine;
let registry: ChildProcess;
let reg: string;
const images = ['a', 'b', 'c', 'd'];

before(async () => {
  e = await TestEngine.start();
  const port = await freePort();
  reg = `127.0.0.1:${port}`;
  registry = spawn(SAMPAN, ['registry', '--root', path.join(e.dir, 'registry'), '--addr', reg], { stdio: 'ignore' });
  await until(async () => (await fetch(`http://${reg}/v2/`).then((r) => r.status, () => 0)) === 200, 20_000);
  // images of a layer of their own each, in the registry and not on the engine: a pull downloads that layer
  for (const x of images) {
    assert.equal((await e.docker(['run', '--name', `mk${x}`, 'busybox', 'sh', '-c', `head -c 200000 /dev/urandom > /${x}`])).code, 0);
    assert.equal((await e.docker(['commit', `mk${x}`, `${reg}/${x}:1`])).code, 0);
    const pushed = await e.docker(['push', `${reg}/${x}:1`]);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.equal((await e.docker(['rm', `mk${x}`])).code, 0);
    assert.equal((await e.docker(['rmi', `${reg}/${x}:1`])).code, 0);
  }
});
after(async () => {
  registry?.kill('SIGTERM');
  await e?.cleanup();
});

/** The engine's images as its agent reports them to the manager (the node protocol's `images`). */
async function report(state: ClusterState, n: NodeEntry): Promise<void> {
  const list = JSON.parse((await e.api('GET', '/images/json')).body.toString()) as NodeImage[];
  state.setNodeImages(n, list.map((i) => ({ Id: i.Id, RepoTags: i.RepoTags ?? [] })));
}

/** Nodes named n1… whose API is the test's engine. */
function cluster(names: string[]): { state: ClusterState; nodes: NodeEntry[] } {
  const state = new ClusterState();
  const nodes = names.map((name) => state.upsertNode({ id: `id-${name}`, name, labels: {}, api: `unix://${e.sock}`, addr: '', capacity: { ncpu: 1, memTotal: 0 }, version: '', joinedAt: new Date().toISOString(), state: 'up' }));
  return { state, nodes };
}

const clientOf = () => (n: NodeEntry) => new EngineClient({ host: n.rec.api });

/** The most pre-pulls in state `pulling` at once, per key, from the pre-puller's change reports. */
function watchPulling(p: PrePuller, keyOf: (s: PrePullStatus) => string): () => number {
  const pulling = new Map<string, Set<string>>();
  let max = 0;
  p.onChange = (s) => {
    const k = keyOf(s);
    const set = pulling.get(k) ?? pulling.set(k, new Set()).get(k)!;
    if (s.state === 'pulling') set.add(`${s.node} ${s.image}`);
    else set.delete(`${s.node} ${s.image}`);
    max = Math.max(max, set.size);
  };
  return () => max;
}

async function removeImages(xs: string[]): Promise<void> {
  for (const x of xs) await e.docker(['rmi', `${reg}/${x}:1`]);
}

test('at most N pulls per host at once; two calls for one node and image share one pull; a pulled image is finished', async () => {
  const { state } = cluster(['n1']);
  const p = new PrePuller(state, clientOf(), silentLogger, { perHost: 1, perRegistry: 10 });
  const metrics = new Registry();
  p.register(metrics);
  const maxPulling = watchPulling(p, (s) => s.node);
  const first = p.prePull('n1', `${reg}/a:1`);
  assert.equal(p.prePull('n1', `${reg}/a:1`), first, 'the second call shares the first pull');
  const all = [first, p.prePull('n1', `${reg}/b:1`), p.prePull('n1', `${reg}/c:1`)];
  assert.equal(p.status('n1', `${reg}/c:1`).state, 'queued');
  await Promise.all(all);
  assert.equal(maxPulling(), 1);
  for (const x of ['a', 'b', 'c']) {
    const s = p.status('n1', `${reg}/${x}:1`);
    assert.equal(s.state, 'done');
    assert.ok((s.bytes ?? 0) > 0, `bytes of ${x}: ${s.bytes}`);
    assert.equal(p.finished('n1', `${reg}/${x}:1`), true);
    assert.equal((await e.docker(['image', 'inspect', `${reg}/${x}:1`])).code, 0, `the engine has ${x}`);
  }
  assert.equal(p.finished('n1', `${reg}/d:1`), false);
  assert.equal(p.status('n1', `${reg}/d:1`).state, 'none');
  const text = await metrics.metrics();
  assert.match(text, /^sampan_cluster_prepull_started_total 3$/m);
  assert.match(text, /^sampan_cluster_prepull_done_total\{how="pulled"\} 3$/m);
  assert.match(text, /^sampan_cluster_prepull_in_flight\{state="pulling"\} 0$/m);
  assert.match(text, /^sampan_cluster_prepull_bytes_total [1-9]\d*$/m);
  await removeImages(['a', 'b', 'c']);
});

test('at most M pulls per registry over all hosts', async () => {
  const { state } = cluster(['n1', 'n2', 'n3']);
  const p = new PrePuller(state, clientOf(), silentLogger, { perHost: 4, perRegistry: 2 });
  const maxPulling = watchPulling(p, () => 'registry');
  await Promise.all(['n1', 'n2', 'n3'].flatMap((n) => ['a', 'b'].map((x) => p.prePull(n, `${reg}/${x}:1`))));
  assert.equal(maxPulling(), 2);
  await removeImages(['a', 'b']);
});

test('a node that reports the image is done at once, with no pull; a failed pull is reported and tried again on the next call', async () => {
  const { state, nodes } = cluster(['n1']);
  await report(state, nodes[0]!);
  const p = new PrePuller(state, clientOf(), silentLogger, { perHost: 1, perRegistry: 1 });
  const metrics = new Registry();
  p.register(metrics);
  await p.prePull('n1', 'busybox');
  assert.equal(p.status('n1', 'busybox:latest').state, 'done');
  assert.match(await metrics.metrics(), /^sampan_cluster_prepull_started_total 0$/m);

  await assert.rejects(p.prePull('n1', `${reg}/nope:1`));
  const s = p.status('n1', `${reg}/nope:1`);
  assert.equal(s.state, 'failed');
  assert.ok(s.error);
  assert.match(await metrics.metrics(), /^sampan_cluster_prepull_failed_total 1$/m);
  await assert.rejects(p.prePull('n1', `${reg}/nope:1`));
  assert.match(await metrics.metrics(), /^sampan_cluster_prepull_failed_total 2$/m);
  await assert.rejects(p.prePull('nobody', 'busybox'), /No such node/);
  await assert.rejects(p.prePull('n1', 'Not A Reference'), /invalid reference/);
  await assert.rejects(p.preheat('busybox'), /no P2P scheduler/);
  // a scheduler that cannot be reached is UNAVAILABLE (503 at the manager's edge), not an internal error
  const gone = new PrePuller(state, clientOf(), silentLogger, { perHost: 1, perRegistry: 1, p2pScheduler: `http://127.0.0.1:${await freePort()}` });
  await assert.rejects(gone.preheat('busybox'), (err: { code?: string }) => err.code === 'UNAVAILABLE');
});
