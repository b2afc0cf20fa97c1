import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { TestEngine } from '../harness.js';

let e: TestEngine;
before(async () => {
  e = await TestEngine.start();
});
after(async () => {
  await e?.cleanup();
});

const inspect = async (name: string, format: string) => (await e.docker(['inspect', '-f', format, name])).stdout.trim();

test('log drivers: json-file by default, --log-opt max-size caps the file, unknown drivers and options are refused', async () => {
  assert.equal((await e.docker(['info', '-f', '{{.LoggingDriver}}'])).stdout.trim(), 'json-file');
  await e.docker(['run', '--name', 'plain', 'busybox', 'true']);
  assert.equal(await inspect('plain', '{{.HostConfig.LogConfig.Type}}'), 'json-file');

  const r = await e.docker(['run', '-d', '--name', 'capped', '--log-opt', 'max-size=4k', '--log-opt', 'max-file=3', 'busybox', 'sh', '-c', 'i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /max-file has no effect/);
  assert.equal((await e.docker(['wait', 'capped'])).stdout.trim(), '0');
  const id = await inspect('capped', '{{.Id}}');
  const size = (await fs.stat(path.join(e.dir, 'root', 'containers', id, 'container.log'))).size;
  assert.ok(size > 0 && size <= 4096, `log file is ${size} bytes`);
  const logs = (await e.docker(['logs', 'capped'])).stdout.trim().split('\n');
  assert.equal(logs.at(-1), 'line-1999');
  assert.ok(logs.length < 2000);

  const bad = await e.api('POST', '/containers/create', { Image: 'busybox', HostConfig: { LogConfig: { Type: 'syslog', Config: {} } } });
  assert.equal(bad.status, 400);
  assert.match(bad.json<{ message: string }>().message, /no log driver named 'syslog'/);
  const badOpt = await e.docker(['run', '--log-opt', 'max-sise=1k', 'busybox', 'true']);
  assert.notEqual(badOpt.code, 0);
  assert.match(badOpt.stderr, /unknown log opt 'max-sise' for json-file log driver/);
});

test('--log-driver none: attached output still flows, docker logs says it cannot read', async () => {
  const r = await e.docker(['run', '--name', 'quiet', '--log-driver', 'none', 'busybox', 'echo', 'to-the-terminal']);
  assert.equal(r.stdout, 'to-the-terminal\n');
  const logs = await e.docker(['logs', 'quiet']);
  assert.notEqual(logs.code, 0);
  assert.match(logs.stderr, /configured logging driver does not support reading/);
  assert.equal((await e.api('GET', '/containers/quiet/logs?stdout=1')).status, 501);
});

test('docker container prune removes stopped containers only, with label and until filters; system prune too', async () => {
  await e.docker(['run', '-d', '--name', 'alive', 'busybox', 'sleep', '600']);
  await e.docker(['create', '--name', 'fresh', 'busybox', 'true']);
  await e.docker(['run', '--name', 'wrote', 'busybox', 'sh', '-c', 'head -c 300000 /dev/zero > /junk']);
  await e.docker(['run', '--name', 'kept', '--label', 'keep=yes', 'busybox', 'true']);
  const id = (name: string) => inspect(name, '{{.Id}}');
  const [fresh, wrote, kept] = [await id('fresh'), await id('wrote'), await id('kept')];

  // until: only containers created before the given time
  const early = await e.api('POST', `/containers/prune?filters=${encodeURIComponent(JSON.stringify({ until: ['1h'] }))}`);
  assert.deepEqual(early.json<{ ContainersDeleted: string[] }>().ContainersDeleted, []);

  const res = await e.api('POST', `/containers/prune?filters=${encodeURIComponent(JSON.stringify({ 'label!': ['keep'] }))}`);
  assert.equal(res.status, 200);
  const body = res.json<{ ContainersDeleted: string[]; SpaceReclaimed: number }>();
  for (const c of [fresh, wrote]) assert.ok(body.ContainersDeleted.includes(c), `${c} pruned`);
  assert.ok(!body.ContainersDeleted.includes(kept));
  assert.ok(body.SpaceReclaimed >= 300000, `reclaimed ${body.SpaceReclaimed}`);
  const names = (await e.docker(['ps', '-a', '--format', '{{.Names}}'])).stdout.split('\n').filter(Boolean).sort();
  assert.ok(names.includes('alive') && names.includes('kept') && !names.includes('fresh') && !names.includes('wrote'), names.join(','));

  const bad = await e.api('POST', `/containers/prune?filters=${encodeURIComponent(JSON.stringify({ status: ['exited'] }))}`);
  assert.equal(bad.status, 400);

  const sys = await e.docker(['system', 'prune', '-f']);
  assert.equal(sys.code, 0, sys.stderr);
  assert.match(sys.stdout, new RegExp(kept));
  assert.equal((await e.docker(['ps', '-a', '--format', '{{.Names}}'])).stdout.trim(), 'alive');
});
