import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { TestEngine, until, runCmd } from '../harness.js';

let e: TestEngine;
before(async () => {
  e = await TestEngine.start();
});
after(async () => {
  await e?.cleanup();
});

interface Health {
  Status: string;
  FailingStreak: number;
  Log: Array<{ Start: string; End: string; ExitCode: number; Output: string }>;
}
const health = async (name: string): Promise<Health | null> => JSON.parse((await e.docker(['inspect', '-f', '{{json .State.Health}}', name])).stdout);
const status = async (name: string) => (await health(name))?.Status;
const psStatus = async (name: string) => (await e.docker(['ps', '-a', '--filter', `name=^${name}$`, '--format', '{{.Status}}'])).stdout.trim();
const psHealth = async (h: string) => (await e.docker(['ps', '--filter', `health=${h}`, '--format', '{{.Names}}'])).stdout.split('\n').filter(Boolean);

test('starting → healthy → unhealthy: inspect, ps, ps --filter health=, health_status events', async () => {
  const since = String(Math.floor(Date.now() / 1000) - 1);
  const r = await e.docker([
    'run', '-d', '--name', 'hc', '--health-cmd', 'test -f /tmp/ok', '--health-interval', '1s', '--health-retries', '2',
    '--health-start-period', '30s', '--health-start-interval', '200ms', 'busybox', 'sleep', '600',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await e.docker(['inspect', '-f', '{{json .Config.Healthcheck.Test}} {{.Config.Healthcheck.Interval}} {{.Config.Healthcheck.Retries}}', 'hc'])).stdout.trim(), '["CMD-SHELL","test -f /tmp/ok"] 1s 2');

  // failing checks inside the start period leave it starting, with no streak
  await until(async () => ((await health('hc'))?.Log.length ?? 0) >= 2);
  let h = (await health('hc'))!;
  assert.equal(h.Status, 'starting');
  assert.equal(h.FailingStreak, 0);
  assert.equal(h.Log[0]!.ExitCode, 1);
  assert.match(await psStatus('hc'), /^Up .* \(health: starting\)$/);
  assert.deepEqual(await psHealth('starting'), ['hc']);
  assert.deepEqual(await psHealth('healthy'), []);

  assert.equal((await e.docker(['exec', 'hc', 'touch', '/tmp/ok'])).code, 0);
  await until(async () => (await status('hc')) === 'healthy', 5000);
  assert.match(await psStatus('hc'), /^Up .* \(healthy\)$/);
  assert.deepEqual(await psHealth('healthy'), ['hc']);
  h = (await health('hc'))!;
  assert.equal(h.Log.at(-1)!.ExitCode, 0);
  assert.equal(h.FailingStreak, 0);

  assert.equal((await e.docker(['exec', 'hc', 'rm', '/tmp/ok'])).code, 0);
  await until(async () => (await status('hc')) === 'unhealthy', 8000);
  h = (await health('hc'))!;
  assert.ok(h.FailingStreak >= 2);
  assert.deepEqual(h.Log.slice(-2).map((l) => l.ExitCode), [1, 1]);
  assert.ok(h.Log.length <= 5);
  assert.ok(Date.parse(h.Log.at(-1)!.End) >= Date.parse(h.Log.at(-1)!.Start));
  assert.match(await psStatus('hc'), /^Up .* \(unhealthy\)$/);
  assert.deepEqual(await psHealth('unhealthy'), ['hc']);
  assert.equal((await e.docker(['ps', '--filter', 'health=bogus'])).code, 1);

  const ev = await e.docker(['events', '--since', since, '--until', String(Math.floor(Date.now() / 1000) + 1), '--filter', 'event=health_status', '--filter', 'container=hc', '--format', '{{.Action}}']);
  assert.deepEqual(ev.stdout.split('\n').filter(Boolean), ['health_status: healthy', 'health_status: unhealthy']);
  // checks run as exec sessions, with Docker's exec events
  const ex = await e.docker(['events', '--since', since, '--until', String(Math.floor(Date.now() / 1000) + 1), '--filter', 'event=exec_create', '--filter', 'container=hc', '--format', '{{.Action}}']);
  assert.match(ex.stdout, /^exec_create: \/bin\/sh -c test -f \/tmp\/ok$/m);

  // a stopped container keeps its log; a start begins at starting again
  assert.equal((await e.docker(['stop', '-t', '0', 'hc'])).code, 0);
  assert.equal(await status('hc'), 'unhealthy');
  assert.match(await psStatus('hc'), /^Exited/);
  assert.equal((await e.docker(['start', 'hc'])).code, 0);
  assert.equal(await status('hc'), 'starting');
  await e.docker(['rm', '-f', 'hc']);
});

test('a check past its timeout is killed and fails with Docker\'s message', async () => {
  // a check that would outlast the test: only its cut at the timeout makes the container unhealthy
  assert.equal((await e.docker(['run', '-d', '--name', 'slow', '--health-cmd', 'sleep 3600', '--health-timeout', '1s', '--health-interval', '500ms', '--health-retries', '1', 'busybox', 'sleep', '600'])).code, 0);
  const h = (await until(async () => { const h = await health('slow'); return h && h.Log.length >= 3 ? h : undefined; }, 15_000))!;
  assert.equal(h.Status, 'unhealthy');
  assert.equal(h.Log[0]!.ExitCode, -1);
  assert.equal(h.Log[0]!.Output, 'Health check exceeded timeout (1s)');
  // and killed: the checks run one after the other, so three cut checks leave at most the current one
  const top = (await e.docker(['top', 'slow'])).stdout;
  assert.ok(top.split('\n').filter((l) => l.includes('sleep 3600')).length <= 1, top);
  // output is captured (stdout and stderr)
  assert.equal((await e.docker(['run', '-d', '--name', 'talk', '--health-cmd', 'echo out; echo err >&2', '--health-interval', '300ms', 'busybox', 'sleep', '600'])).code, 0);
  await until(async () => (await status('talk')) === 'healthy', 5000);
  assert.deepEqual((await health('talk'))!.Log[0]!.Output.split('\n').sort(), ['', 'err', 'out']);
  await e.docker(['rm', '-f', 'slow', 'talk']);
});

