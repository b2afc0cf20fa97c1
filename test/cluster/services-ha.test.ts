/**
 * A rolling update survives its leader: on a 2-host testbed with two managers, the leader is killed (SIGKILL) in the
 * middle of `docker service update`; the standby leads, reads the update's progress from etcd and finishes it, every
 * slot replaced once.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { runCmd, until } from '../harness.js';
import { TestCluster } from './harness.js';

describe('a service update when its leader dies (2 hosts, 2 managers)', () => {
  let c: TestCluster;
  const ok = async (args: string[]) => {
    const r = await c.docker(args);
    assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const role = async (i: number) => {
    try {
      return String((await c.get('/_ping', c.tb.managers[i]!.socket!, 2000)).headers['x-sampan-role']);
    } catch {
      return '';
    }
  };
  /** Slot → images of its tasks, newest first. */
  const history = async (): Promise<Map<string, string[]>> => {
    const out = await ok(['service', 'ps', 'web', '--format', '{{.Name}} {{.Image}} {{.DesiredState}}']);
    const m = new Map<string, string[]>();
    for (const line of out.split('\n').filter(Boolean)) {
      const [name, image, desired] = line.replace(/^\s*\\_\s*/, '').split(' ');
      m.set(name!, [...(m.get(name!) ?? []), `${image!.replace(/@.*/, '')} ${desired}`]);
    }
    return m;
  };

  before(async () => {
    c = await TestCluster.start(2, 'svcha', { managers: 2 });
    for (const h of c.tb.hosts) assert.equal((await runCmd('docker', ['tag', 'busybox', 'app:v2'], { env: { DOCKER_HOST: `unix://${h.socket}` } })).code, 0);
  });
  after(async () => {
    await c?.stop();
  });

  test('the leader killed mid-update: the new leader finishes it, no slot replaced twice, none skipped', async () => {
    await ok(['service', 'create', '--name', 'web', '--replicas', '6', '--stop-grace-period', '1s', '--update-monitor', '1s', 'busybox', 'sleep', '600']);
    await ok(['service', 'update', '--detach', '--image', 'app:v2', '--update-parallelism', '1', '--update-delay', '2s', 'web']);
    // once a slot or two are done, and not all
    await until(async () => {
      const v2 = [...(await history()).values()].filter((h) => h[0] === 'app:v2 Running').length;
      return v2 >= 1 && v2 <= 3;
    }, 60_000, 200);
    const l = (await role(0)) === 'leader' ? 0 : 1;
    assert.equal(await role(l), 'leader');
    process.kill(c.tb.managers[l]!.pid, 'SIGKILL');
    await until(async () => (await role(1 - l)) === 'leader', 30_000, 200);
    await until(async () => (await ok(['service', 'inspect', '-f', '{{.UpdateStatus.State}}', 'web'])) === 'completed', 120_000, 500);
    const h = await history();
    assert.equal(h.size, 6, JSON.stringify([...h]));
    for (const [slot, tasks] of h) {
      assert.equal(tasks[0], 'app:v2 Running', `${slot}: ${tasks.join(', ')}`);
      // one busybox task shut down, and one app:v2 that runs (a replacement the dead leader had begun may have failed)
      assert.equal(tasks.filter((t) => t === 'busybox:latest Shutdown').length, 1, `${slot}: ${tasks.join(', ')}`);
      assert.equal(tasks.filter((t) => t === 'app:v2 Running').length, 1, `${slot}: ${tasks.join(', ')}`);
    }
    assert.equal(await ok(['service', 'ls', '--filter', 'name=web', '--format', '{{.Replicas}}']), '6/6');
  });
});
