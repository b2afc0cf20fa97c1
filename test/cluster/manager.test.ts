/**
 * The cluster manager on a 3-host testbed, driven by the real docker CLI at DIR/cluster.sock as if it were one
 * host: placement spread over the nodes, Swarm's NODE/NAME names, exec, logs and inspect passed through to the
 * owner, batches (`sampan run --replicas`), constraints, a wrong join token, and a dead host marked down and avoided.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestbedDescription } from '../../src/cluster/index.js';
import { TestEngine, runCmd, until } from '../harness.js';
import { TestCluster } from './harness.js';

interface NodeView {
  name: string;
  state: string;
  containers: number;
}

describe('cluster manager on a 3-host testbed', () => {
  let c: TestCluster;
  let dir: string;
  let tb: TestbedDescription;
  let env: NodeJS.ProcessEnv;
  const docker = (args: string[]) => c.docker(args);
  const sampan = (args: string[]) => c.sampan(args);
  const nodes = async () => JSON.parse((await c.get('/sampan/v1/nodes')).body) as NodeView[];
  /** The node of each container of a `docker ps` query, counted. */
  const perNode = async (filter: string): Promise<Record<string, number>> => {
    const ids = (await docker(['ps', '-q', '--filter', filter])).stdout.split('\n').filter(Boolean);
    const out: Record<string, number> = {};
    for (const id of ids) {
      const n = (await docker(['inspect', '-f', '{{.Node.Name}}', id])).stdout.trim();
      out[n] = (out[n] ?? 0) + 1;
    }
    return out;
  };

  before(async () => {
    c = await TestCluster.start(3, 'spcm');
    ({ dir, tb } = c);
    env = c.env();
  });

  after(async () => {
    await c?.stop();
  });

  test('testbed.json lists the manager; every host joined it; info sums NCPU and MemTotal over the nodes', async () => {
    assert.deepEqual(tb.managers.map((m) => m.name), ['m1']);
    assert.ok((await fs.stat(tb.managers[0]!.socket!)).isSocket());
    assert.deepEqual((await nodes()).map((n) => `${n.name} ${n.state}`).sort(), ['host1 up', 'host2 up', 'host3 up']);
    const info = await docker(['info', '--format', '{{.NCPU}} {{.MemTotal}}']);
    assert.equal(info.code, 0, info.stderr);
    assert.equal(info.stdout.trim(), `${3 * os.cpus().length} ${3 * os.totalmem()}`);
  });

  test('docker run spreads 6 containers 2 per node; ps shows NODE/NAME; exec, logs, inspect and rm -f work through the manager', async () => {
    for (let i = 1; i <= 6; i++) {
      const r = await docker(['run', '-d', '--name', `c${i}`, 'busybox', 'sh', '-c', `echo hello-from-c${i}; sleep 600`]);
      assert.equal(r.code, 0, r.stderr);
    }
    assert.deepEqual(await perNode('name=^c[1-6]$'), { host1: 2, host2: 2, host3: 2 });
    const names = (await docker(['ps', '--format', '{{.Names}}'])).stdout.split('\n').filter(Boolean).sort();
    const node1 = (await docker(['inspect', '-f', '{{.Node.Name}}', 'c1'])).stdout.trim();
    assert.ok(names.includes(`${node1}/c1`), names.join(' '));
    assert.equal(names.length, 6);

    const exec = await docker(['exec', 'c4', 'sh', '-c', 'echo via-cluster; echo to-stderr >&2']);
    assert.equal(exec.code, 0, exec.stderr);
    assert.equal(exec.stdout, 'via-cluster\n');
    assert.equal(exec.stderr, 'to-stderr\n');
    assert.equal((await docker(['exec', 'c4', 'sh', '-c', 'exit 3'])).code, 3);
    await until(async () => (await docker(['logs', 'c2'])).stdout.includes('hello-from-c2'));

    // the engine of the owner has it, the others do not: the manager passed the create on
    const owner = tb.hosts.find((h) => h.name === node1)!;
    const onOwner = await runCmd('docker', ['inspect', '-f', '{{.Name}}', 'c1'], { env: { DOCKER_HOST: `unix://${owner.socket}` } });
    assert.equal(onOwner.stdout.trim(), '/c1');

    const dup = await docker(['run', '-d', '--name', 'c1', 'busybox', 'true']);
    assert.notEqual(dup.code, 0);
    assert.match(dup.stderr, /Conflict\. The container name "\/c1" is already in use/);

    // the rest of a container's life, on its owner: stop/start, pause, top, stats, cp both ways, attach, rename
    assert.equal((await docker(['stop', '-t', '1', 'c5'])).code, 0);
    assert.match((await docker(['ps', '-a', '--filter', 'name=c5', '--format', '{{.Status}}'])).stdout, /^Exited \(137\)/);
    assert.equal((await docker(['start', 'c5'])).code, 0);
    assert.equal((await docker(['pause', 'c5'])).code, 0);
    assert.match((await docker(['ps', '--filter', 'name=c5', '--format', '{{.Status}}'])).stdout, /\(Paused\)/);
    assert.equal((await docker(['unpause', 'c5'])).code, 0);
    assert.match((await docker(['top', 'c5'])).stdout, /sleep 600/);
    const stats = await docker(['stats', '--no-stream', '--format', '{{.Name}}', 'c5']);
    assert.equal(stats.code, 0, stats.stderr);
    assert.equal(stats.stdout.trim(), 'c5');
    const tmp = await fs.mkdtemp('/tmp/spcp-');
    await fs.writeFile(path.join(tmp, 'in.txt'), 'copied-in\n');
    assert.equal((await docker(['cp', path.join(tmp, 'in.txt'), 'c5:/tmp/in.txt'])).code, 0);
    assert.equal((await docker(['exec', 'c5', 'cat', '/tmp/in.txt'])).stdout, 'copied-in\n');
    assert.equal((await docker(['cp', 'c5:/tmp/in.txt', path.join(tmp, 'out.txt')])).code, 0);
    assert.equal(await fs.readFile(path.join(tmp, 'out.txt'), 'utf8'), 'copied-in\n');
    await fs.rm(tmp, { recursive: true });
    // docker run without -d: attach (stdin in, output out), wait and --rm, all through the manager
    const piped = await runCmd('docker', ['run', '-i', '--rm', '--name', 'piped', 'busybox', 'sh', '-c', 'cat; echo err >&2; exit 3'], { env, input: 'through-stdin\n', timeoutMs: 60_000 });
    assert.equal(piped.code, 3, piped.stderr);
    assert.equal(piped.stdout, 'through-stdin\n');
    assert.equal(piped.stderr, 'err\n');
    assert.equal((await docker(['run', '-d', '--name', 'talker', 'busybox', 'sh', '-c', 'sleep 2; echo via-attach'])).code, 0);
    assert.equal((await docker(['attach', 'talker'])).stdout, 'via-attach\n');
    assert.equal((await docker(['rename', 'talker', 'walker'])).code, 0);
    assert.match((await docker(['ps', '-a', '--filter', 'name=walker', '--format', '{{.Names}}'])).stdout, /^host\d\/walker$/m);

    const rm = await docker(['rm', '-f', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'walker']);
    assert.equal(rm.code, 0, rm.stderr);
    assert.equal((await docker(['ps', '-aq'])).stdout.trim(), '');
    assert.match((await docker(['inspect', 'c1'])).stderr, /No such (container|object): c1/);
  });

  test('sampan run -d --replicas 30 makes one batch spread 10 per node', async () => {
    const r = await sampan(['run', '-d', '--replicas', '30', '--name', 'bat', 'busybox', 'sleep', '600']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /30 of 30 replicas running \(bat-1…bat-30\).*per node: host1 10, host2 10, host3 10/);
    assert.deepEqual(await perNode('name=bat-'), { host1: 10, host2: 10, host3: 10 });
    assert.equal((await docker(['inspect', '-f', '{{.State.Running}}', 'bat-30'])).stdout.trim(), 'true');
    // the status is worded when listed, from when the container started, not frozen at the node's last report
    await until(async () => /^Up \d+ seconds$/.test((await docker(['ps', '--filter', 'name=bat-1$', '--format', '{{.Status}}'])).stdout.trim()), 15_000, 500);
    const again = await sampan(['run', '-d', '--replicas', '2', '--name', 'bat', 'busybox', 'sleep', '600']);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /"\/bat-1" is already in use/);
  });

  test('constraints place where they say; one that no node meets is refused with nothing created', async () => {
    assert.equal((await docker(['run', '-d', '--name', 'pinned', '-e', 'constraint:node==host2', 'busybox', 'sleep', '600'])).code, 0);
    assert.equal((await docker(['inspect', '-f', '{{.Node.Name}}', 'pinned'])).stdout.trim(), 'host2');
    // the constraint is the scheduler's, not the container's
    assert.doesNotMatch((await docker(['inspect', '-f', '{{.Config.Env}}', 'pinned'])).stdout, /constraint/);
    assert.equal((await docker(['run', '-d', '--name', 'labelled', '-l', 'com.sampan.constraint.node=host3', 'busybox', 'sleep', '600'])).code, 0);
    assert.equal((await docker(['inspect', '-f', '{{.Node.Name}}', 'labelled'])).stdout.trim(), 'host3');

    const before = (await docker(['ps', '-aq'])).stdout;
    const no = await docker(['run', '-d', '--name', 'nowhere', '-e', 'constraint:node==no-such-node', 'busybox', 'true']);
    assert.notEqual(no.code, 0);
    assert.match(no.stderr, /unable to find a node that satisfies the constraint node==no-such-node/);
    assert.notEqual((await docker(['inspect', 'nowhere'])).code, 0);
    assert.equal((await docker(['ps', '-aq'])).stdout, before);
  });

  test('an engine with a wrong join token is refused, and the refusal is logged on both sides', async (t) => {
    const node = path.join(dir, 'managers', 'm1', 'node.sock');
    const e = await TestEngine.start({ seed: false, args: ['--join', `unix://${node}`, '--join-token', 'SMPTKN-not-the-token-of-this-cluster', '--node-name', 'intruder'] });
    t.after(async () => {
      await e.terminate();
      await fs.rm(e.dir, { recursive: true, force: true });
    });
    await until(async () => /refused the join token/.test(e.log), 20_000);
    assert.match(readFileSync(path.join(dir, 'managers', 'm1', 'manager.log'), 'utf8'), /"node":"intruder".*join refused: wrong join token/);
    assert.ok(!(await nodes()).some((n) => n.name === 'intruder'));
  });

  test('a host whose engine is killed goes down, its containers stay listed as Host Down, and a batch placed after avoids it', async () => {
    const dead = tb.hosts[2]!;
    process.kill(dead.pid, 'SIGKILL');
    await until(async () => (await nodes()).some((n) => n.name === dead.name && n.state === 'down'), 30_000, 250);
    const ps = (await docker(['ps', '--filter', 'name=bat-', '--format', '{{.Names}} {{.Status}}'])).stdout.split('\n').filter((l) => l.startsWith(`${dead.name}/`));
    assert.equal(ps.length, 10);
    assert.ok(ps.every((l) => l.endsWith('Host Down')), ps.join('\n'));
    assert.equal((await docker(['info', '--format', '{{.NCPU}}'])).stdout.trim(), String(2 * os.cpus().length));

    const r = await sampan(['run', '-d', '--replicas', '6', '--name', 'aft', 'busybox', 'sleep', '600']);
    assert.equal(r.code, 0, r.stderr);
    const placed = await perNode('name=aft-');
    assert.equal(placed[dead.name], undefined);
    assert.equal(Object.values(placed).reduce((a, n) => a + n, 0), 6);
  });
});
