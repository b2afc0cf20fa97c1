/** The testbed's --registry: a registry every host and this machine reach, and a P2P peer per host as its engine's mirror. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { SAMPAN, runCmd, until } from '../harness.js';
import { TestCluster, running } from './harness.js';

let c: TestCluster;
before(async () => {
  c = await TestCluster.start(2, 'tbreg', { registry: true });
});
after(async () => {
  await c?.stop();
});

const onHost = (i: number, args: string[]) => runCmd('docker', args, { env: { DOCKER_HOST: `unix://${c.tb.hosts[i]!.socket}`, DOCKER_CLI_HINTS: 'false' }, timeoutMs: 90_000 });

/** A counter's samples in a Prometheus text page, summed over the ones whose labels contain `labels`. */
function counter(page: string, name: string, labels = ''): number {
  return page.split('\n').filter((l) => l.startsWith(name) && (l[name.length] === ' ' || l[name.length] === '{') && l.includes(labels)).reduce((a, l) => a + Number(l.split(' ').at(-1)), 0);
}

test('testbed.json names the registry, the scheduler and a peer per host, all reachable from this machine', async () => {
  const reg = c.tb.registry!;
  assert.match(reg.addr, /^10\.222\.\d+\.1:\d+$/);
  const v2 = await fetch(`http://${reg.addr}/v2/`);
  assert.equal(v2.status, 200);
  assert.equal((await fetch(`${c.tb.p2p!.scheduler}/healthz`)).status, 200);
  assert.deepEqual(c.tb.p2p!.peers.map((p) => p.host), ['host1', 'host2']);
  for (const p of c.tb.p2p!.peers) assert.equal((await fetch(`${p.api}/healthz`)).status, 200);
});

test('skopeo pushes without credentials; a pull through the manager reaches both hosts through their P2P peers', async () => {
  const reg = c.tb.registry!.addr;
  const archive = path.join(path.dirname(c.dir), 'busybox.tar');
  const saved = await onHost(0, ['save', 'busybox', '-o', archive]);
  assert.equal(saved.code, 0, saved.stderr);
  const pushed = await runCmd('skopeo', ['copy', '-q', '--dest-tls-verify=false', `docker-archive:${archive}`, `docker://${reg}/app:v1`], { timeoutMs: 90_000 });
  assert.equal(pushed.code, 0, pushed.stderr);
  const tags = (await (await fetch(`http://${reg}/v2/app/tags/list`)).json()) as { tags: string[] };
  assert.deepEqual(tags.tags, ['v1']);

  const pulled = await c.docker(['pull', `${reg}/app:v1`]);
  assert.equal(pulled.code, 0, pulled.stderr);
  for (const i of [0, 1]) assert.equal((await onHost(i, ['image', 'inspect', '-f', '{{.Id}}', `${reg}/app:v1`])).code, 0, `host${i + 1} has the image`);
  const ran = await c.docker(['run', '--rm', `${reg}/app:v1`, 'echo', 'through p2p']);
  assert.equal(ran.code, 0, ran.stderr);
  assert.equal(ran.stdout.trim(), 'through p2p');

  // the layer went through the peers: the registry sent it to one of them (the seed), the other got it from that one
  const pages = await Promise.all(c.tb.p2p!.peers.map(async (p) => (await fetch(`${p.api}/metrics`)).text()));
  const fromRegistry = pages.map((p) => counter(p, 'sampan_p2p_peer_bytes_received_total', 'source="upstream"'));
  const fromPeers = pages.map((p) => counter(p, 'sampan_p2p_peer_bytes_received_total', 'source="peer"'));
  const served = pages.map((p) => counter(p, 'sampan_p2p_peer_bytes_served_total'));
  assert.ok(fromRegistry.some((b) => b > 0), `bytes from the registry: ${fromRegistry.join(', ')}`);
  assert.ok(fromPeers.some((b) => b > 0), `bytes from peers: ${fromPeers.join(', ')}`);
  assert.ok(served.some((b) => b > 0), `bytes served to peers: ${served.join(', ')}`);
  // `sampan p2p status` on each peer shows the layer complete
  for (const p of c.tb.p2p!.peers) {
    const st = await runCmd(SAMPAN, ['p2p', 'status', '--peer', p.api, '--format', 'json']);
    assert.equal(st.code, 0, st.stderr);
    const blobs = JSON.parse(st.stdout) as Array<{ complete: boolean }>;
    assert.ok(blobs.some((b) => b.complete), `${p.host}: ${st.stdout}`);
  }
});

