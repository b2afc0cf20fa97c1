import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { promises as fs } from 'node:fs';
import { TestEngine } from '../harness.js';

let e: TestEngine;
before(async () => {
  e = await TestEngine.start();
});
after(async () => {
  await e?.cleanup();
});

const out = async (args: string[]) => {
  const r = await e.docker(args);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
};

test('--pid host and --pid container:NAME share the process namespace', async () => {
  const hostProcs = (await fs.readdir('/proc')).filter((d) => /^\d+$/.test(d)).length;
  const seen = Number(await out(['run', '--rm', '--pid', 'host', 'busybox', 'sh', '-c', 'ls -d /proc/[0-9]* | wc -l']));
  assert.ok(seen > hostProcs / 2, `--pid host sees ${seen} processes, the host has ${hostProcs}`);
  await out(['run', '-d', '--name', 'pidsrc', 'busybox', 'sleep', '301']);
  assert.match(await out(['run', '--rm', '--pid', 'container:pidsrc', 'busybox', 'ps']), /sleep 301/);
  assert.doesNotMatch(await out(['run', '--rm', 'busybox', 'ps']), /sleep 301/);
  await out(['stop', '-t', '0', 'pidsrc']);
  const r = await e.docker(['run', '--rm', '--pid', 'container:pidsrc', 'busybox', 'true']);
  assert.match(r.stderr, /cannot join PID of a non running container/);
});

test('--ipc shareable, container:NAME (with its /dev/shm), private by default, none; --uts host; --cgroupns private', async () => {
  await out(['run', '-d', '--name', 'ipcsrc', '--ipc', 'shareable', '--shm-size', '16m', 'busybox', 'sh', '-c', 'echo in-shm > /dev/shm/x; exec sleep 300']);
  await out(['exec', 'ipcsrc', 'cat', '/dev/shm/x']);
  assert.equal(await out(['run', '--rm', '--ipc', 'container:ipcsrc', 'busybox', 'sh', '-c', 'cat /dev/shm/x; readlink /proc/self/ns/ipc']), `in-shm\n${await out(['exec', 'ipcsrc', 'readlink', '/proc/self/ns/ipc'])}`);
  await out(['run', '-d', '--name', 'private', 'busybox', 'sleep', '300']);
  assert.equal(await out(['inspect', '-f', '{{.HostConfig.IpcMode}}', 'private']), 'private');
  const joined = await e.docker(['run', '--rm', '--ipc', 'container:private', 'busybox', 'true']);
  assert.match(joined.stderr, /non-shareable IPC/);
  assert.notEqual((await e.docker(['run', '--rm', '--ipc', 'none', 'busybox', 'ls', '/dev/shm'])).code, 0);
  // the donor's /dev/shm is a tmpfs on the host, unmounted when it goes
  const shm = `${e.dir}/root/containers/${await out(['inspect', '-f', '{{.Id}}', 'ipcsrc'])}/shm`;
  const mounted = async () => (await fs.readFile('/proc/self/mountinfo', 'utf8')).split('\n').some((l) => l.split(' ')[4] === shm);
  assert.equal(await mounted(), true);
  await out(['rm', '-f', 'ipcsrc']);
  assert.equal(await mounted(), false);

  assert.equal(await out(['run', '--rm', '--uts', 'host', 'busybox', 'hostname']), os.hostname());
  assert.equal(await out(['run', '--rm', '--domainname', 'example.test', 'busybox', 'cat', '/proc/sys/kernel/domainname']), 'example.test');
  assert.match((await e.docker(['run', '--rm', '--uts', 'host', '-h', 'other', 'busybox', 'true'])).stderr, /Conflicting options: hostname and the UTS mode/);
  assert.equal(await out(['run', '--rm', '--cgroupns', 'private', 'busybox', 'sh', '-c', 'grep -c ":/$" /proc/self/cgroup >/dev/null && echo own-root']), 'own-root');
  const userns = await e.api('POST', '/containers/create', { Image: 'busybox', HostConfig: { UsernsMode: 'remap' } });
  assert.equal(userns.status, 400);
  assert.match((await e.docker(['create', '--runtime', 'nvidia', 'busybox'])).stderr, /unknown or invalid runtime name: nvidia/);
  assert.equal((await e.docker(['run', '--rm', '--runtime', 'runc', 'busybox', 'true'])).code, 0);
});

