import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestEngine } from '../harness.js';

let e: TestEngine;
before(async () => {
  e = await TestEngine.start();
});
after(async () => {
  await e?.cleanup();
});

const names = async (...args: string[]) => (await e.docker(['ps', '-a', ...args, '--format', '{{.Names}}'])).stdout.split('\n').filter(Boolean).sort();

test('docker ps -s, inspect --size and system df count what a container wrote; shared layers count once', async () => {
  await e.docker(['run', '-d', '--name', 'writer', 'busybox', 'sleep', '600']);
  await e.docker(['exec', 'writer', 'sh', '-c', 'head -c 250000 /dev/zero > /junk']);
  await e.docker(['run', '--name', 'idle', 'busybox', 'true']);
  const [rw, rootfs] = (await e.docker(['inspect', '--size', '-f', '{{.SizeRw}} {{.SizeRootFs}}', 'writer'])).stdout.trim().split(' ').map(Number);
  const imageSize = Number((await e.docker(['image', 'inspect', '-f', '{{.Size}}', 'busybox'])).stdout.trim());
  assert.equal(rw, 250000);
  assert.equal(rootfs, imageSize + 250000);
  const ps = (await e.docker(['ps', '-a', '-s', '--format', '{{.Names}} {{.Size}}'])).stdout;
  assert.match(ps, /writer 250kB \(virtual [\d.]+MB\)/);
  assert.match(ps, /idle 0B/);

  await e.docker(['commit', 'writer', 'snap:1']);
  const df = (await e.api('GET', '/system/df')).json<{ LayersSize: number; Images: Array<{ RepoTags: string[]; SharedSize: number; Size: number }>; Containers: Array<{ Names: string[]; SizeRw: number }> }>();
  assert.equal(df.Containers.find((c) => c.Names[0] === '/writer')?.SizeRw, 250000);
  assert.equal(df.Containers.length, 2);
  const snap = df.Images.find((i) => i.RepoTags.includes('snap:1'))!;
  assert.equal(snap.SharedSize, imageSize);
  // the base image's layers are stored once for both images
  assert.equal(df.LayersSize, snap.Size);
});

test('docker ps filters: publish (host port), expose (container port, ranges), network (any attached network)', async () => {
  await e.docker(['network', 'create', 'side']);
  await e.docker(['run', '-d', '--name', 'web', '-p', '80', '--expose', '9000', 'busybox', 'sleep', '600']);
  await e.docker(['run', '-d', '--name', 'other', '--network', 'side', 'busybox', 'sleep', '600']);
  const hostPort = (await e.docker(['port', 'web', '80'])).stdout.trim().split(':').pop()!;
  assert.deepEqual(await names('--filter', `publish=${hostPort}`), ['web']);
  assert.deepEqual(await names('--filter', 'publish=80'), []);
  assert.deepEqual(await names('--filter', 'expose=80'), ['web']);
  assert.deepEqual(await names('--filter', 'expose=8990-9010/tcp'), ['web']);
  assert.deepEqual(await names('--filter', 'expose=9000/udp'), []);
  assert.deepEqual(await names('--filter', 'network=side'), ['other']);
  const sideId = (await e.docker(['network', 'inspect', '-f', '{{.Id}}', 'side'])).stdout.trim();
  assert.deepEqual(await names('--filter', `network=${sideId.slice(0, 12)}`), ['other']);
  assert.ok((await names('--filter', 'network=bridge')).includes('web'));
  const bad = await e.docker(['ps', '--filter', 'publish=80:80']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /invalid value for filter 'publish'/);
});