test('image HEALTHCHECK: used, merged with run flags, disabled by --no-healthcheck; bad values rejected', async () => {
  // an image with a HEALTHCHECK: busybox's layer imported with --change
  const tmp = await fs.mkdtemp(path.join(e.dir, 'img-'));
  assert.equal((await e.docker(['save', '-o', path.join(tmp, 'bb.tar'), 'busybox'])).code, 0);
  assert.equal((await runCmd('tar', ['-xf', path.join(tmp, 'bb.tar'), '-C', tmp])).code, 0);
  const manifest = JSON.parse(await fs.readFile(path.join(tmp, 'manifest.json'), 'utf8')) as Array<{ Layers: string[] }>;
  const imp = await e.docker(['import', '--change', 'HEALTHCHECK --interval=300ms --retries=1 CMD test -e /bin/sh', '--change', 'CMD ["sleep", "600"]', path.join(tmp, manifest[0]!.Layers[0]!), 'hcimg:1']);
  assert.equal(imp.code, 0, imp.stderr);
  assert.equal((await e.docker(['image', 'inspect', '-f', '{{json .Config.Healthcheck}}', 'hcimg:1'])).stdout.trim(), '{"Test":["CMD-SHELL","test -e /bin/sh"],"Interval":300000000,"Retries":1}');

  assert.equal((await e.docker(['run', '-d', '--name', 'fromimg', 'hcimg:1'])).code, 0);
  await until(async () => (await status('fromimg')) === 'healthy', 5000);

  assert.equal((await e.docker(['run', '-d', '--name', 'merged', '--health-timeout', '2s', 'hcimg:1'])).code, 0);
  assert.equal((await e.docker(['inspect', '-f', '{{json .Config.Healthcheck}}', 'merged'])).stdout.trim(), '{"Test":["CMD-SHELL","test -e /bin/sh"],"Interval":300000000,"Timeout":2000000000,"Retries":1}');

  assert.equal((await e.docker(['run', '-d', '--name', 'nohc', '--no-healthcheck', 'hcimg:1'])).code, 0);
  assert.equal((await e.docker(['inspect', '-f', '{{json .Config.Healthcheck.Test}}', 'nohc'])).stdout.trim(), '["NONE"]');
  await until(async () => (await status('fromimg')) === 'healthy');
  assert.equal(await health('nohc'), null);
  assert.match(await psStatus('nohc'), /^Up [^(]*$/);
  assert.ok((await psHealth('none')).includes('nohc'));

  const bad = await e.api('POST', '/containers/create', { Image: 'busybox', Cmd: ['true'], Healthcheck: { Test: ['CMD', 'true'], Interval: 500 } });
  assert.equal(bad.status, 400);
  assert.match(bad.json().message, /Interval in Healthcheck cannot be less than 1ms/);
  const neg = await e.api('POST', '/containers/create', { Image: 'busybox', Cmd: ['true'], Healthcheck: { Test: ['CMD', 'true'], Retries: -1 } });
  assert.match(neg.json().message, /Retries in Healthcheck cannot be negative/);
  assert.equal((await e.docker(['import', '--change', 'HEALTHCHECK FOO bar', path.join(tmp, manifest[0]!.Layers[0]!)])).code, 1);
  await e.docker(['rm', '-f', 'fromimg', 'merged', 'nohc']);
});

test('pause skips checks; after an engine restart (kill -9) checks resume with the status kept', async () => {
  assert.equal((await e.docker(['run', '-d', '--name', 'keep', '--health-cmd', 'test -f /tmp/ok', '--health-interval', '300ms', '--health-retries', '2', 'busybox', 'sh', '-c', 'touch /tmp/ok; exec sleep 600'])).code, 0);
  await until(async () => (await status('keep')) === 'healthy', 5000);

  assert.equal((await e.docker(['pause', 'keep'])).code, 0);
  // Docker leaves a container whose monitor stopped unhealthy; ps shows it paused
  assert.equal(await status('keep'), 'unhealthy');
  assert.match(await psStatus('keep'), /\(Paused\)$/);
  const n = (await health('keep'))!.Log.at(-1)!.Start;
  await new Promise((r) => setTimeout(r, 800));
  assert.equal((await health('keep'))!.Log.at(-1)!.Start, n, 'a paused container must not be checked');
  assert.equal((await e.docker(['unpause', 'keep'])).code, 0);
  await until(async () => (await status('keep')) === 'healthy', 5000);

  await e.kill9();
  await e.launch();
  assert.equal(await status('keep'), 'healthy');
  const before = Date.now();
  await until(async () => Date.parse((await health('keep'))!.Log.at(-1)!.Start) >= before, 5000);
  assert.equal((await e.docker(['exec', 'keep', 'rm', '/tmp/ok'])).code, 0);
  await until(async () => (await status('keep')) === 'unhealthy', 5000);
  await e.docker(['rm', '-f', 'keep']);
});
