/**
 * Faults on a 2-host testbed, seen through the real docker CLI: etcd stopped (it hangs) and killed (it refuses),
 * then back; the manager restarted with SIGTERM and with SIGKILL while containers run.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import type { TestbedDescription } from '../../src/cluster/index.js';
import { runCmd, until } from '../harness.js';
import { TestCluster, commandLine, respawn, running } from './harness.js';

describe('a cluster whose etcd or manager fails (2-host testbed)', () => {
  let c: TestCluster;
  let tb: TestbedDescription;
  /** What this file started again (etcd, the manager): stopped at the end. */
  const restarted: ChildProcess[] = [];
  let managerPid: number;
  const docker = (args: string[]) => c.docker(args);
  /** A docker command that must answer promptly: a hang fails it. */
  const prompt = (args: string[]) => runCmd('docker', args, { env: c.env(), timeoutMs: 10_000 });
  const etcdUp = async () => /^sampan_cluster_etcd_up (\d)$/m.exec((await c.get('/metrics')).body)?.[1];
  const nodeStates = async () => Object.fromEntries((JSON.parse((await c.get('/sampan/v1/nodes')).body) as Array<{ name: string; state: string }>).map((n) => [n.name, n.state]));
  /** Each node's state as etcd holds it. */
  const storedStates = async (): Promise<Record<string, string>> => {
    const etcd = new Etcd3({ hosts: tb.etcd.endpoints });
    try {
      const all = await etcd.getAll().prefix('/sampan/cluster/testbed/nodes/').strings();
      return Object.fromEntries(Object.values(all).map((v) => JSON.parse(v) as { name: string; state: string }).map((n) => [n.name, n.state]));
    } finally {
      etcd.close();
    }
  };
  /** A name on no engine of the testbed, asked of each engine itself. */
  const onNoEngine = async (name: string) => {
    for (const h of tb.hosts) {
      const r = await runCmd('docker', ['ps', '-aq', '--filter', `name=^${name}$`], { env: { DOCKER_HOST: `unix://${h.socket}` } });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, '', `${name} was created on ${h.name}`);
    }
  };
  const listing = async () => (await docker(['ps', '-a', '--format', '{{.ID}} {{.Names}} {{.Image}}'])).stdout.split('\n').filter(Boolean).sort();

  before(async () => {
    c = await TestCluster.start(2, 'spft');
    ({ tb } = c);
    managerPid = tb.managers[0]!.pid;
    for (const n of ['c1', 'c2']) {
      const r = await docker(['run', '-d', '--name', n, 'busybox', 'sleep', '600']);
      assert.equal(r.code, 0, r.stderr);
    }
  });

  after(async () => {
    for (const p of restarted) p.kill('SIGTERM');
    await c?.stop();
  });

  test('etcd stopped (it hangs): ps answers from memory, marked stale in a header, info and /metrics; run is a 503 with nothing created; then back, runs work', async (t) => {
    let stopped = false;
    t.after(() => stopped && process.kill(tb.etcd.pid, 'SIGCONT'));
    assert.equal(await etcdUp(), '1');
    assert.equal((await c.get('/containers/json')).headers['x-sampan-stale'], undefined);

    process.kill(tb.etcd.pid, 'SIGSTOP');
    stopped = true;
    await until(async () => (await etcdUp()) === '0', 30_000, 200);
    const ps = await prompt(['ps', '--format', '{{.Names}}']);
    assert.equal(ps.code, 0, ps.stderr);
    assert.deepEqual(ps.stdout.split('\n').filter(Boolean).map((n) => n.replace(/^host\d\//, '')).sort(), ['c1', 'c2']);
    const listed = await c.get('/containers/json');
    assert.equal(listed.status, 200);
    assert.match(String(listed.headers['x-sampan-stale']), /^etcd unreachable since \d{4}-\d\d-\d\dT/);
    const info = await prompt(['info', '--format', '{{json .SystemStatus}} {{json .Warnings}}']);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /\["State store","etcd unreachable since [^"]+"\]/);
    assert.match(info.stdout, /WARNING: the cluster state store is unreachable/);

    const run = await prompt(['run', '-d', '--name', 'c3', 'busybox', 'sleep', '600']);
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /cluster state store \(etcd\) unreachable since/);
    await onNoEngine('c3');
    // the containers it has are driven as before: their engines answer
    assert.equal((await prompt(['exec', 'c1', 'echo', 'still-driven'])).stdout, 'still-driven\n');
    const rm = await prompt(['rm', '-f', 'c2']);
    assert.notEqual(rm.code, 0);
    assert.match(rm.stderr, /cluster state store \(etcd\) unreachable since/);
    const batch = await c.sampan(['run', '-d', '--replicas', '2', '--name', 'bb', 'busybox', 'sleep', '600']);
    assert.notEqual(batch.code, 0);
    assert.match(batch.stderr, /cluster state store \(etcd\) unreachable since/);
    await onNoEngine('bb-1');
    const label = await c.sampan(['node', 'update', '--label-add', 'zone=a', 'host1']);
    assert.notEqual(label.code, 0);
    assert.match(label.stderr, /cluster state store \(etcd\) unreachable since/);

    process.kill(tb.etcd.pid, 'SIGCONT');
    stopped = false;
    await until(async () => (await etcdUp()) === '1', 30_000, 200);
    assert.equal((await c.get('/containers/json')).headers['x-sampan-stale'], undefined);
    const again = await docker(['run', '-d', '--name', 'c3', 'busybox', 'sleep', '600']);
    assert.equal(again.code, 0, again.stderr);
  });

  test('etcd killed: a run is refused with nothing created; a node that goes down, or comes back, meanwhile is recorded once etcd is started again; runs work', async (t) => {
    const host2 = tb.hosts[1]!;
    let host2Stopped = false;
    t.after(() => host2Stopped && process.kill(host2.pid, 'SIGCONT'));
    const argv = await commandLine(tb.etcd.pid);
    process.kill(tb.etcd.pid, 'SIGKILL');
    await until(async () => (await etcdUp()) === '0', 30_000, 200);
    const run = await prompt(['run', '-d', '--name', 'c4', 'busybox', 'sleep', '600']);
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /cluster state store \(etcd\) unreachable/);
    await onNoEngine('c4');

    // host2's engine stops answering while etcd is away: down in memory at once, in etcd once it is back
    process.kill(host2.pid, 'SIGSTOP');
    host2Stopped = true;
    await until(async () => (await nodeStates())[host2.name] === 'down', 30_000, 250);
    const managerLog = path.join(c.dir, 'managers', 'm1', 'manager.log');
    await until(async () => new RegExp(`"node":"${host2.name}".*could not record the node state`).test(await fs.readFile(managerLog, 'utf8')), 30_000, 250);
    restarted.push(respawn(argv, path.join(c.dir, 'etcd', 'etcd1.log')));
    await until(async () => (await etcdUp()) === '1', 60_000, 200);
    await until(async () => (await storedStates())[host2.name] === 'down', 30_000, 250);

    // etcd away again: host2's engine comes back and rejoins meanwhile, up in memory, in etcd once it is back
    const argv2 = await commandLine(restarted.at(-1)!.pid!);
    restarted.at(-1)!.kill('SIGKILL');
    await until(async () => (await etcdUp()) === '0', 30_000, 200);
    process.kill(host2.pid, 'SIGCONT');
    host2Stopped = false;
    await until(async () => (await nodeStates())[host2.name] === 'up', 60_000, 250);
    assert.match((await docker(['ps', '--filter', 'name=^c2$', '--format', '{{.Status}}'])).stdout, /^Up /);
    await until(async () => new RegExp(`"node":"${host2.name}","state":"up".*could not record the node state`).test(await fs.readFile(managerLog, 'utf8')), 30_000, 250);
    restarted.push(respawn(argv2, path.join(c.dir, 'etcd', 'etcd1.log')));
    await until(async () => (await etcdUp()) === '1', 60_000, 200);
    await until(async () => (await storedStates())[host2.name] === 'up', 30_000, 250);
    assert.deepEqual(await nodeStates(), { host1: 'up', host2: 'up' });
    const ok = await docker(['run', '-d', '--name', 'c4', 'busybox', 'sleep', '600']);
    assert.equal(ok.code, 0, ok.stderr);
  });

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    test(`a manager restarted after ${signal} lists the same containers on the same nodes, none twice, and drives them`, async () => {
      const was = await listing();
      assert.equal(was.length, 4, was.join('\n'));
      const pid = managerPid;
      const argv = await commandLine(pid);
      process.kill(pid, signal);
      await until(async () => !(await running(pid)), 30_000, 100);

      const m = respawn(argv, path.join(c.dir, 'managers', 'm1', 'manager.log'));
      restarted.push(m);
      managerPid = m.pid!;
      await until(async () => {
        const states: Record<string, string> = await nodeStates().catch(() => ({}));
        return states.host1 === 'up' && states.host2 === 'up' && (await listing()).length === was.length;
      }, 60_000, 250);
      assert.deepEqual(await listing(), was);

      assert.equal((await docker(['stop', '-t', '1', 'c1'])).code, 0);
      assert.match((await docker(['ps', '-a', '--filter', 'name=^c1$', '--format', '{{.Status}}'])).stdout, /^Exited/);
      assert.equal((await docker(['start', 'c1'])).code, 0);
      assert.equal((await docker(['exec', 'c2', 'echo', 'driven'])).stdout, 'driven\n');
      const dup = await docker(['run', '-d', '--name', 'c2', 'busybox', 'true']);
      assert.match(dup.stderr, /Conflict\. The container name "\/c2" is already in use/);
    });
  }
});
