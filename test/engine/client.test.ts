import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { TestEngine, until } from '../harness.js';

let e: TestEngine;
before(async () => {
  e = await TestEngine.start();
});
after(async () => {
  await e?.cleanup();
});

test('sampan client: run, ps, logs, exec, inspect, stop, rm with tables and --format json', async () => {
  const fg = await e.sampan(['run', '--rm', 'busybox', 'sh', '-c', 'echo from-sampan; exit 4']);
  assert.equal(fg.code, 4);
  assert.equal(fg.stdout, 'from-sampan\n');
  const d = await e.sampan(['run', '-d', '--name', 'cli1', 'busybox', 'sh', '-c', 'echo line1; sleep 600']);
  assert.equal(d.code, 0, d.stderr);
  assert.match(d.stdout.trim(), /^[a-f0-9]{64}$/);
  const table = await e.sampan(['ps']);
  assert.match(table.stdout, /CONTAINER ID\s+IMAGE\s+COMMAND/);
  assert.match(table.stdout, /cli1/);
  const json = await e.sampan(['ps', '--format', 'json']);
  const rows = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as { Names: string; State: string });
  assert.deepEqual(rows.map((r) => [r.Names, r.State]), [['cli1', 'running']]);
  await until(async () => (await e.sampan(['logs', 'cli1'])).stdout === 'line1\n');
  assert.equal((await e.sampan(['exec', 'cli1', 'sh', '-c', 'echo x; exit 6'])).code, 6);
  const insp = JSON.parse((await e.sampan(['inspect', 'cli1'])).stdout) as Array<{ Name: string; State: { Running: boolean } }>;
  assert.equal(insp[0]!.Name, '/cli1');
  assert.equal(insp[0]!.State.Running, true);
  assert.equal((await e.sampan(['stop', '-t', '1', 'cli1'])).code, 0);
  assert.equal((await e.sampan(['rm', 'cli1'])).code, 0);
  const gone = await e.sampan(['rm', 'cli1']);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /Error response from daemon: No such container: cli1/);
});

test('sampan client: images and load', async () => {
  const imgs = await e.sampan(['images']);
  assert.match(imgs.stdout, /REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE/);
  assert.match(imgs.stdout, /busybox\s+latest/);
  const save = await e.docker(['save', 'busybox', '-o', `${e.dir}/bb.tar`]);
  assert.equal(save.code, 0, save.stderr);
  await e.docker(['tag', 'busybox', 'copy:1']);
  await e.docker(['rmi', 'busybox']);
  const load = await e.sampan(['load', '-i', `${e.dir}/bb.tar`]);
  assert.equal(load.code, 0, load.stderr);
  assert.match(load.stdout, /Loaded image: busybox:latest/);
  const js = (await e.sampan(['images', '--format', 'json'])).stdout.trim().split('\n').map((l) => JSON.parse(l) as { Repository: string });
  assert.deepEqual(js.map((r) => r.Repository).sort(), ['busybox', 'copy']);
  await fs.rm(`${e.dir}/bb.tar`);
  const help = await e.sampan(['run', '--help']);
  assert.match(help.stdout, /Usage: sampan run/);
});