/** A JSON POST to the cluster's socket. */
function post(p: string, body: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: path.join(c.dir, 'cluster.sock'), method: 'POST', path: p, headers: { 'Content-Type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body: text }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

test('the manager preheats at the testbed P2P scheduler and pre-pulls on a node, which then counts as finished', async () => {
  const reg = c.tb.registry!.addr;
  const copied = await runCmd('skopeo', ['copy', '-q', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${reg}/app:v1`, `docker://${reg}/app:v2`], { timeoutMs: 90_000 });
  assert.equal(copied.code, 0, copied.stderr);
  const heat = await post('/sampan/v1/preheat', { image: `${reg}/app:v2` });
  assert.equal(heat.status, 200, heat.body);
  assert.equal((JSON.parse(heat.body) as { state: string }).state, 'done');

  const image = `${reg}/app:v2`;
  assert.equal(JSON.parse((await c.get(`/sampan/v1/prepull?node=host2&image=${encodeURIComponent(image)}`)).body).state, 'none');
  const pulled = await post('/sampan/v1/prepull', { node: 'host2', image });
  assert.equal(pulled.status, 200, pulled.body);
  assert.equal(JSON.parse(pulled.body).state, 'done');
  assert.equal(JSON.parse((await c.get(`/sampan/v1/prepull?node=host2&image=${encodeURIComponent(image)}`)).body).state, 'done');
  assert.equal((await onHost(1, ['image', 'inspect', '-f', '{{.Id}}', image])).code, 0, 'host2 has app:v2');
  assert.equal((await onHost(0, ['image', 'inspect', '-f', '{{.Id}}', image])).code, 1, 'host1 was not asked to pull');
  assert.match((await c.get('/metrics')).body, /^sampan_cluster_prepull_started_total 1$/m);
  assert.equal((await post('/sampan/v1/prepull', { node: 'nobody', image })).status, 404);
  assert.equal((await post('/sampan/v1/prepull', { image })).status, 400);
});

test('docker stop through the manager runs the container pre-stop hook before its stop signal', async () => {
  const image = `${c.tb.registry!.addr}/app:v1`;
  const main = 'trap "echo term; exit 0" TERM; echo up; while true; do sleep 0.1; done';
  const run = await c.docker(['run', '-d', '--name', 'hooked', '--label', 'com.sampan.pre-stop=echo hook > /proc/1/fd/1', image, 'sh', '-c', main]);
  assert.equal(run.code, 0, run.stderr);
  await until(async () => (await c.docker(['logs', 'hooked'])).stdout.includes('up'));
  const stop = await c.docker(['stop', 'hooked']);
  assert.equal(stop.code, 0, stop.stderr);
  assert.equal((await c.docker(['logs', 'hooked'])).stdout, 'up\nhook\nterm\n');
  assert.equal((await c.docker(['inspect', '-f', '{{.State.ExitCode}}', 'hooked'])).stdout.trim(), '0');
});

test('teardown stops the registry, the scheduler and the peers and leaves no namespace behind', async () => {
  const pids = [c.tb.registry!.pid, c.tb.p2p!.pid, ...c.tb.p2p!.peers.map((p) => p.pid)];
  const netns = c.tb.hosts.map((h) => h.netns);
  await c.stop();
  for (const pid of pids) assert.equal(await running(pid), false, `pid ${pid} still runs`);
  for (const ns of netns) assert.equal(await fs.stat(`/run/netns/${ns}`).then(() => true, () => false), false, `${ns} is left`);
});
