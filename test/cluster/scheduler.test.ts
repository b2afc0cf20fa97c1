/**
 * The scheduler's filters on a 3-host testbed, driven by the real docker CLI through the manager: affinity and
 * anti-affinity to a container, to an image and as Swarm's label; host-port conflicts, single and in a batch; a
 * strategy label; then the manager restarted with --scheduler-url, an external scheduler (an HTTP server here)
 * deciding the node, and a broken one failing the create with an error that names it.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { SAMPAN, runCmd, until } from '../harness.js';
import { TestCluster } from './harness.js';

interface ExternalBody {
  request: { image: string; constraints: string[]; affinities: string[]; ports: string[] };
  count: number;
  candidates: Array<{ id: string; name: string }>;
}

describe('cluster scheduler: affinities, host ports, strategies and an external scheduler on 3 hosts', () => {
  let c: TestCluster;
  let manager: ChildProcess | undefined;
  let external: http.Server | undefined;
  const docker = (args: string[]) => c.docker(args);
  const nodeOf = async (name: string) => (await docker(['inspect', '-f', '{{.Node.Name}}', name])).stdout.trim();
  const run = async (name: string, ...args: string[]) => {
    const r = await docker(['run', '-d', '--name', name, ...args, 'busybox', 'sleep', '600']);
    assert.equal(r.code, 0, r.stderr);
    return nodeOf(name);
  };
  const names = async (filter: string) => (await docker(['ps', '-a', '--format', '{{.Names}}', '--filter', filter])).stdout.split('\n').filter(Boolean);
  /** A POST on the manager's socket. */
  const post = (p: string, body: object) => new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request({ socketPath: path.join(c.dir, 'cluster.sock'), path: p, method: 'POST', headers: { 'Content-Type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body: text }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });

  before(async () => {
    c = await TestCluster.start(3, 'spsc');
  });

  after(async () => {
    if (manager && manager.exitCode === null) {
      const gone = new Promise((r) => manager!.once('exit', r));
      manager.kill('SIGTERM');
      await gone;
    }
    external?.close();
    await c?.stop();
  });

  test('affinity to a container lands on its node, anti-affinity avoids it; Swarm\'s affinities label does the same and the engine gets neither', async () => {
    assert.equal(await run('web', '-e', 'constraint:node==host2'), 'host2');
    assert.equal(await run('near', '-e', 'affinity:container==web'), 'host2');
    assert.equal(await run('near2', '-l', 'com.docker.swarm.affinities=["container==web"]'), 'host2');
    // a soft affinity to near would pull them to host2: the anti-affinity wins
    for (const n of ['far1', 'far2', 'far3']) assert.notEqual(await run(n, '-e', 'affinity:container!=web', '-e', 'affinity:container==~near'), 'host2');
    const seen = (await docker(['inspect', '-f', '{{json .Config.Env}} {{json .Config.Labels}}', 'near2'])).stdout;
    assert.doesNotMatch(seen, /affinit/);
    assert.doesNotMatch((await docker(['inspect', '-f', '{{json .Config.Env}}', 'near'])).stdout, /affinity:/);
    // soft: preferred where it can be met, ignored where it cannot
    assert.equal(await run('soft1', '-e', 'affinity:container==~web'), 'host2');
    assert.ok(['host1', 'host2', 'host3'].includes(await run('soft2', '-e', 'affinity:container==~no-such')));
    const hard = await docker(['run', '-d', '--name', 'hard', '-e', 'affinity:container==no-such', 'busybox', 'sleep', '600']);
    assert.notEqual(hard.code, 0);
    assert.match(hard.stderr, /unable to find a node that satisfies the affinity container==no-such/);
    assert.deepEqual(await names('name=hard'), []);
  });

  test('image affinity follows the images each node reports', async () => {
    const host3 = c.tb.hosts.find((h) => h.name === 'host3')!;
    const tag = await runCmd('docker', ['tag', 'busybox', 'only-on-3:v1'], { env: { DOCKER_HOST: `unix://${host3.socket}` } });
    assert.equal(tag.code, 0, tag.stderr);
    // the node reports its images at its next heartbeat: until then no node has the tag
    await until(async () => (await docker(['run', '-d', '--name', 'img1', '-e', 'affinity:image==only-on-3:v1', 'busybox', 'sleep', '600'])).code === 0, 30_000, 500);
    assert.equal(await nodeOf('img1'), 'host3');
    assert.equal(await run('img2', '-l', 'com.docker.swarm.affinities=["image==only-on-*"]'), 'host3');
    for (const n of ['noimg1', 'noimg2']) assert.notEqual(await run(n, '-e', 'affinity:image!=only-on-3:v1', '-e', 'affinity:container==~img1'), 'host3');
  });

  test('a container publishing a host port in use on a node goes elsewhere; 4 replicas with one fixed port on 3 hosts are a 409 and create nothing', async () => {
    assert.equal(await run('p1', '-p', '8080:80', '-e', 'constraint:node==host1'), 'host1');
    // pulled to p1's node by a soft affinity, pushed off it by the port
    assert.equal(await run('p2', '-p', '8080:80', '-e', 'constraint:node!=host3', '-e', 'affinity:container==~p1'), 'host2');
    const none = await docker(['run', '-d', '--name', 'p3', '-p', '8080:80', '-e', 'constraint:node!=host3', 'busybox', 'sleep', '600']);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /unable to find a node with port 8080\/tcp available/);

    const config = { Image: 'busybox', Cmd: ['sleep', '600'], ExposedPorts: { '80/tcp': {} }, HostConfig: { PortBindings: { '80/tcp': [{ HostPort: '9090' }] } } };
    const r = await post('/sampan/v1/batches', { prefix: 'pb', replicas: 4, config });
    assert.equal(r.status, 409, r.body);
    assert.match(r.body, /only 3 of 4 replicas can be placed: each publishes port 9090\/tcp, free on 3 nodes/);
    assert.deepEqual(await names('name=pb-'), []);
    // 3 fit: one per node
    const ok = await c.sampan(['run', '-d', '--replicas', '3', '--name', 'pb', '-p', '9090:80', 'busybox', 'sleep', '600']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /3 of 3 replicas running.*per node: host1 1, host2 1, host3 1/);
  });

  test('the strategy label picks binpack for one create', async () => {
    const nodes = JSON.parse((await c.get('/sampan/v1/nodes')).body) as Array<{ name: string; containers: number }>;
    const fullest = nodes.reduce((a, n) => (n.containers > a.containers ? n : a));
    const emptiest = nodes.reduce((a, n) => (n.containers < a.containers ? n : a));
    assert.ok(fullest.containers > emptiest.containers, JSON.stringify(nodes));
    assert.equal(await run('packed', '-l', 'com.sampan.scheduler.strategy=binpack'), fullest.name);
    const bad = await docker(['run', '-d', '-l', 'com.sampan.scheduler.strategy=fastest', 'busybox', 'true']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /com\.sampan\.scheduler\.strategy: one of spread, binpack, random/);
  });

  test('creates sent at once see each other: spread evens the nodes out as one after the other would', async () => {
    const perNode = async () => {
      const out: Record<string, number> = { host1: 0, host2: 0, host3: 0 };
      for (const n of (await docker(['ps', '-a', '--format', '{{.Names}}'])).stdout.split('\n').filter(Boolean)) out[n.split('/')[0]!]!++;
      return out;
    };
    const before = await perNode();
    const top = Math.max(...Object.values(before));
    const N = 30;
    assert.ok(Object.values(before).reduce((s, v) => s + top - v, 0) <= N, `30 creates can even out ${JSON.stringify(before)}`);
    const create = (i: number) => new Promise<number>((resolve, reject) => {
      const body = JSON.stringify({ Image: 'busybox', Cmd: ['sleep', '600'] });
      const req = http.request({ socketPath: path.join(c.dir, 'cluster.sock'), method: 'POST', path: `/containers/create?name=conc-${i}`, headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      });
      req.on('error', reject);
      req.end(body);
    });
    assert.deepEqual(await Promise.all(Array.from({ length: N }, (_, i) => create(i))), Array(N).fill(201));
    const after = await perNode();
    assert.ok(Math.max(...Object.values(after)) - Math.min(...Object.values(after)) <= 1, `before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`);
  });

  test('a pull goes to every node, or with constraint= to those that meet it; one that no node meets is a 409', async () => {
    const pull = async (query: string) => {
      const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request({ socketPath: path.join(c.dir, 'cluster.sock'), method: 'POST', path: `/images/create?fromImage=127.0.0.1:9/nothing&tag=latest${query}` }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        });
        req.on('error', reject);
        req.end();
      });
      // the nodes that answered: each progress line is tagged with its node's name
      const lines = r.body.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { id?: string; error?: string });
      return { status: r.status, nodes: [...new Set(lines.map((l) => l.id?.split(':')[0]).filter(Boolean))].sort(), error: lines.at(-1)?.error ?? r.body };
    };
    const all = await pull('');
    assert.deepEqual(all.nodes, ['host1', 'host2', 'host3']);
    assert.match(all.error, /the pull failed on 3 of 3 nodes/);
    const one = await pull(`&constraint=${encodeURIComponent('node==host2')}`);
    assert.deepEqual(one.nodes, ['host2']);
    assert.match(one.error, /the pull failed on 1 of 1 nodes/);
    const none = await pull(`&constraint=${encodeURIComponent('zone==mars')}`);
    assert.equal(none.status, 409);
    assert.match(none.error, /no node that is up meets zone==mars/);
  });

  test('with --scheduler-url the external scheduler decides among the filtered nodes; a broken one fails the create naming it, nothing created', async () => {
    const got: ExternalBody[] = [];
    let mode: 'last' | 'unknown' | 'hang' = 'last';
    external = http.createServer((req, res) => {
      let text = '';
      req.on('data', (d: Buffer) => (text += d.toString()));
      req.on('end', () => {
        const b = JSON.parse(text) as ExternalBody;
        got.push(b);
        if (mode === 'hang') return;
        const placements = mode === 'last' ? Array(b.count).fill(b.candidates.at(-1)!.id) : Array(b.count).fill('no-such-node');
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ placements }));
      });
    });
    await new Promise<void>((r) => external!.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(external.address() as AddressInfo).port}/place`;

    // the manager restarted with the flag: the engines rejoin it
    const m1 = { ...c.tb.managers[0]!, socket: c.tb.managers[0]!.socket! };
    process.kill(m1.pid, 'SIGTERM');
    await until(async () => {
      try {
        process.kill(m1.pid, 0);
        return false;
      } catch {
        return true;
      }
    }, 30_000);
    manager = spawn(SAMPAN, [
      'cluster', 'manager', '--etcd', c.tb.etcd.endpoints.join(','), '--listen', `unix://${m1.socket}`, '--node-listen', `unix://${path.join(path.dirname(m1.socket), 'node.sock')}`,
      '--name', 'testbed', '--heartbeat', '1000', '--scheduler-url', url, '--scheduler-timeout', '1000',
    ], { stdio: 'ignore' });
    await until(async () => {
      const r = await c.get('/sampan/v1/nodes').catch(() => undefined);
      return r?.status === 200 && (JSON.parse(r.body) as Array<{ state: string; images: number }>).filter((n) => n.state === 'up' && n.images > 0).length === 3;
    }, 60_000, 300);

    const candidates = (b: ExternalBody) => b.candidates.map((n) => n.name).sort();
    const placed = await run('ext1', '-e', 'constraint:node!=host1');
    const sent = got.at(-1)!;
    assert.equal(placed, sent.candidates.at(-1)!.name);
    assert.deepEqual(candidates(sent), ['host2', 'host3']);
    assert.equal(sent.count, 1);
    assert.equal(sent.request.image, 'busybox');
    assert.deepEqual(sent.request.constraints, ['node!=host1']);
    // the filters run first: port 8080 is taken on host1 and host2
    assert.equal(await run('ext2', '-p', '8080:80'), 'host3');
    assert.deepEqual(candidates(got.at(-1)!), ['host3']);

    mode = 'unknown';
    const bad = await docker(['run', '-d', '--name', 'ext3', 'busybox', 'sleep', '600']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, new RegExp(`the external scheduler ${url} placed a replica on "no-such-node", which is not one of the candidates`));
    mode = 'hang';
    const slow = await docker(['run', '-d', '--name', 'ext4', 'busybox', 'sleep', '600']);
    assert.notEqual(slow.code, 0);
    assert.match(slow.stderr, /the external scheduler .* did not answer within 1000 ms/);
    assert.deepEqual([...await names('name=ext3'), ...await names('name=ext4')], []);
  });
});
