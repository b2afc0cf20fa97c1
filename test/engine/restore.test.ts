import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestEngine, until, sleep } from '../harness.js';

let e: TestEngine;
before(async () => {
  e = await TestEngine.start();
});
after(async () => {
  await e?.cleanup();
});

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const inspect = async (name: string, fmt: string) => (await e.docker(['inspect', '-f', fmt, name])).stdout.trim();

test('live restore: kill -9 of the engine leaves containers running; the new engine re-adopts them', async () => {
  assert.equal((await e.docker(['run', '-d', '--name', 'lr', 'busybox', 'sh', '-c', 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done'])).code, 0);
  assert.equal((await e.docker(['run', '-d', '--name', 'ends', 'busybox', 'sh', '-c', 'sleep 1.5; exit 4'])).code, 0);
  const pid = Number(await inspect('lr', '{{.State.Pid}}'));
  assert.ok(pid > 0);
  await until(async () => (await e.docker(['logs', 'lr'])).stdout.includes('tick 3'));
  const before = (await e.docker(['logs', 'lr'])).stdout.split('\n').length;

  await e.kill9();
  await sleep(2500); // "ends" exits while no engine runs
  assert.ok(alive(pid), 'container process died with the engine');
  await e.launch();

  assert.equal(await inspect('lr', '{{.State.Status}} {{.State.Pid}}'), `running ${pid}`);
  assert.equal(await inspect('ends', '{{.State.Status}} {{.State.ExitCode}}'), 'exited 4');
  const after = (await e.docker(['logs', 'lr'])).stdout.split('\n').length;
  assert.ok(after > before, 'logs kept growing while the engine was down');
  assert.equal((await e.docker(['exec', 'lr', 'echo', 'again'])).stdout, 'again\n');
  assert.match((await e.docker(['ps', '--format', '{{.Names}}'])).stdout, /^lr$/m);

  // follow works on a re-adopted container and ends when it stops
  const follow = e.docker(['logs', '-f', '--tail', '0', 'lr'], { timeoutMs: 20_000 });
  const waiter = e.docker(['wait', 'lr'], { timeoutMs: 20_000 });
  await sleep(500);
  assert.equal((await e.docker(['stop', '-t', '1', 'lr'])).code, 0);
  const f = await follow;
  assert.equal(f.code, 0);
  assert.match(f.stdout, /tick \d+/);
  assert.match((await waiter).stdout.trim(), /^(137|143)$/);
  assert.ok(!alive(pid));
});

test('restart policies: on-failure:N, always, and unless-stopped across an engine restart', async () => {
  await e.docker(['run', '-d', '--name', 'onfail', '--restart', 'on-failure:2', 'busybox', 'sh', '-c', 'exit 1']);
  await until(async () => (await inspect('onfail', '{{.RestartCount}} {{.State.Status}}')) === '2 exited', 15_000);
  await e.docker(['run', '-d', '--name', 'always', '--restart', 'always', 'busybox', 'sh', '-c', 'sleep 0.3']);
  await until(async () => Number(await inspect('always', '{{.RestartCount}}')) >= 2, 15_000);
  assert.equal((await e.docker(['stop', '-t', '0', 'always'])).code, 0);
  const n = await inspect('always', '{{.RestartCount}}');
  await sleep(1000);
  assert.equal(await inspect('always', '{{.RestartCount}}'), n, 'a stopped container must not be restarted by its policy');
  assert.equal(await inspect('always', '{{.State.Status}}'), 'exited');

  await e.docker(['run', '-d', '--name', 'us', '--restart', 'unless-stopped', 'busybox', 'sleep', '600']);
  const pid = Number(await inspect('us', '{{.State.Pid}}'));
  await e.kill9();
  process.kill(pid, 'SIGKILL'); // dies while the engine is down
  await sleep(500);
  await e.launch();
  await until(async () => (await inspect('us', '{{.State.Status}}')) === 'running', 15_000);
  assert.notEqual(Number(await inspect('us', '{{.State.Pid}}')), pid);
  await e.docker(['rm', '-f', 'us', 'always', 'onfail']);
});

test('SIGTERM: the engine stops gracefully and containers keep running', async () => {
  await e.docker(['run', '-d', '--name', 'keep', 'busybox', 'sleep', '600']);
  const pid = Number(await inspect('keep', '{{.State.Pid}}'));
  const code = await e.terminate();
  assert.equal(code, 0);
  assert.ok(alive(pid));
  await e.launch();
  assert.equal(await inspect('keep', '{{.State.Status}}'), 'running');
  await e.docker(['rm', '-f', 'keep']);
});
