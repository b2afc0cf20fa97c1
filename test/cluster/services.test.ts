/**
 * `docker service` and `docker config` on a 3-host testbed with the real docker CLI (Docker's swarm-mode API served
 * by the cluster manager): create with the CLI's own progress, ls/ps/inspect, scale, a rolling update, rollback by
 * hand and by itself, a config in a task (and a new one swapped in), logs, bad input, rm, and a task on a killed host replaced elsewhere;
 * global services: a task per node, drain and active, a restart on the same node, a rolling update, constraints and label
 * edits, a dead node's task orphaned, a removed node's gone.
 * Images: the engines' busybox and tags made of it on every host (`app:v2`, and `app:bad`, which cannot start).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { runCmd, until } from '../harness.js';
import { TestCluster } from './harness.js';

describe('docker service on the cluster (3-host testbed)', () => {
  let c: TestCluster;
  const docker = (args: string[]) => c.docker(args);
  const ok = async (args: string[]) => {
    const r = await docker(args);
    assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.trim();
  };
  /** "IMAGE STATE" of the tasks that should run, counted: {"busybox:latest Running": 12}. */
  const running = async (svc: string): Promise<Record<string, number>> => {
    const out = await ok(['service', 'ps', svc, '--filter', 'desired-state=running', '--format', '{{.Image}} {{.CurrentState}}']);
    const counts: Record<string, number> = {};
    for (const line of out.split('\n').filter(Boolean)) {
      const [image, state] = line.split(' ');
      const k = `${image!.replace(/@.*/, '')} ${state}`;
      counts[k] = (counts[k] ?? 0) + 1;
    }
    return counts;
  };
  const same = (a: Record<string, number>, b: Record<string, number>) => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());
  const converges = (svc: string, want: Record<string, number>, ms = 120_000) => until(async () => same(await running(svc), want), ms, 500).catch(async () => assert.deepEqual(await running(svc), want));
  const onEngines = async (args: string[]) => {
    for (const h of c.tb.hosts) {
      const r = await runCmd('docker', args, { env: { DOCKER_HOST: `unix://${h.socket}` } });
      assert.equal(r.code, 0, `${h.name}: docker ${args.join(' ')}: ${r.stderr}`);
    }
  };
  /** A raw request on the cluster's socket. */
  const request = (method: string, p: string, body?: unknown) => new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request({ socketPath: path.join(c.dir, 'cluster.sock'), method, path: p, headers: { 'Content-Type': 'application/json' } }, (res) => {
      let b = '';
      res.on('data', (d: Buffer) => (b += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body: b }));
    }).on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });

  before(async () => {
    c = await TestCluster.start(3, 'svc');
    await onEngines(['tag', 'busybox', 'app:v2']);
    for (const h of c.tb.hosts) {
      const env = { DOCKER_HOST: `unix://${h.socket}` };
      assert.equal((await runCmd('docker', ['run', '--name', 'mkbad', 'busybox', 'rm', '-f', '/bin/httpd', '/usr/sbin/httpd'], { env })).code, 0);
      assert.equal((await runCmd('docker', ['commit', 'mkbad', 'app:bad'], { env })).code, 0);
      assert.equal((await runCmd('docker', ['rm', 'mkbad'], { env })).code, 0);
    }
  });
  after(async () => {
    await c?.stop();
  });

  test('the manager is a swarm manager to the CLI: info, _ping, node ls', async () => {
    assert.equal(await ok(['info', '--format', '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}']), 'active true');
    assert.equal((await c.get('/_ping')).headers['swarm'], 'active/manager');
    const nodes = await ok(['node', 'ls', '--format', '{{.Hostname}} {{.Status}} {{.Availability}}']);
    assert.deepEqual(nodes.split('\n'), ['host1 Ready Active', 'host2 Ready Active', 'host3 Ready Active']);
  });

  test('create --replicas 12 without --detach: the CLI\'s progress converges; ls, ps, inspect, names, labels', async () => {
    const r = await docker(['service', 'create', '--name', 'web', '--replicas', '12', '--stop-grace-period', '1s', '--update-monitor', '1s', 'busybox', 'httpd', '-f', '-p', '8080']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /verify: Service .* converged/);
    assert.deepEqual(await running('web'), { 'busybox:latest Running': 12 });
    assert.equal(await ok(['service', 'ls', '--filter', 'name=web', '--format', '{{.Name}} {{.Mode}} {{.Replicas}}']), 'web replicated 12/12');
    const nodes = (await ok(['service', 'ps', 'web', '--format', '{{.Node}}'])).split('\n');
    for (const h of ['host1', 'host2', 'host3']) assert.equal(nodes.filter((n) => n === h).length, 4, `spread: ${nodes.join(',')}`);
    const spec = JSON.parse(await ok(['service', 'inspect', 'web'])) as Array<{ ID: string; Spec: { Name: string; Mode: { Replicated: { Replicas: number } }; TaskTemplate: { ContainerSpec: { Image: string } } } }>;
    assert.equal(spec[0]!.Spec.Mode.Replicated.Replicas, 12);
    assert.match(spec[0]!.Spec.TaskTemplate.ContainerSpec.Image, /^busybox/);
    const names = (await ok(['ps', '--filter', 'label=com.docker.swarm.service.name=web', '--format', '{{.Names}}'])).split('\n');
    assert.equal(names.length, 12);
    for (const n of names) assert.match(n, /^host\d\/web\.\d+\.[a-z0-9]{25}$/);
    const c1 = (await ok(['ps', '-q', '--filter', 'name=web.1.']))!.split('\n')[0]!;
    assert.equal(await ok(['inspect', '-f', '{{index .Config.Labels "com.docker.swarm.service.id"}}', c1]), spec[0]!.ID);
  });

  test('scale up and down', async () => {
    await ok(['service', 'scale', '--detach', 'web=15']);
    await converges('web', { 'busybox:latest Running': 15 });
    await ok(['service', 'scale', '--detach', 'web=6']);
    await converges('web', { 'busybox:latest Running': 6 });
    await until(async () => (await ok(['ps', '-q', '--filter', 'label=com.docker.swarm.service.name=web'])).split('\n').length === 6, 60_000, 500);
    assert.equal(await ok(['service', 'ls', '--filter', 'name=web', '--format', '{{.Replicas}}']), '6/6');
  });

  test('update --image with parallelism 2: every slot replaced once, the update completed; rollback by hand', async () => {
    const r = await docker(['service', 'update', '--image', 'app:v2', '--update-parallelism', '2', 'web']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await running('web'), { 'app:v2 Running': 6 });
    await until(async () => (await ok(['service', 'inspect', '-f', '{{.UpdateStatus.State}} {{.PreviousSpec.TaskTemplate.ContainerSpec.Image}}', 'web'])) === 'completed busybox:latest', 60_000, 500);
    // each slot was replaced once: one shut down task of busybox per slot
    const hist = (await ok(['service', 'ps', 'web', '--filter', 'desired-state=shutdown', '--format', '{{.Name}} {{.Image}}'])).split('\n');
    assert.equal(hist.filter((l) => l.endsWith('busybox:latest')).length, 6, hist.join('\n'));
    await ok(['service', 'rollback', '--detach', 'web']);
    await converges('web', { 'busybox:latest Running': 6 });
    await until(async () => (await ok(['service', 'inspect', '-f', '{{.UpdateStatus.State}}', 'web'])) === 'rollback_completed', 60_000, 500);
  });

  test('an image that cannot start: the update fails and rolls back by itself', async () => {
    await ok(['service', 'update', '--detach', '--image', 'app:bad', '--update-failure-action', 'rollback', '--update-max-failure-ratio', '0', 'web']);
    await until(async () => (await ok(['service', 'inspect', '-f', '{{.UpdateStatus.State}}', 'web'])) === 'rollback_completed', 120_000, 500);
    assert.match(await ok(['service', 'inspect', '-f', '{{.Spec.TaskTemplate.ContainerSpec.Image}}', 'web']), /^busybox/);
    assert.equal(await ok(['service', 'inspect', '-f', '{{.UpdateStatus.Message}}', 'web']), 'rollback completed');
    await converges('web', { 'busybox:latest Running': 6 });
    const failed = await ok(['service', 'ps', 'web', '--filter', 'desired-state=shutdown', '--format', '{{.Image}} {{.CurrentState}}']);
    assert.match(failed, /app:bad (Failed|Rejected)/);
  });

  test('a task that exits within the update\'s monitor is a failure: the update rolls back', async () => {
    await ok(['service', 'create', '--detach', '--name', 'ex', '--replicas', '2', '--stop-grace-period', '1s', '--update-monitor', '5s', 'busybox', 'sleep', '600']);
    await converges('ex', { 'busybox:latest Running': 2 });
    await ok(['service', 'update', '--detach', '--args', 'sh -c "sleep 1; exit 3"', '--update-parallelism', '2', '--update-failure-action', 'rollback', 'ex']);
    await until(async () => (await ok(['service', 'inspect', '-f', '{{.UpdateStatus.State}}', 'ex'])) === 'rollback_completed', 120_000, 500);
    assert.equal(await ok(['service', 'inspect', '-f', '{{json .Spec.TaskTemplate.ContainerSpec.Args}}', 'ex']), '["sleep","600"]');
    assert.match(await ok(['service', 'ps', 'ex', '--filter', 'desired-state=shutdown', '--format', '{{.CurrentState}} {{.Error}}']), /Failed .*non-zero exit \(3\)/);
    await converges('ex', { 'busybox:latest Running': 2 });
    await ok(['service', 'rm', 'ex']);
  });

  test('update --update-order start-first: the new task runs before the old one stops', async () => {
    const r = await docker(['service', 'update', '--image', 'app:v2', '--update-order', 'start-first', '--update-parallelism', '3', 'web']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await running('web'), { 'app:v2 Running': 6 });
    // the CLI is done once the tasks converged and held for the monitor; the status says so once the old tasks are gone
    await until(async () => (await ok(['service', 'inspect', '-f', '{{.Spec.UpdateConfig.Order}} {{.UpdateStatus.State}}', 'web'])) === 'start-first completed', 60_000, 500);
  });

  test('node update --availability drain: the node takes no new task; active again, it does', async () => {
    await ok(['node', 'update', '--availability', 'drain', 'host1']);
    assert.equal(await ok(['node', 'inspect', '-f', '{{.Spec.Availability}}', 'host1']), 'drain');
    await ok(['service', 'create', '--detach', '--name', 'dr', '--replicas', '4', '--stop-grace-period', '1s', 'busybox', 'sleep', '600']);
    await converges('dr', { 'busybox:latest Running': 4 });
    assert.doesNotMatch(await ok(['service', 'ps', 'dr', '--format', '{{.Node}}']), /host1/);
    await ok(['node', 'update', '--availability', 'active', '--label-add', 'zone=a', 'host1']);
    assert.equal(await ok(['node', 'inspect', '-f', '{{.Spec.Availability}} {{index .Spec.Labels "zone"}}', 'host1']), 'active a');
    await ok(['service', 'create', '--detach', '--name', 'pin', '--constraint', 'node.labels.zone==a', '--stop-grace-period', '1s', 'busybox', 'sleep', '600']);
    await converges('pin', { 'busybox:latest Running': 1 });
    assert.equal(await ok(['service', 'ps', 'pin', '--format', '{{.Node}}']), 'host1');
    await ok(['service', 'rm', 'dr', 'pin']);
  });

  /** "NODE STATE" of a service's tasks that should run, sorted: ["host1 Running", ...]. */
  const perNode = async (svc: string): Promise<string[]> => (await ok(['service', 'ps', svc, '--filter', 'desired-state=running', '--format', '{{.Node}} {{.CurrentState}}']))
    .split('\n').filter(Boolean).map((l) => l.split(' ').slice(0, 2).join(' ')).sort();
  const onNodes = (svc: string, want: string[], ms = 120_000) => until(async () => JSON.stringify(await perNode(svc)) === JSON.stringify(want), ms, 500).catch(async () => assert.deepEqual(await perNode(svc), want));
  const replicas = (svc: string) => ok(['service', 'ls', '--filter', `name=${svc}`, '--format', '{{.Mode}} {{.Replicas}}']);
  const all3 = ['host1 Running', 'host2 Running', 'host3 Running'];

  test('create --mode global: a task per node, named after it; drained, its task is shut down; active, it has one again; scale and a mode change are refused', async () => {
    const r = await docker(['service', 'create', '--name', 'g', '--mode', 'global', '--stop-grace-period', '1s', '--update-monitor', '1s', 'busybox', 'sleep', '600']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /verify: Service .* converged/);
    assert.deepEqual(await perNode('g'), all3);
    assert.equal(await replicas('g'), 'global 3/3');
    assert.equal(await ok(['service', 'inspect', '-f', '{{json .Spec.Mode}}', 'g']), '{"Global":{}}');
    // Docker's names for global tasks: SERVICE.NODEID (Slot 0)
    const ids: Record<string, string> = {};
    for (const h of ['host1', 'host2', 'host3']) ids[h] = await ok(['node', 'inspect', '-f', '{{.ID}}', h]);
    const names = (await ok(['service', 'ps', 'g', '--format', '{{.Name}} {{.Node}}'])).split('\n').sort();
    assert.deepEqual(names, ['host1', 'host2', 'host3'].map((h) => `g.${ids[h]} ${h}`).sort());
    const tasks = JSON.parse((await request('GET', `/v1.44/tasks?filters=${encodeURIComponent(JSON.stringify({ service: ['g'] }))}`)).body) as Array<{ Slot: number; NodeID: string }>;
    assert.deepEqual(tasks.map((t) => `${t.Slot} ${t.NodeID}`).sort(), Object.values(ids).map((id) => `0 ${id}`).sort());

    await ok(['node', 'update', '--availability', 'drain', 'host3']);
    await onNodes('g', ['host1 Running', 'host2 Running']);
    assert.match(await ok(['service', 'ps', 'g', '--filter', 'desired-state=shutdown', '--format', '{{.Node}} {{.CurrentState}}']), /^host3 Shutdown/);
    await until(async () => (await replicas('g')) === 'global 2/2', 30_000, 500);
    await ok(['node', 'update', '--availability', 'active', 'host3']);
    await onNodes('g', all3);
    await until(async () => (await replicas('g')) === 'global 3/3', 30_000, 500);

    // the CLI refuses to scale a global service; the API refuses a change of mode, as swarmkit
    const scale = await docker(['service', 'scale', 'g=5']);
    assert.notEqual(scale.code, 0);
    assert.match(scale.stderr, /scale can only be used with replicated/);
    const svc = JSON.parse((await request('GET', '/v1.44/services/g')).body) as { ID: string; Version: { Index: number }; Spec: Record<string, unknown> };
    const change = await request('POST', `/v1.44/services/${svc.ID}/update?version=${svc.Version.Index}`, { ...svc.Spec, Mode: { Replicated: { Replicas: 5 } } });
    assert.equal(change.status, 400, change.body);
    assert.match(change.body, /service mode change is not allowed/);
    assert.deepEqual(await perNode('g'), all3);
  });

  test('a global service: a task that dies is restarted on its node; update --image rolls node by node; rollback; a Sampan release', async () => {
    const host2 = await ok(['node', 'inspect', '-f', '{{.ID}}', 'host2']);
    const victim = (await ok(['ps', '-q', '--filter', `name=g.${host2}.`])).split('\n')[0]!;
    assert.ok(victim);
    await ok(['rm', '-f', victim]);
    await until(async () => /^host2 Failed/m.test(await ok(['service', 'ps', 'g', '--filter', 'desired-state=shutdown', '--format', '{{.Node}} {{.CurrentState}}'])), 60_000, 500);
    await onNodes('g', all3);

    // the CLI's progress of a global service counts the nodes of the up-to-date tasks, so it may call the update
    // converged between two nodes (as with Docker): the update's status says when every node is done
    const r = await docker(['service', 'update', '--image', 'app:v2', '--update-parallelism', '1', '--update-delay', '1s', '--update-order', 'start-first', 'g']);
    assert.equal(r.code, 0, r.stderr);
    await until(async () => (await ok(['service', 'inspect', '-f', '{{.UpdateStatus.State}}', 'g'])) === 'completed', 60_000, 500);
    assert.deepEqual(await running('g'), { 'app:v2 Running': 3 });
    // every node's task replaced, on its node
    const v2 = (await ok(['service', 'ps', 'g', '--filter', 'desired-state=running', '--format', '{{.Node}} {{.Image}}'])).split('\n').sort();
    assert.deepEqual(v2, ['host1 app:v2', 'host2 app:v2', 'host3 app:v2']);
    const old = (await ok(['service', 'ps', 'g', '--filter', 'desired-state=shutdown', '--format', '{{.Node}} {{.Image}} {{.CurrentState}}'])).split('\n').filter((l) => /busybox:latest Shutdown/.test(l));
    // (host3 also has the task its drain shut down)
    assert.deepEqual([...new Set(old.map((l) => l.split(' ')[0]))].sort(), ['host1', 'host2', 'host3'], old.join('\n'));
    await ok(['service', 'rollback', '--detach', 'g']);
    await converges('g', { 'busybox:latest Running': 3 });
    await until(async () => (await ok(['service', 'inspect', '-f', '{{.UpdateStatus.State}}', 'g'])) === 'rollback_completed', 60_000, 500);
    await onNodes('g', all3);

    // a Sampan release of a global service: slot by slot as for a replicated one, each task on its own node
    const release = async (args: string[]) => {
      const r = await c.sampan(['release', ...args]);
      assert.equal(r.code, 0, `sampan release ${args.join(' ')}: ${r.stderr}`);
      return r.stdout.trim();
    };
    const state = async () => (JSON.parse(await release(['status', 'g', '--no-follow', '--format', 'json'])) as { state: string }).state;
    await release(['start', 'g', 'app:v2', '--first-batch', '1', '--window', '2', '--no-pre-pull']);
    await until(async () => (await state()) === 'waiting-confirm', 120_000, 500);
    assert.deepEqual(await running('g'), { 'app:v2 Running': 1, 'busybox:latest Running': 2 });
    await release(['confirm', 'g']);
    await until(async () => (await state()) === 'done', 120_000, 500);
    await converges('g', { 'app:v2 Running': 3 });
    await onNodes('g', all3);
  });

  test('a global service with constraints: only the nodes that match; a label edit adds or removes a node\'s task; rm', async () => {
    await ok(['service', 'create', '--detach', '--name', 'gc', '--mode', 'global', '--constraint', 'node.hostname!=host1', '--stop-grace-period', '1s', 'busybox', 'sleep', '600']);
    await onNodes('gc', ['host2 Running', 'host3 Running']);
    await until(async () => (await replicas('gc')) === 'global 2/2', 30_000, 500);
    await ok(['service', 'create', '--detach', '--name', 'gl', '--mode', 'global', '--constraint', 'node.labels.gpu==yes', '--stop-grace-period', '1s', 'busybox', 'sleep', '600']);
    await until(async () => (await replicas('gl')) === 'global 0/0', 30_000, 500);
    await ok(['node', 'update', '--label-add', 'gpu=yes', 'host2']);
    await onNodes('gl', ['host2 Running']);
    await ok(['node', 'update', '--label-rm', 'gpu', 'host2']);
    await onNodes('gl', []);
    await ok(['service', 'rm', 'g', 'gc', 'gl']);
    for (const s of ['g', 'gc', 'gl']) await until(async () => (await ok(['ps', '-aq', '--filter', `label=com.docker.swarm.service.name=${s}`])) === '', 60_000, 500);
  });

  test('a config is a file in the task before its process starts; in use it cannot be removed; bad names are refused', async () => {
    const id = (await runCmd('docker', ['config', 'create', 'appcfg', '-'], { env: c.env(), input: 'hello-config\n' })).stdout.trim();
    assert.match(id, /^[a-z0-9]{25}$/);
    assert.equal(await ok(['config', 'ls', '--format', '{{.Name}}']), 'appcfg');
    assert.equal(await ok(['config', 'inspect', '-f', '{{printf "%s" .Spec.Data}}', 'appcfg']), 'hello-config');
    await ok(['service', 'create', '--detach', '--name', 'cfg', '--stop-grace-period', '1s', '--config', 'source=appcfg,target=/etc/app.conf,mode=0440', 'busybox', 'sh', '-c', 'cat /etc/app.conf > /tmp/seen; sleep 600']);
    await converges('cfg', { 'busybox:latest Running': 1 });
    const task = await ok(['ps', '-q', '--filter', 'name=cfg.1']);
    assert.equal(await ok(['exec', task, 'cat', '/etc/app.conf']), 'hello-config');
    assert.equal(await ok(['exec', task, 'cat', '/tmp/seen']), 'hello-config');
    assert.equal(await ok(['exec', task, 'stat', '-c', '%a', '/etc/app.conf']), '440');
    // the config's versions as server-sent events: the current one, then a new one (its labels changed)
    const events = await new Promise<string[]>((resolve, reject) => {
      const seen: string[] = [];
      const req = http.get({ socketPath: path.join(c.dir, 'cluster.sock'), path: '/sampan/v1/configs/appcfg?watch=1' }, (res) => {
        assert.equal(res.headers['content-type'], 'text/event-stream');
        let buf = '';
        res.on('data', (d: Buffer) => {
          buf += d.toString();
          const parts = buf.split('\n\n');
          buf = parts.pop()!;
          for (const ev of parts) {
            seen.push(ev);
            if (seen.length === 1) {
              const cfg = JSON.parse(/^data: (.*)$/m.exec(ev)![1]!) as { ID: string; Version: { Index: number }; Spec: Record<string, unknown> };
              void request('POST', `/v1.44/configs/${cfg.ID}/update?version=${cfg.Version.Index}`, { ...cfg.Spec, Labels: { rev: '2' } }).then((r) => assert.equal(r.status, 200, r.body));
            }
            if (seen.length === 2) {
              req.destroy();
              resolve(seen);
            }
          }
        });
      }).on('error', reject);
    });
    assert.match(events[0]!, /^event: config\nid: \d+\ndata: .*"Name":"appcfg"/);
    assert.match(events[1]!, /"Labels":\{"rev":"2"\}/);
    const rm = await docker(['config', 'rm', 'appcfg']);
    assert.notEqual(rm.code, 0);
    assert.match(rm.stderr, /config 'appcfg' is in use by the following service: cfg/);
    const bad = await runCmd('docker', ['config', 'create', 'bad name', '-'], { env: c.env(), input: 'x' });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /invalid name, only 64 \[a-zA-Z0-9-_.\] characters allowed/);
    const direct = await request('POST', '/v1.44/configs/create', { Name: 'bad name', Data: 'eA==' });
    assert.equal(direct.status, 400);
    const big = await request('POST', '/v1.44/configs/create', { Name: 'big', Data: Buffer.alloc(1000 * 1024 + 1).toString('base64') });
    assert.equal(big.status, 400);
    assert.match(big.body, /config data must be larger than 0 and less than 1024000 bytes/);
    // configs are immutable, as Docker's: a new one swapped in is an update that replaces the task
    await runCmd('docker', ['config', 'create', 'appcfg2', '-'], { env: c.env(), input: 'hello-config-2\n' });
    await ok(['service', 'update', '--detach', '--config-rm', 'appcfg', '--config-add', 'source=appcfg2,target=/etc/app.conf', 'cfg']);
    const updated = await until(async () => {
      const t = await ok(['ps', '-q', '--filter', 'name=cfg.1']);
      return t && t !== task && (await docker(['exec', t, 'cat', '/etc/app.conf'])).stdout.trim() === 'hello-config-2' ? t : '';
    }, 60_000, 500);
    assert.equal(await ok(['exec', updated, 'cat', '/tmp/seen']), 'hello-config-2');
  });

  test('service logs: each line with its task and node, as the CLI prints them', async () => {
    await ok(['service', 'create', '--detach', '--name', 'lg', '--replicas', '2', '--stop-grace-period', '1s', 'busybox', 'sh', '-c', 'echo hello-logs; sleep 600']);
    await converges('lg', { 'busybox:latest Running': 2 });
    const out = await until(async () => {
      const o = await ok(['service', 'logs', 'lg']);
      return o.split('\n').length === 2 ? o : '';
    }, 30_000, 500);
    for (const line of out.split('\n')) assert.match(line, /^lg\.[12]\.[a-z0-9]+@host\d\s+\| hello-logs$/);
  });

  test('bad input: an unknown service is Docker\'s 404, a stale version a 409, a name taken a 409', async () => {
    const rm = await docker(['service', 'rm', 'nope']);
    assert.notEqual(rm.code, 0);
    assert.match(rm.stderr, /service nope not found/);
    assert.equal((await request('GET', '/v1.44/services/nope')).status, 404);
    // the CLI's inspect asks every kind of object, swarm's too (secrets: none)
    const inspect = await docker(['inspect', 'nosuch']);
    assert.notEqual(inspect.code, 0);
    assert.match(inspect.stderr, /No such object: nosuch/);
    const svc = JSON.parse((await request('GET', '/v1.44/services/web')).body) as { ID: string; Version: { Index: number }; Spec: unknown };
    const stale = await request('POST', `/v1.44/services/${svc.ID}/update?version=${svc.Version.Index - 1}`, svc.Spec);
    assert.equal(stale.status, 409);
    assert.match(stale.body, /update out of sequence/);
    const dup = await docker(['service', 'create', '--detach', '--name', 'web', 'busybox', 'true']);
    assert.notEqual(dup.code, 0);
    assert.match(dup.stderr, /name conflicts with an existing object/);
    assert.equal((await request('POST', '/v1.44/services/create', { Name: 'x_y', TaskTemplate: { ContainerSpec: { Image: 'busybox' } } })).status, 400);
  });

  test('service rm: no task container is left', async () => {
    await ok(['service', 'rm', 'cfg', 'lg']);
    await until(async () => (await ok(['ps', '-aq', '--filter', 'label=com.docker.swarm.service.name=cfg'])) === '' && (await ok(['ps', '-aq', '--filter', 'label=com.docker.swarm.service.name=lg'])) === '', 60_000, 500);
    assert.equal(await ok(['service', 'ls', '--format', '{{.Name}}']), 'web');
    await ok(['config', 'rm', 'appcfg', 'appcfg2']);
  });

  test('a killed host: its tasks are replaced on the others; a global service\'s task there is orphaned, not moved', async () => {
    await ok(['service', 'create', '--detach', '--name', 'gk', '--mode', 'global', '--stop-grace-period', '1s', 'busybox', 'sleep', '600']);
    await onNodes('gk', all3);
    const host3 = c.tb.hosts[2]!;
    const before = (await ok(['service', 'ps', 'web', '--filter', 'desired-state=running', '--format', '{{.Node}}'])).split('\n');
    assert.ok(before.includes('host3'));
    process.kill(host3.pid, 'SIGKILL');
    let last: string[] = [];
    await until(async () => {
      last = (await ok(['service', 'ps', 'web', '--filter', 'desired-state=running', '--format', '{{.Node}} {{.CurrentState}}'])).split('\n');
      return last.length === 6 && last.every((n) => /^host[12] Running/.test(n));
    }, 60_000, 500).catch(() => assert.fail(`not replaced: ${last.join(', ')}`));
    assert.match(await ok(['service', 'ps', 'web', '--filter', 'desired-state=shutdown', '--format', '{{.Node}} {{.CurrentState}} {{.Error}}']), /host3 Orphaned .*node host3 is down/);
    assert.equal(await ok(['service', 'ls', '--filter', 'name=web', '--format', '{{.Replicas}}']), '6/6');
    await onNodes('gk', ['host1 Running', 'host2 Running']);
    assert.match(await ok(['service', 'ps', 'gk', '--filter', 'desired-state=shutdown', '--format', '{{.Node}} {{.CurrentState}}']), /^host3 Orphaned/);
    assert.equal(await replicas('gk'), 'global 2/2');
    await ok(['service', 'rm', 'web']);
    // the dead host's containers are listed (Host Down) until it comes back: the living hosts have none left
    await until(async () => (await ok(['ps', '--filter', 'label=com.docker.swarm.service.name=web', '--format', '{{.Names}}'])).split('\n').every((n) => n === '' || n.startsWith('host3/')), 60_000, 500);
  });

  test('the dead host removed from the cluster: a global service\'s task there goes with it', async () => {
    await ok(['node', 'rm', 'host3']);
    await until(async () => !(await ok(['service', 'ps', 'gk', '--format', '{{.Node}}'])).includes('host3'), 30_000, 500);
    await onNodes('gk', ['host1 Running', 'host2 Running']);
    assert.equal(await replicas('gk'), 'global 2/2');
    await ok(['service', 'rm', 'gk']);
  });
});