test('--group-add by number and by name; exec sessions get the groups too', async () => {
  assert.match(await out(['run', '--rm', '--group-add', '1234', '--group-add', 'users', 'busybox', 'id', '-G']), /\b100\b.*\b1234\b/);
  await out(['run', '-d', '--name', 'grp', '--group-add', '4321', 'busybox', 'sleep', '300']);
  assert.match(await out(['exec', 'grp', 'id', '-G']), /\b4321\b/);
  assert.match((await e.docker(['run', '--rm', '--group-add', 'no-such-group', 'busybox', 'true'])).stderr, /Unable to find group no-such-group/);
});

test('--volumes-from NAME[:ro|:rw] mounts another container\'s volumes', async () => {
  await out(['run', '-d', '--name', 'vsrc', '-v', '/anon', '-v', 'vf-named:/named', 'busybox', 'sh', '-c', 'echo a > /anon/f; echo n > /named/g; exec sleep 300']);
  await out(['exec', 'vsrc', 'cat', '/anon/f']);
  assert.equal(await out(['run', '--rm', '--volumes-from', 'vsrc', 'busybox', 'sh', '-c', 'cat /anon/f /named/g; echo more >> /anon/f']), 'a\nn');
  const ro = await e.docker(['run', '--rm', '--volumes-from', 'vsrc:ro', 'busybox', 'sh', '-c', 'cat /anon/f; touch /named/x']);
  assert.equal(ro.stdout, 'a\nmore\n');
  assert.match(ro.stderr, /Read-only file system/);
  // its own mount at the same place wins
  assert.equal(await out(['run', '--rm', '--volumes-from', 'vsrc', '--tmpfs', '/anon', 'busybox', 'ls', '/anon']), '');
  assert.equal((await e.api('POST', '/containers/create', { Image: 'busybox', HostConfig: { VolumesFrom: ['vsrc:rx'] } })).status, 400);
  const missing = await e.docker(['create', '--volumes-from', 'no-such-source', 'busybox']);
  assert.match(missing.stderr, /No such container: no-such-source/);
  assert.doesNotMatch(missing.stderr, /Unable to find image/);
});

test('--link NAME:ALIAS: hosts entry and Docker\'s link variables; a missing or stopped target is refused', async () => {
  await out(['run', '-d', '--name', 'linkdb', '-e', 'SECRET=s1', '--expose', '5432', 'busybox', 'httpd', '-f', '-p', '5432', '-h', '/etc']);
  const ip = await out(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'linkdb']);
  const r = await out(['run', '--rm', '--name', 'linkweb', '--link', 'linkdb:database', 'busybox', 'sh', '-c', 'grep database /etc/hosts; env | grep ^DATABASE_ | sort; wget -q -O /dev/null http://database:5432/hostname && echo reached']);
  const lines = r.split('\n');
  assert.match(lines[0]!, new RegExp(`^${ip.replace(/\./g, '\\.')}\\tdatabase\\t[0-9a-f]{12}\\tlinkdb$`));
  assert.deepEqual(lines.slice(1), [
    'DATABASE_ENV_SECRET=s1',
    'DATABASE_NAME=/linkweb/database',
    `DATABASE_PORT=tcp://${ip}:5432`,
    `DATABASE_PORT_5432_TCP=tcp://${ip}:5432`,
    `DATABASE_PORT_5432_TCP_ADDR=${ip}`,
    'DATABASE_PORT_5432_TCP_PORT=5432',
    'DATABASE_PORT_5432_TCP_PROTO=tcp',
    'reached',
  ]);
  const missing = await e.docker(['create', '--link', 'no-such-ctr', 'busybox', 'true']);
  assert.match(missing.stderr, /could not get container for no-such-ctr/);
  assert.doesNotMatch(missing.stderr, /Unable to find image/);
  await out(['stop', '-t', '0', 'linkdb']);
  assert.match((await e.docker(['run', '--rm', '--link', 'linkdb', 'busybox', 'true'])).stderr, /Cannot link to a non running container: \/linkdb AS/);
});
