import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { TestEngine, freePort, runCmd, sleep, until } from '../harness.js';

let e: TestEngine;
let work: string;
let busyboxId: string;

before(async () => {
  e = await TestEngine.start();
  work = path.join(e.dir, 'work');
  await fs.mkdir(work);
  busyboxId = (await e.docker(['image', 'inspect', '-f', '{{.Id}}', 'busybox'])).stdout.trim();
});
after(async () => {
  await e?.cleanup();
});

const lines = (s: string) => s.split('\n').filter(Boolean);

async function ok(args: string[]): Promise<string> {
  const r = await e.docker(args);
  assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

interface Inspect {
  Id: string;
  Parent: string;
  Comment: string;
  Author: string;
  Config: { Cmd: string[] | null; Env: string[] | null };
  RootFS: { Layers: string[] };
}
const inspect = async (ref: string) => (JSON.parse(await ok(['image', 'inspect', ref])) as Inspect[])[0]!;

/** Writes, changes and deletions of every kind the image layer must carry. */
const SCRIPT = [
  'echo new > /new.txt',
  'ln /new.txt /hard.txt',
  'echo changed >> /etc/passwd',
  'rm /etc/group',
  'rm -rf /var/spool',
  // the image's /usr/sbin replaced by a new, opaque directory
  'rm -rf /usr/sbin && mkdir /usr/sbin && echo keep > /usr/sbin/keep',
  'mkdir -p /data/sub && echo deep > /data/sub/f && chmod 700 /data/sub',
  'ln -s /new.txt /link',
  'mkfifo /fifo',
  'mknod /null2 c 1 3',
].join(' && ');

test('docker commit keeps what a container wrote, changed and deleted; the image runs with exactly that', async () => {
  await ok(['run', '--name', 'c1', 'busybox', 'sh', '-c', SCRIPT]);
  const id = (await ok(['commit', 'c1', 'snap:1'])).trim();
  assert.match(id, /^sha256:[a-f0-9]{64}$/);
  const img = await inspect('snap:1');
  assert.equal(img.Id, id);
  assert.equal(img.RootFS.Layers.length, (await inspect('busybox')).RootFS.Layers.length + 1);

  const check = [
    'cat /new.txt',
    'stat -c %h /hard.txt',
    'tail -n 1 /etc/passwd',
    'test -e /etc/group && echo group-here || echo group-gone',
    'test -e /var/spool && echo spool-here || echo spool-gone',
    'ls -A /usr/sbin',
    'cat /data/sub/f',
    'stat -c %a /data/sub',
    'readlink /link',
    'test -p /fifo && echo fifo',
    "stat -c '%F %t %T' /null2",
    'test -x /bin/busybox && echo busybox-here',
  ].join('; ');
  const out = await ok(['run', '--rm', 'snap:1', 'sh', '-c', check]);
  assert.deepEqual(lines(out), [
    'new',
    '2',
    'changed',
    'group-gone',
    'spool-gone',
    'keep',
    'deep',
    '700',
    '/new.txt',
    'fifo',
    'character special file 1 3',
    'busybox-here',
  ]);
  // the committed image keeps the container's command, as Docker's commit does
  assert.deepEqual(img.Config.Cmd, ['sh', '-c', SCRIPT]);
  assert.equal(img.Parent, busyboxId);
});

test('commit --change, -m and -a show in inspect and history; an unchanged container gives an empty layer', async () => {
  const id = (await ok(['commit', '--change', 'CMD ["echo","hi"]', '--change', 'ENV FOO=bar', '-m', 'a message', '-a', 'Ann <ann@example.com>', 'c1', 'snap:2'])).trim();
  const img = await inspect('snap:2');
  assert.equal(img.Id, id);
  assert.deepEqual(img.Config.Cmd, ['echo', 'hi']);
  assert.ok(img.Config.Env?.includes('FOO=bar'), String(img.Config.Env));
  assert.ok(img.Config.Env?.some((v) => v.startsWith('PATH=')), String(img.Config.Env));
  assert.equal(img.Comment, 'a message');
  assert.equal(img.Author, 'Ann <ann@example.com>');
  assert.equal(await ok(['run', '--rm', 'snap:2']), 'hi\n');

  // the same writable layer gives the same layer digest
  assert.equal(img.RootFS.Layers.at(-1), (await inspect('snap:1')).RootFS.Layers.at(-1));

  const hist = lines(await ok(['history', '--no-trunc', '--format', '{{.ID}}|{{.CreatedBy}}|{{.Comment}}', 'snap:2']));
  assert.equal(hist[0], `${id}|sh -c ${SCRIPT}|a message`);
  assert.ok(hist[1]!.startsWith(`${busyboxId}|`), hist[1]);

  // nothing written (the runtime's own mount points do not count): no diff, and no layer
  await ok(['run', '--name', 'c0', 'busybox', 'true']);
  assert.equal(await ok(['diff', 'c0']), '');
  await ok(['commit', 'c0', 'same:1']);
  const same = await inspect('same:1');
  assert.deepEqual(same.RootFS.Layers, (await inspect('busybox')).RootFS.Layers);
  const sizes = lines(await ok(['history', '--format', '{{.Size}}', 'same:1']));
  assert.equal(sizes[0], '0B');
  await ok(['rm', 'c0']);
  await ok(['rmi', 'same:1']);
});

test('commit of a running container pauses it meanwhile; it keeps running; --pause=false and paused containers', async () => {
  await ok(['run', '-d', '--name', 'live', 'busybox', 'sh', '-c', 'echo alive > /state; exec sleep 300']);
  await until(async () => (await e.docker(['exec', 'live', 'cat', '/state'])).stdout === 'alive\n');
  const since = Math.floor(Date.now() / 1000) - 1;
  await ok(['commit', 'live', 'live:1']);
  const mid = Math.floor(Date.now() / 1000) + 1;
  const actions = lines(await ok(['events', '--since', String(since), '--until', String(mid), '--filter', 'container=live', '--format', '{{.Action}}']));
  assert.deepEqual(actions.filter((a) => ['pause', 'commit', 'unpause'].includes(a)), ['pause', 'commit', 'unpause']);
  assert.equal((await ok(['inspect', '-f', '{{.State.Status}}', 'live'])).trim(), 'running');
  assert.equal(await ok(['exec', 'live', 'echo', 'still']), 'still\n');
  assert.equal(await ok(['run', '--rm', 'live:1', 'cat', '/state']), 'alive\n');

  await ok(['commit', '--pause=false', 'live', 'live:2']);
  const end2 = Math.floor(Date.now() / 1000) + 1;
  const actions2 = lines(await ok(['events', '--since', String(since), '--until', String(end2), '--filter', 'container=live', '--format', '{{.Action}}']));
  assert.deepEqual(actions2.filter((a) => ['pause', 'commit', 'unpause'].includes(a)), ['pause', 'commit', 'unpause', 'commit']);

  // an already paused container stays paused
  await ok(['pause', 'live']);
  await ok(['commit', 'live', 'live:3']);
  assert.equal((await ok(['inspect', '-f', '{{.State.Status}}', 'live'])).trim(), 'paused');
  await ok(['rm', '-f', 'live']);
  await ok(['rmi', 'live:1', 'live:2', 'live:3']);
});

test('docker diff lists added, changed and deleted paths as Docker does', async () => {
  await ok(['run', '--name', 'd1', 'busybox', 'sh', '-c', 'echo a > /added && echo m >> /etc/passwd && rm /etc/group && rm -rf /var/spool && mkdir /newdir && touch /newdir/f && rm -rf /usr/sbin && mkdir /usr/sbin && touch /usr/sbin/x']);
  assert.deepEqual(lines(await ok(['diff', 'd1'])), [
    'A /added',
    'C /etc',
    'D /etc/group',
    'C /etc/passwd',
    'A /newdir',
    'A /newdir/f',
    'C /usr',
    // an opaque directory: the old one went, a new one took its place
    'D /usr/sbin',
    'A /usr/sbin/x',
    'C /var',
    'D /var/spool',
  ]);
  const api = await e.api('GET', '/containers/d1/changes');
  assert.equal(api.status, 200);
  assert.deepEqual(api.json<Array<{ Path: string; Kind: number }>>()[0], { Path: '/added', Kind: 1 });
  assert.equal((await e.api('GET', '/containers/nosuch/changes')).status, 404);
});

test('docker export writes the merged filesystem as a tar, stopped or running', async () => {
  const file = path.join(work, 'd1.tar');
  await ok(['export', '-o', file, 'd1']);
  const names = lines((await runCmd('tar', ['-tf', file])).stdout);
  for (const n of ['added', 'bin/busybox', 'etc/passwd', 'newdir/f', 'usr/sbin/x', 'usr/bin/']) assert.ok(names.includes(n), `${n} missing in ${names.slice(0, 20).join(' ')}`);
  for (const n of ['etc/group', 'var/spool/', 'var/spool/mail/']) assert.ok(!names.includes(n), `${n} should be gone`);
  assert.ok(!names.some((n) => n.includes('.wh.')), 'no whiteouts in an export');
  assert.match((await runCmd('tar', ['-xOf', file, 'etc/passwd'])).stdout, /\nm\n$/);

  await ok(['run', '-d', '--name', 'exp', 'busybox', 'sh', '-c', 'echo running > /r; exec sleep 300']);
  await until(async () => (await e.docker(['exec', 'exp', 'cat', '/r'])).code === 0);
  const piped = await runCmd('sh', ['-c', `docker export exp | tar -t`], { env: e.env });
  assert.equal(piped.code, 0, piped.stderr);
  assert.ok(lines(piped.stdout).includes('r'));
  // mounts inside the running container (proc, sys) are not part of it
  assert.ok(!lines(piped.stdout).some((n) => n.startsWith('proc/') && n !== 'proc/'), 'proc contents exported');
  await ok(['rm', '-f', 'exp']);
});

test('parents: an untagged commit under a tagged one is an intermediate image; rmi and prune treat the chain as Docker', async () => {
  await ok(['run', '--name', 'p1', 'busybox', 'sh', '-c', 'echo 1 > /one']);
  const id1 = (await ok(['commit', 'p1'])).trim();
  await ok(['run', '--name', 'p2', id1, 'sh', '-c', 'echo 2 > /two']);
  const id2 = (await ok(['commit', 'p2', 'chain:2'])).trim();
  await ok(['run', '--name', 'p3', id1, 'sh', '-c', 'echo 3 > /three']);
  const id3 = (await ok(['commit', 'p3', 'chain:3'])).trim();
  await ok(['rm', 'p1', 'p2', 'p3']);

  assert.equal((await inspect('chain:2')).Parent, id1);
  assert.equal((await inspect(id1)).Parent, busyboxId);
  const listed = lines(await ok(['images', '-q', '--no-trunc']));
  assert.ok(!listed.includes(id1), 'intermediate image listed without -a');
  assert.ok(listed.includes(id2) && listed.includes(id3));
  assert.ok(lines(await ok(['images', '-a', '-q', '--no-trunc'])).includes(id1));
  assert.ok(!lines(await ok(['images', '-q', '--no-trunc', '--filter', 'dangling=true'])).includes(id1));
  const api = (await e.api('GET', '/images/json')).json<Array<{ Id: string; ParentId: string }>>();
  assert.equal(api.find((i) => i.Id === id2)?.ParentId, id1);

  // history walks the chain where the images are here
  const hist = lines(await ok(['history', '--no-trunc', '--format', '{{.ID}}', 'chain:2']));
  assert.deepEqual(hist.slice(0, 3), [id2, id1, busyboxId]);
  assert.ok(hist.slice(3).every((h) => h === '<missing>'), hist.join(' '));

  // the parent link survives an engine restart
  assert.equal(await e.terminate(), 0);
  await e.launch();
  assert.equal((await inspect('chain:3')).Parent, id1);

  // prune keeps an untagged image that is the parent of a kept one
  await ok(['image', 'prune', '-f']);
  await ok(['image', 'inspect', id1]);
  // rmi: the untagged parent goes with its last child only
  assert.equal(await ok(['rmi', 'chain:2']), `Untagged: chain:2\nDeleted: ${id2}\n`);
  await ok(['image', 'inspect', id1]);
  assert.equal(await ok(['rmi', 'chain:3']), `Untagged: chain:3\nDeleted: ${id3}\nDeleted: ${id1}\n`);
  assert.notEqual((await e.docker(['image', 'inspect', id1])).code, 0);
  assert.equal((await ok(['images', '-q', '--no-trunc', 'busybox'])).trim(), busyboxId);

  // a dangling leaf and its untagged parent: prune removes both
  await ok(['run', '--name', 'q1', 'busybox', 'sh', '-c', 'echo 1 > /one']);
  const q1 = (await ok(['commit', 'q1'])).trim();
  await ok(['run', '--name', 'q2', q1, 'sh', '-c', 'echo 2 > /two']);
  const q2 = (await ok(['commit', 'q2'])).trim();
  await ok(['rm', 'q1', 'q2']);
  const pruned = await ok(['image', 'prune', '-f']);
  assert.match(pruned, new RegExp(`deleted: ${q2}`));
  assert.match(pruned, new RegExp(`deleted: ${q1}`));
  assert.equal((await ok(['images', '-a', '-q', '--no-trunc'])).includes(q1), false);
});

test('commit refuses bad input with nothing left behind: missing container 404, bad name 400, bad change 400', async () => {
  const before = await ok(['images', '-a', '-q', '--no-trunc']);
  const missing = await e.docker(['commit', 'nosuch', 'x:1']);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /No such container: nosuch/);
  assert.equal((await e.api('POST', '/commit?container=nosuch')).status, 404);

  const badName = await e.api('POST', '/commit?container=c1&repo=BAD%20NAME');
  assert.equal(badName.status, 400, badName.body.toString());
  const upper = await e.api('POST', '/commit?container=c1&repo=Upper');
  assert.equal(upper.status, 400, upper.body.toString());
  assert.equal((await e.api('POST', `/commit?container=c1&repo=x&tag=${encodeURIComponent('a@b')}`)).status, 400);

  const badChange = await e.docker(['commit', '--change', 'RUN echo no', 'c1', 'bad:1']);
  assert.notEqual(badChange.code, 0);
  assert.match(badChange.stderr, /not a valid change command/);
  assert.equal((await e.api('POST', `/commit?container=c1&changes=${encodeURIComponent('EXPOSE nope')}`)).status, 400);
  assert.equal(await ok(['images', '-a', '-q', '--no-trunc']), before);

  // the API form with a body: a container Config that the container's own fills in
  const res = await e.api('POST', '/commit?container=c1&repo=viaapi&tag=1&comment=api', { Cmd: ['cat', '/new.txt'], Labels: { via: 'api' } });
  assert.equal(res.status, 201, res.body.toString());
  const { Id } = res.json<{ Id: string }>();
  assert.equal((await inspect('viaapi:1')).Id, Id);
  assert.equal(await ok(['run', '--rm', 'viaapi:1']), 'new\n');
  assert.equal((await ok(['image', 'inspect', '-f', '{{.Config.Labels.via}} {{.Comment}}', 'viaapi:1'])).trim(), 'api api');
});

test('a committed image (its layer kept uncompressed) pushes to Distribution and pulls back', { timeout: 120_000 }, async () => {
  const dir = path.join(e.dir, 'registry');
  await fs.mkdir(dir);
  const port = await freePort();
  await fs.writeFile(path.join(dir, 'config.yml'), `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\nhttp:\n  addr: 127.0.0.1:${port}\n`);
  const reg = spawn('docker-registry', ['serve', path.join(dir, 'config.yml')], { stdio: 'ignore' });
  try {
    await until(async () => fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.status === 200, () => false), 10_000);
    const ref = `127.0.0.1:${port}/snap:1`;
    await ok(['tag', 'snap:1', ref]);
    await ok(['push', ref]);
    await ok(['rmi', ref, 'snap:1', 'snap:2']);
    await ok(['pull', ref]);
    assert.equal(await ok(['run', '--rm', ref, 'cat', '/new.txt', '/usr/sbin/keep']), 'new\nkeep\n');
    await ok(['rmi', ref]);
  } finally {
    reg.kill('SIGTERM');
    await sleep(100);
  }
});
