/**
 * Manager election on a testbed of 2 hosts, 2 managers and a 3-member etcd, seen through the real docker CLI and
 * etcd: one leader; a graceful switch no client notices; a crash (the standby deposes the dead leader at once), a
 * pause (left to the lease's TTL) and a crash in the middle of a batch that a standby takes over; an etcd member
 * lost; both managers gone while containers run.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { promises as fs } from 'node:fs';
import { Etcd3 } from 'etcd3';
import type { TestbedDescription } from '../../src/cluster/index.js';
import { SAMPAN, runCmd, until } from '../harness.js';
import { TestCluster, commandLine, respawn, running } from './harness.js';

interface Status {
  name: string;
  version: string;
  role: 'leader' | 'standby';
  leader?: string;
  joined: number;
  linkedTo?: string;
}

describe('manager election, failover and handover (2 hosts, 2 managers, 3-member etcd)', () => {
  let c: TestCluster;
  let tb: TestbedDescription;
  /** Each manager's current process (a restarted one keeps its sockets) and how to start it again. */
  const pids: number[] = [];
  const argvs: string[][] = [];
  const restarted: ChildProcess[] = [];
  let etcd: Etcd3;

  const socket = (i: number) => tb.managers[i]!.socket!;
  const status = async (i: number): Promise<Status | undefined> => {
    try {
      return JSON.parse((await c.get('/sampan/v1/manager', socket(i), 2000)).body) as Status;
    } catch {
      return undefined; // dead, or paused
    }
  };
  /** The role each manager's /_ping answers with ('' when it does not answer). */
  const roles = async () => Promise.all(tb.managers.map(async (_, i) => {
    try {
      return String((await c.get('/_ping', socket(i), 2000)).headers['x-sampan-role']);
    } catch {
      return '';
    }
  }));
  const leader = async () => {
    const r = await roles();
    return r.filter((x) => x === 'leader').length === 1 ? r.indexOf('leader') : -1;
  };
  const on = (i: number, args: string[]) => runCmd('docker', args, { env: { DOCKER_HOST: `unix://${socket(i)}`, DOCKER_CLI_HINTS: 'false' }, timeoutMs: 60_000 });
  const docker = (args: string[]) => c.docker(args);
  /** Containers named PREFIX… on the engines themselves, by name. */
  const onEngines = async (prefix: string) => {
    const names: string[] = [];
    for (const h of tb.hosts) {
      const r = await runCmd('docker', ['ps', '-a', '--format', '{{.Names}} {{.State}}', '--filter', `name=^${prefix}`], { env: { DOCKER_HOST: `unix://${h.socket}` } });
      assert.equal(r.code, 0, r.stderr);
      names.push(...r.stdout.split('\n').filter(Boolean));
    }
    return names;
  };
  /** Waits for the manager's process to be gone, starts it again, and waits until every engine joined it. */
  const restart = async (i: number) => {
    await until(async () => !(await running(pids[i]!)), 30_000, 100);
    const p = respawn(argvs[i]!, path.join(c.dir, 'managers', `m${i + 1}`, 'manager.log'));
    restarted.push(p);
    pids[i] = p.pid!;
    await until(async () => {
      const s = await status(i);
      return s?.joined === tb.hosts.length && !!s.leader;
    }, 60_000, 200);
  };
  /** Leaders manager i deposed by the fast path (their process gone), from its /metrics. */
  const fastFailovers = async (i: number) => {
    const m = /^sampan_cluster_fast_failovers_total (\d+)$/m.exec((await c.get('/metrics', socket(i), 5000)).body);
    assert.ok(m, 'the metric is served');
    return Number(m[1]);
  };
  /** Waits until manager s, a standby, holds its liveness link to the leader l. */
  const linked = async (s: number, l: number) => {
    const name = (await status(l))?.name;
    await until(async () => (await status(s))?.linkedTo === name, 15_000, 50);
  };
  const storedKeys = async (prefix: string) => etcd.getAll().prefix(`/sampan/cluster/testbed/${prefix}`).strings();

  before(async () => {
    c = await TestCluster.start(2, 'spha', { managers: 2, etcdMembers: 3 });
    ({ tb } = c);
    etcd = new Etcd3({ hosts: tb.etcd.endpoints });
    for (const m of tb.managers) {
      pids.push(m.pid);
      argvs.push(await commandLine(m.pid));
    }
  });

  after(async () => {
    etcd?.close();
    for (const p of restarted) p.kill('SIGTERM');
    await c?.stop();
  });

  test('exactly one manager leads; the standby answers its own /_ping and passes the rest to the leader', async () => {
    assert.deepEqual((await roles()).sort(), ['leader', 'standby']);
    const l = await leader();
    const s = 1 - l;
    const r = await on(s, ['run', '-d', '--name', 'via-standby', 'busybox', 'sleep', '600']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await on(l, ['ps', '-q', '--filter', 'name=via-standby'])).stdout.split('\n').filter(Boolean).length, 1);
    assert.equal((await on(s, ['exec', 'via-standby', 'echo', 'through-the-standby'])).stdout.trim(), 'through-the-standby');
    assert.match((await on(s, ['info', '--format', '{{json .SystemStatus}}'])).stdout, /"Role","primary"/, 'info is the leader\'s');
    const [ls, ss] = [await status(l), await status(s)];
    assert.equal(ls?.leader, ls?.name);
    assert.equal(ss?.leader, ls?.name, 'the standby knows the leader');
    const stored = JSON.parse((await etcd.get('/sampan/cluster/testbed/leader').string())!) as { name: string; api: string };
    assert.deepEqual([stored.name, stored.api], [ls?.name, `unix://${socket(l)}`]);
  });

  test('SIGTERM on the leader hands over while a client keeps asking through the cluster socket: no request fails', async () => {
    const l = await leader();
    let stop = false;
    const failures: string[] = [];
    let requests = 0;
    const loop = (async () => {
      while (!stop) {
        const r = await docker(['ps', '-q']);
        requests++;
        if (r.code !== 0) failures.push(r.stderr);
      }
    })();
    await until(async () => requests >= 3, 30_000, 50);
    process.kill(pids[l]!, 'SIGTERM');
    await until(async () => (await leader()) === 1 - l, 15_000, 50);
    const seen = requests;
    await until(async () => requests >= seen + 3, 30_000, 50);
    stop = true;
    await loop;
    assert.deepEqual(failures, [], `${failures.length} of ${requests} requests failed`);
    const r = await docker(['run', '-d', '--name', 'after-switch', 'busybox', 'sleep', '600']);
    assert.equal(r.code, 0, r.stderr);
    await restart(l);
    assert.deepEqual((await roles()).map((x, i) => (i === l ? x : 'x')).filter((x) => x !== 'x'), ['standby'], 'the old leader comes back as the standby');
  });

  test('`sampan cluster switch` hands over to the standby', async () => {
    const l = await leader();
    const r = await runCmd(SAMPAN, ['--host', `unix://${socket(1 - l)}`, 'cluster', 'switch']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /handed over to/);
    assert.equal(await leader(), 1 - l);
  });

  test('kill -9 of the leader: the standby deposes it at once (fast path) and leads, and a write retried through the cluster socket lands once', async () => {
    const l = await leader();
    await linked(1 - l, l);
    const fast = await fastFailovers(1 - l);
    process.kill(pids[l]!, 'SIGKILL');
    await until(async () => {
      const r = await docker(['run', '-d', '--name', 'after-crash', 'busybox', 'sleep', '600']);
      return r.code === 0 || (await docker(['inspect', 'after-crash'])).code === 0;
    }, 30_000, 100);
    assert.equal(await leader(), 1 - l);
    assert.equal(await fastFailovers(1 - l), fast + 1, 'the dead leader\'s lease was revoked by the standby, not left to expire');
    assert.match(await fs.readFile(path.join(c.dir, 'managers', `m${2 - l}`, 'manager.log'), 'utf8'), /fast failover: revoked the dead leader's lease/);
    assert.equal((await onEngines('after-crash')).length, 1);
    await restart(l);
  });

  test('SIGSTOP of the leader past its lease: no fast path (nothing refused), the TTL decides; after SIGCONT the old one writes nothing and is a standby', async () => {
    const l = await leader();
    const s = 1 - l;
    await linked(s, l);
    const fast = await fastFailovers(s);
    let before: Record<string, Record<string, string>> | undefined;
    process.kill(pids[l]!, 'SIGSTOP');
    try {
      await until(async () => (await status(s))?.role === 'leader', 15_000, 100);
      // the stopped one still holds its engines' connections: they miss its answers, not their heartbeats
      const r = await on(s, ['run', '-d', '--name', 'while-stopped', 'busybox', 'sleep', '600']);
      assert.equal(r.code, 0, r.stderr);
      before = { nodes: await storedKeys('nodes/'), leader: await storedKeys('leader') };
    } finally {
      process.kill(pids[l]!, 'SIGCONT');
    }
    // woken, it finds its lease gone (or a write refused) and steps down
    await until(async () => (await status(l))?.role === 'standby', 15_000, 100);
    // what it may have tried in the meantime (marking the nodes it missed down) etcd refused
    await new Promise((r) => setTimeout(r, 3000));
    assert.deepEqual({ nodes: await storedKeys('nodes/'), leader: await storedKeys('leader') }, before);
    assert.equal(await leader(), s);
    assert.equal(await fastFailovers(s), fast, 'a paused leader refuses nothing: its lease expired');
    const r = await on(l, ['run', '-d', '--name', 'via-old-leader', 'busybox', 'sleep', '600']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await onEngines('via-old-leader')).length, 1);
  });

  test('kill -9 of the leader during a 300-replica batch: the new leader finishes it, exactly 300 replicas', async () => {
    const l = await leader();
    const batch = spawn(SAMPAN, ['--host', `unix://${socket(l)}`, 'run', '-d', '--replicas', '300', '--name', 'many', 'busybox', 'sleep', '600'], { stdio: 'ignore' });
    const ended = new Promise((r) => batch.once('exit', r));
    await until(async () => (await onEngines('many-')).length >= 20, 120_000, 200);
    process.kill(pids[l]!, 'SIGKILL');
    await ended;
    await until(async () => (await onEngines('many-')).filter((n) => n.endsWith(' running')).length >= 300, 240_000, 1000);
    const names = (await onEngines('many-')).map((n) => n.split(' ')[0]!);
    assert.equal(names.length, 300, 'no replica created twice');
    assert.equal(new Set(names).size, 300);
    await until(async () => (await docker(['ps', '-q', '--filter', 'name=many-'])).stdout.split('\n').filter(Boolean).length === 300, 30_000, 500);
    await restart(l);
  });

  test('an etcd member lost (3 members): the cluster keeps working', async () => {
    const member = tb.etcd.members[2]!;
    process.kill(member.pid, 'SIGKILL');
    await until(async () => (await docker(['run', '-d', '--name', 'after-etcd-loss', 'busybox', 'sleep', '600'])).code === 0 || (await docker(['inspect', 'after-etcd-loss'])).code === 0, 30_000, 200);
    assert.equal((await onEngines('after-etcd-loss')).length, 1);
    assert.notEqual(await leader(), -1);
  });

  test('a standby of a higher version takes over once ready; a lower version never leads while it lives', async () => {
    const l = await leader();
    const s = 1 - l;
    process.kill(pids[s]!, 'SIGTERM');
    argvs[s] = [...argvs[s]!, '--version', '99.0.0'];
    await restart(s);
    await until(async () => (await leader()) === s, 30_000, 200);
    assert.equal((await status(s))?.version, '99.0.0');
    const r = await runCmd(SAMPAN, ['--host', `unix://${socket(l)}`, 'cluster', 'switch']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /leads on/);
    assert.equal(await leader(), s);
    const run = await docker(['run', '-d', '--name', 'after-upgrade', 'busybox', 'sleep', '600']);
    assert.equal(run.code, 0, run.stderr);
  });

  test('both managers killed: the containers keep running, and the engines join a manager that returns', async () => {
    for (const p of pids) process.kill(p, 'SIGKILL');
    const running = async () => (await onEngines('')).filter((n) => n.endsWith(' running')).length;
    const n = await running();
    assert.ok(n >= 300, `${n} containers running on the engines`);
    await restart(0);
    // it leads once the dead leader's lease has run out
    await until(async () => (await status(0))?.role === 'leader', 15_000, 100);
    assert.equal(await running(), n);
    await until(async () => (await docker(['ps', '-q'])).stdout.split('\n').filter(Boolean).length === n, 30_000, 500);
  });
});
