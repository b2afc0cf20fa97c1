import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SAMPAN, TestEngine, engineCleanup, runCmd, until } from '../harness.js';

// The engine root of a TestEngine is on this host's ext4, which has no project quota: sizes come from ext4 images.
let e: TestEngine;
before(async () => {
  e = await TestEngine.start();
});
after(async () => {
  await e?.cleanup();
});

const MiB = 1024 * 1024;
/** `df` of the container's root: size and free space in bytes. */
async function rootDf(name: string): Promise<{ size: number; avail: number }> {
  const r = await e.docker(['exec', name, 'df', '-k', '/']);
  assert.equal(r.code, 0, r.stderr);
  const f = r.stdout.trim().split('\n').pop()!.split(/\s+/);
  return { size: Number(f[1]) * 1024, avail: Number(f[3]) * 1024 };
}
const imageOf = (id: string) => path.join(e.dir, 'root', 'containers', id, 'fs.ext4');

test('--storage-opt size=64m: the container sees 64 MiB, writing past it fails with ENOSPC, the host keeps its disk', async () => {
  const id = (await e.docker(['run', '-d', '--name', 'q64', '--storage-opt', 'size=64m', 'busybox', 'sleep', '300'])).stdout.trim();
  assert.match(id, /^[0-9a-f]{64}$/);
  const df = await rootDf('q64');
  assert.ok(df.size >= 64 * MiB && df.size < 68 * MiB, `root size ${df.size}`);
  const dd = await e.docker(['exec', 'q64', 'sh', '-c', 'dd if=/dev/zero of=/big bs=1M count=100']);
  assert.notEqual(dd.code, 0);
  assert.match(dd.stderr, /No space left on device/);
  const du = await runCmd('du', ['-k', imageOf(id)]);
  assert.ok(Number(du.stdout.split(/\s/)[0]) * 1024 < 72 * MiB, `the image holds ${du.stdout}`);
  const ins = JSON.parse((await e.docker(['inspect', 'q64'])).stdout)[0];
  assert.deepEqual(ins.HostConfig.StorageOpt, { size: '64m' });
  // rm releases the image and its loop device
  const loops = (await runCmd('losetup', ['-j', imageOf(id)])).stdout;
  assert.match(loops, /\/dev\/loop\d+/);
  assert.equal((await e.docker(['rm', '-f', 'q64'])).code, 0);
  assert.equal((await runCmd('losetup', ['-j', imageOf(id)])).stdout.trim(), '');
  await assert.rejects(fs.stat(imageOf(id)));
});

test('bad storage options are refused at create with a clear 400', async () => {
  const cases: Array<[string, RegExp]> = [
    ['size=lots', /invalid size/],
    ['size=1m', /smallest quota is 16 MiB/],
    ['foo=1', /Unknown option foo/],
  ];
  for (const [opt, msg] of cases) {
    const r = await e.docker(['run', '--rm', '--storage-opt', opt, 'busybox', 'true']);
    assert.equal(r.code, 125, opt);
    assert.match(r.stderr, msg);
  }
  assert.equal((await e.docker(['ps', '-aq', '--filter', 'status=created'])).stdout.trim(), '');
});

test('update raises the size of a stopped container; shrinking or sizing a container without one is refused', async () => {
  assert.equal((await e.docker(['run', '-d', '--name', 'qgrow', '--storage-opt', 'size=32m', 'busybox', 'sleep', '300'])).code, 0);
  assert.equal((await e.docker(['exec', 'qgrow', 'sh', '-c', 'echo kept > /kept'])).code, 0);
  assert.equal((await e.docker(['stop', '-t', '0', 'qgrow'])).code, 0);
  const shrink = await e.sampan(['update', '--storage-opt', 'size=16m', 'qgrow']);
  assert.notEqual(shrink.code, 0);
  assert.match(shrink.stderr, /cannot shrink/);
  const up = await e.sampan(['update', '--storage-opt', 'size=96m', 'qgrow']);
  assert.equal(up.code, 0, up.stderr);
  assert.equal(JSON.parse((await e.docker(['inspect', 'qgrow'])).stdout)[0].HostConfig.StorageOpt.size, String(96 * MiB));
  assert.equal((await e.docker(['start', 'qgrow'])).code, 0);
  assert.ok((await rootDf('qgrow')).size >= 96 * MiB);
  assert.equal((await e.docker(['exec', 'qgrow', 'cat', '/kept'])).stdout, 'kept\n');
  const dd = await e.docker(['exec', 'qgrow', 'dd', 'if=/dev/zero', 'of=/f', 'bs=1M', 'count=64']);
  assert.equal(dd.code, 0, dd.stderr);
  await e.docker(['rm', '-f', 'qgrow']);
  assert.equal((await e.docker(['run', '-d', '--name', 'qplain', 'busybox', 'sleep', '300'])).code, 0);
  const none = await e.sampan(['update', '--storage-opt', 'size=96m', 'qplain']);
  assert.notEqual(none.code, 0);
  assert.match(none.stderr, /created without --storage-opt size/);
  await e.docker(['rm', '-f', 'qplain']);
});

