/**
 * Releases on the testbed (3 hosts, 2 managers, --registry: the hosts pull through their P2P peers, the managers
 * have the P2P scheduler): the real docker CLI and bin/sampan. A smart release waits after its first batch until
 * confirmed, the next batch's hosts have pre-pulled the image before their instances are replaced, a broken image
 * rolls back by itself, confirm when nothing waits and a second release are 409s, the docker CLI's update of a
 * service labelled for smart mode is a smart release, the leader killed mid-release and a host lost mid-release
 * do not stop it.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runCmd, sleep, until } from '../harness.js';
import { TestCluster } from './harness.js';
import type { ReleaseRecord } from '../../src/cluster/index.js';

const REPLICAS = 12;

describe('releases on a 3-host testbed with its registry', () => {
  let c: TestCluster;
  let reg = '';
  const img = (tag: string) => `${reg}/app:${tag}`;
  const ok = async (args: string[]) => {
    const r = await c.docker(args);
    assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const sampan = async (args: string[]) => {
    const r = await c.sampan(args);
    assert.equal(r.code, 0, `sampan ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.trim();
  };
  /** The release's record (`status` exits 1 for a release that ended rolled back or failed: its record is printed all the same). */
  const record = async (): Promise<ReleaseRecord> => {
    const r = await c.sampan(['release', 'status', 'web', '--no-follow', '--format', 'json']);
    assert.ok(r.stdout.trim(), `sampan release status: ${r.stderr}`);
    return JSON.parse(r.stdout) as ReleaseRecord;
  };
  const untilState = async (states: string[], ms = 180_000): Promise<ReleaseRecord> => {
    let r: ReleaseRecord | undefined;
    await until(async () => {
      r = await record().catch(() => undefined);
      return !!r && states.includes(r.state);
    }, ms, 500).catch(() => assert.fail(`release not ${states.join('|')}: ${JSON.stringify(r && { state: r.state, updated: r.updated, failed: r.failed, events: r.events.slice(-5) })}`));
    return r!;
  };
  /** Image (without digest) → count of the running tasks. */
  const running = async (): Promise<Record<string, number>> => {
    const out = await ok(['service', 'ps', 'web', '--filter', 'desired-state=running', '--format', '{{.Image}} {{.CurrentState}}']);
    const m: Record<string, number> = {};
    for (const line of out.split('\n').filter(Boolean)) {
      const [image, state] = line.split(' ');
      if (state === 'Running') m[image!.replace(/@.*/, '')] = (m[image!.replace(/@.*/, '')] ?? 0) + 1;
    }
    return m;
  };
  const untilRunning = async (want: Record<string, number>, ms = 180_000) => {
    let last = {};
    await until(async () => JSON.stringify((last = await running())) === JSON.stringify(want), ms, 500)
      .catch(() => assert.fail(`running ${JSON.stringify(last)}, want ${JSON.stringify(want)}`));
  };
  const specImage = async () => (await ok(['service', 'inspect', '-f', '{{.Spec.TaskTemplate.ContainerSpec.Image}}', 'web'])).replace(/@.*/, '');
  const updateState = () => ok(['service', 'inspect', '-f', '{{.UpdateStatus.State}}', 'web']);
  const role = async (i: number) => {
    try {
      return String((await c.get('/_ping', c.tb.managers[i]!.socket!, 2000)).headers['x-sampan-role']);
    } catch {
      return '';
    }
  };
  /** The service's tasks as the Docker API gives them. */
  const tasks = async () => {
    const r = await c.get(`/tasks?filters=${encodeURIComponent(JSON.stringify({ service: ['web'] }))}`);
    assert.equal(r.status, 200, r.body);
    return JSON.parse(r.body) as Array<{ Slot: number; CreatedAt: string; DesiredState: string; Status: { State: string }; Spec: { ContainerSpec: { Image: string } } }>;
  };
  const onHost = (i: number, args: string[]) => runCmd('docker', args, { env: { DOCKER_HOST: `unix://${c.tb.hosts[i]!.socket}` } });

  before(async () => {
    c = await TestCluster.start(3, 'relw', { registry: true, managers: 2 });
    reg = c.tb.registry!.addr;
    // app:v1, app:v2 (busybox with a page to serve) and app:bad (no httpd: its tasks cannot start), pushed with skopeo
    const t = path.dirname(c.dir);
    const run = async (cmd: string, args: string[]) => {
      const r = await runCmd(cmd, args, { timeoutMs: 120_000 });
      assert.equal(r.code, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
    };
    const root = path.join(t, 'bbroot');
    await fs.mkdir(path.join(root, 'bin'), { recursive: true });
    await fs.copyFile('/bin/busybox', path.join(root, 'bin/busybox'));
    await fs.chmod(path.join(root, 'bin/busybox'), 0o755);
    for (const a of ['sh', 'sleep', 'httpd', 'cat']) await fs.symlink('busybox', path.join(root, 'bin', a));
    const layout = path.join(t, 'bb');
    await run('umoci', ['init', '--layout', layout]);
    await run('umoci', ['new', '--image', `${layout}:base`]);
    for (const [tag, broken] of [['v1', false], ['v2', false], ['bad', true]] as const) {
      const b = path.join(t, `u-${tag}`);
      await run('umoci', ['unpack', '--rootless', '--image', `${layout}:base`, b]);
      await fs.cp(root, path.join(b, 'rootfs'), { recursive: true, verbatimSymlinks: true });
      await fs.mkdir(path.join(b, 'rootfs/www'), { recursive: true });
      await fs.writeFile(path.join(b, 'rootfs/www/index.html'), `${tag}\n`);
      if (broken) await fs.rm(path.join(b, 'rootfs/bin/httpd'));
      await run('umoci', ['repack', '--image', `${layout}:${tag}`, b]);
      await run('umoci', ['config', '--image', `${layout}:${tag}`, '--config.cmd', 'sh']);
      await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:${tag}`, `docker://${img(tag)}`]);
    }
  });
  after(async () => {
    await c?.stop();
  });

  test(`docker service create --replicas ${REPLICAS}`, { timeout: 240_000 }, async () => {
    await ok(['service', 'create', '--detach', '--no-resolve-image', '--name', 'web', '--replicas', String(REPLICAS), '--stop-grace-period', '1s', img('v1'), 'httpd', '-f', '-p', '8080', '-h', '/www']);
    await untilRunning({ [img('v1')]: REPLICAS });
  });

  test('smart release: waits after the first batch, the next hosts pre-pull, confirm finishes it; a second release and confirm when nothing waits are 409s', { timeout: 300_000 }, async () => {
    const started = JSON.parse(await sampan(['release', 'start', 'web', img('v2'), '--first-batch', '2', '--window', '3', '--format', 'json'])) as ReleaseRecord;
    assert.equal(started.previousImage, img('v1'));
    const waiting = await untilState(['waiting-confirm']);
    assert.equal(waiting.updated, 2);
    // the rest stays on the old image while it waits
    await sleep(3000);
    assert.deepEqual(await running(), { [img('v1')]: REPLICAS - 2, [img('v2')]: 2 });
    assert.equal((await record()).state, 'waiting-confirm');
    assert.equal(await specImage(), img('v2'));
    assert.equal(await updateState(), 'paused', 'UpdateStatus shows the wait');
    // pre-pull observed: every host of a slot not yet replaced has the new image (its pre-pull done, its engine
    // lists it) while its instances still run the old one: before their replacement, which cannot begin unconfirmed
    const r = await record();
    const nextHosts = [...new Set(r.instances.filter((i) => i.state === 'pending').map((i) => i.node))];
    assert.ok(nextHosts.length >= 2, `next hosts: ${nextHosts.join(', ')}`);
    for (const node of nextHosts) {
      const st = await c.get(`/sampan/v1/prepull?node=${node}&image=${encodeURIComponent(img('v2'))}`);
      assert.equal(st.status, 200, st.body);
      assert.equal((JSON.parse(st.body) as { state: string }).state, 'done', `${node}: ${st.body}`);
      const i = c.tb.hosts.findIndex((h) => h.name === node);
      assert.equal((await onHost(i, ['image', 'inspect', '-f', '{{.Id}}', img('v2')])).code, 0, `${node} has ${img('v2')}`);
      const old = (await ok(['service', 'ps', 'web', '--filter', 'desired-state=running', '--filter', `node=${node}`, '--format', '{{.Image}}'])).split('\n').map((x) => x.replace(/@.*/, ''));
      assert.ok(old.includes(img('v1')), `${node} still runs the old image: ${old.join(', ')}`);
    }
    assert.ok(r.prePulled >= nextHosts.length, `prePulled ${r.prePulled}`);
    // through the leader's capped pre-puller (its metrics; a standby's are its own)
    const leader = (await role(0)) === 'leader' ? 0 : 1;
    const metrics = (await c.get('/metrics', c.tb.managers[leader]!.socket!)).body;
    const counter = (how: string) => Number(new RegExp(`^sampan_cluster_prepull_done_total\\{how="${how}"\\} (\\d+)`, 'm').exec(metrics)?.[1] ?? 0);
    assert.ok(counter('pulled') >= 1, metrics.split('\n').filter((l) => l.includes('prepull')).join('\n'));
    assert.ok(counter('pulled') + counter('present') >= nextHosts.length);
    assert.ok(r.events.some((e) => e.type === 'preheat'), `the release preheated: ${JSON.stringify(r.events.map((e) => e.type))}`);
    // two releases at once, and the docker updater meanwhile: 409s
    const second = await c.sampan(['release', 'start', 'web', img('v1')]);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /already in progress/);
    const dockerUpdate = await c.docker(['service', 'update', '--detach', '--no-resolve-image', '--image', img('v1'), 'web']);
    assert.notEqual(dockerUpdate.code, 0);
    assert.match(dockerUpdate.stderr, /being released/);

    await sampan(['release', 'confirm', 'web']);
    const done = await untilState(['done']);
    assert.equal(done.updated, REPLICAS);
    assert.ok(done.confirmedBy);
    await untilRunning({ [img('v2')]: REPLICAS });
    assert.equal(await updateState(), 'completed');
    const again = await c.sampan(['release', 'confirm', 'web']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /done: there is nothing to confirm|not waiting/);
  });

  test('a failing image in smart mode with --max-failures 1 --failure-action rollback rolls back by itself', { timeout: 300_000 }, async () => {
    await sampan(['release', 'start', 'web', img('bad'), '--first-batch', '2', '--window', '3', '--max-failures', '1', '--failure-action', 'rollback']);
    const r = await untilState(['rolled-back', 'failed']);
    assert.equal(r.state, 'rolled-back', JSON.stringify(r.events.slice(-5)));
    assert.ok(r.failed >= 2);
    await untilRunning({ [img('v2')]: REPLICAS });
    assert.equal(await specImage(), img('v2'));
    assert.equal(await updateState(), 'rollback_completed');
  });

  test('docker service update on a service labelled for smart mode pauses for confirmation too', { timeout: 300_000 }, async () => {
    await ok(['service', 'update', '--detach', '--no-resolve-image', '--label-add', 'com.sampan.release.mode=smart', '--label-add', 'com.sampan.release.first-batch=2',
      '--label-add', 'com.sampan.release.window=3', '--image', img('v1'), 'web']);
    const r = await untilState(['waiting-confirm']);
    assert.equal(r.image, img('v1'));
    assert.equal(await specImage(), img('v1'));
    assert.equal(await updateState(), 'paused');
    assert.match(await ok(['service', 'inspect', '-f', '{{.UpdateStatus.Message}}', 'web']), /waiting for confirmation/);
    await sleep(3000);
    assert.deepEqual(await running(), { [img('v1')]: 2, [img('v2')]: REPLICAS - 2 });
    await sampan(['release', 'confirm', 'web']);
    await untilState(['done']);
    await untilRunning({ [img('v1')]: REPLICAS });
    assert.equal(await updateState(), 'completed');
  });

  test('the leader killed mid-release: the new leader finishes it, no slot replaced twice, none skipped', { timeout: 300_000 }, async () => {
    const started = JSON.parse(await sampan(['release', 'start', 'web', img('v2'), '--first-batch', '1', '--window', '2', '--format', 'json'])) as ReleaseRecord;
    await untilState(['waiting-confirm']);
    await sampan(['release', 'confirm', 'web']);
    await until(async () => {
      const r = await record();
      return r.updated >= 3 && r.updated <= REPLICAS - 3;
    }, 120_000, 200);
    const l = (await role(0)) === 'leader' ? 0 : 1;
    assert.equal(await role(l), 'leader');
    process.kill(c.tb.managers[l]!.pid, 'SIGKILL');
    await until(async () => (await role(1 - l)) === 'leader', 30_000, 200);
    const done = await untilState(['done'], 240_000);
    assert.equal(done.id, started.id);
    assert.ok(done.events.some((e) => e.type === 'resume' && /new leader/.test(e.message)));
    await untilRunning({ [img('v2')]: REPLICAS });
    // each slot got one task of the new image that ran since the release began (one the dead leader was creating
    // may have failed to start: the new leader replaced that slot once more, as Docker's updater does)
    const since = Date.parse(started.createdAt);
    const fresh = (await tasks()).filter((t) => Date.parse(t.CreatedAt) >= since && t.Spec.ContainerSpec.Image.replace(/@.*/, '') === img('v2') && t.Status.State !== 'failed');
    const perSlot = new Map<number, number>();
    for (const t of fresh) perSlot.set(t.Slot, (perSlot.get(t.Slot) ?? 0) + 1);
    assert.equal(perSlot.size, REPLICAS, JSON.stringify([...perSlot]));
    for (const [slot, n] of perSlot) assert.equal(n, 1, `slot ${slot}: ${n} tasks of the new image`);
  });

  test('a host lost mid-release: the release still finishes', { timeout: 300_000 }, async () => {
    await sampan(['release', 'start', 'web', img('v1'), '--first-batch', '1', '--window', '2', '--max-failures', String(REPLICAS)]);
    await untilState(['waiting-confirm']);
    await sampan(['release', 'confirm', 'web']);
    await until(async () => (await record()).updated >= 2, 120_000, 200);
    process.kill(c.tb.hosts[2]!.pid, 'SIGKILL');
    const r = await untilState(['done', 'paused'], 240_000);
    assert.equal(r.state, 'done', JSON.stringify(r.events.slice(-5)));
    await untilRunning({ [img('v1')]: REPLICAS });
    const nodes = (await ok(['service', 'ps', 'web', '--filter', 'desired-state=running', '--format', '{{.Node}}'])).split('\n');
    assert.ok(nodes.every((n) => n === 'host1' || n === 'host2'), nodes.join(', '));
  });

  test('docker service rm during a release stops it and forgets its releases; a new service of that name has none', { timeout: 300_000 }, async () => {
    await sampan(['release', 'start', 'web', img('v2'), '--first-batch', '1', '--window', '1']);
    await untilState(['waiting-confirm']);
    await ok(['service', 'rm', 'web']);
    const status = await c.sampan(['release', 'status', 'web', '--no-follow']);
    assert.notEqual(status.code, 0);
    assert.match(status.stderr, /no release of service web/);
    assert.doesNotMatch(await sampan(['release', 'ls']), /\bweb\b/);
    // its containers go, but those of the host killed above, which stays down
    const left = async () => (await ok(['ps', '-a', '--filter', 'label=com.docker.swarm.service.name=web', '--format', '{{.Status}}'])).split('\n').filter((x) => x && x !== 'Host Down');
    await until(async () => !(await left()).length, 120_000, 500).catch(async () => assert.fail(`left: ${(await left()).join(', ')}`));
    await ok(['service', 'create', '--detach', '--no-resolve-image', '--name', 'web', '--replicas', '1', img('v1'), 'httpd', '-f', '-p', '8080', '-h', '/www']);
    assert.match((await c.sampan(['release', 'status', 'web', '--no-follow'])).stderr, /no release of service web/);
    await ok(['service', 'rm', 'web']);
  });
});