test('a sized layer comes back after its mount is gone (as after a reboot), with its data', async () => {
  const id = (await e.docker(['create', '--name', 'qboot', '--storage-opt', 'size=32m', 'busybox', 'sh', '-c', 'cat /data.txt; sleep 300'])).stdout.trim();
  const file = path.join(e.dir, 'data.txt');
  await fs.writeFile(file, 'survives\n');
  const cp = await e.docker(['cp', file, 'qboot:/data.txt']);
  assert.equal(cp.code, 0, cp.stderr);
  await e.kill9();
  assert.equal((await runCmd('umount', [path.join(e.dir, 'root', 'containers', id, 'fs')])).code, 0);
  await e.launch();
  assert.equal((await e.docker(['start', 'qboot'])).code, 0);
  await until(async () => (await e.docker(['logs', 'qboot'])).stdout.includes('survives'));
  await e.docker(['rm', '-f', 'qboot']);
});

test('a volume with -o size=32m is capped, starts empty, and rm releases it', async () => {
  assert.equal((await e.docker(['volume', 'create', '-o', 'size=32m', 'qvol'])).code, 0);
  const ins = JSON.parse((await e.docker(['volume', 'inspect', 'qvol'])).stdout)[0];
  assert.deepEqual(ins.Options, { size: '32m' });
  const r = await e.docker(['run', '--rm', '-v', 'qvol:/data', 'busybox', 'sh', '-c', 'ls -A /data; dd if=/dev/zero of=/data/big bs=1M count=50']);
  assert.notEqual(r.code, 0);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /No space left on device/);
  assert.equal((await e.docker(['volume', 'rm', 'qvol'])).code, 0);
  assert.equal((await runCmd('losetup', ['-j', `${ins.Mountpoint}.ext4`])).stdout.trim(), '');
  await assert.rejects(fs.stat(path.dirname(ins.Mountpoint)));
});

test('sampan up --btrfs-image: qgroup quotas (EDQUOT), raised live on a running container, subvolume gone on rm', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sq-'));
  const root = path.join(dir, 'root');
  const sock = path.join(dir, 'e.sock');
  const env = { DOCKER_HOST: `unix://${sock}` };
  const up = spawn(SAMPAN, ['up', '--root', root, '--exec-root', path.join(dir, 'run'), '--socket', sock, '--btrfs-image', '1g'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  up.stdout.on('data', (d: Buffer) => (out += d.toString()));
  up.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const docker = (args: string[]) => runCmd('docker', args, { env });
  try {
    await until(async () => out.includes('docker run'), 30_000).catch(() => assert.fail(out));
    assert.equal((await runCmd('stat', ['-f', '-c', '%T', root])).stdout.trim(), 'btrfs');
    assert.equal((await docker(['run', '-d', '--name', 'bq', '--storage-opt', 'size=64m', 'busybox', 'sleep', '300'])).code, 0);
    const dd = await docker(['exec', 'bq', 'dd', 'if=/dev/zero', 'of=/big', 'bs=1M', 'count=100']);
    assert.notEqual(dd.code, 0);
    assert.match(dd.stderr, /Disk quota exceeded/);
    assert.equal((await docker(['exec', 'bq', 'rm', '/big'])).code, 0);
    const raise = await runCmd(SAMPAN, ['update', '--host', `unix://${sock}`, '--storage-opt', 'size=256m', 'bq']);
    assert.equal(raise.code, 0, raise.stderr);
    const dd2 = await docker(['exec', 'bq', 'dd', 'if=/dev/zero', 'of=/big', 'bs=1M', 'count=100']);
    assert.equal(dd2.code, 0, dd2.stderr);
    assert.equal((await docker(['rm', '-f', 'bq'])).code, 0);
    const subvols = await runCmd('btrfs', ['subvolume', 'list', root]);
    assert.doesNotMatch(subvols.stdout, /containers\//);
  } finally {
    const ids = (await docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
    if (ids.length) await docker(['rm', '-f', ...ids]);
    const gone = new Promise((r) => up.once('exit', r));
    up.kill('SIGTERM');
    await gone;
    await engineCleanup(root, path.join(dir, 'run'));
    const mounts = (await fs.readFile('/proc/self/mounts', 'utf8')).split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(dir)).sort().reverse();
    for (const m of mounts) await runCmd('umount', ['-l', m]);
    await fs.rm(dir, { recursive: true, force: true });
  }
});

