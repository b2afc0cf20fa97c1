import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { promises as fs } from 'node:fs';
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import tar from 'tar-stream';
import { TestEngine, demux, runCmd, until } from '../harness.js';

/** Where Sampan answered otherwise than dockerd on the same request (issue 14): each as Docker does it. */
let e: TestEngine;
let docker: Docker;
before(async () => {
  e = await TestEngine.start();
  docker = new Docker({ socketPath: e.sock });
});
after(async () => {
  await e?.cleanup();
});

const PYTHON = '/usr/bin/python3';

/** Run docker-py code that leaves its findings in `out`; returns them. */
async function py<T = Record<string, unknown>>(code: string): Promise<T> {
  const prelude = `import docker, io, json, os, socket, tarfile\nc = docker.DockerClient(base_url=os.environ['DOCKER_HOST'], version='auto')\nout = {}\n`;
  const r = await runCmd(PYTHON, ['-c', `${prelude}${code}\nprint(json.dumps(out))`], { env: e.env });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}

async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, body] of Object.entries(files)) pack.entry({ name }, body);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function inspect(ref: string): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = await e.api('GET', `/containers/${ref}/json`);
  assert.equal(r.status, 200, r.body.toString());
  return r.json();
}

async function execCreate(ctr: string, body: Record<string, unknown>): Promise<string> {
  const r = await e.api('POST', `/containers/${ctr}/exec`, body);
  assert.equal(r.status, 201, r.body.toString());
  return r.json<{ Id: string }>().Id;
}

test('exec: the start request\'s Tty decides whether the output is multiplexed', async () => {
  assert.equal((await e.docker(['run', '-d', '--name', 'ex', 'busybox', 'sleep', '600'])).code, 0);
  // no terminal, started as if it had one: raw output
  let id = await execCreate('ex', { Cmd: ['echo', 'out'], AttachStdout: true, AttachStderr: true, Tty: false });
  let r = await e.api('POST', `/exec/${id}/start`, { Tty: true });
  assert.equal(r.headers['content-type'], 'application/vnd.docker.raw-stream');
  assert.equal(r.body.toString(), 'out\n');
  // a terminal, started without Tty (what SDKs send unless told): multiplexed, as dockerd does
  id = await execCreate('ex', { Cmd: ['echo', 'out'], AttachStdout: true, AttachStderr: true, Tty: true });
  r = await e.api('POST', `/exec/${id}/start`, {});
  assert.equal(r.headers['content-type'], 'application/vnd.docker.multiplexed-stream');
  assert.equal(demux(r.body).stdout, 'out\r\n');

  const ex = await docker.getContainer('ex').exec({ Cmd: ['echo', 'node'], AttachStdout: true, AttachStderr: true });
  const raw = await ex.start({ Tty: true });
  let text = '';
  for await (const c of raw) text += (c as Buffer).toString();
  assert.equal(text, 'node\n');

  const out = await py<{ raw: string }>(`
x = c.api.exec_create('ex', ['echo', 'py'], tty=False)
out['raw'] = c.api.exec_start(x['Id'], tty=True).decode()
`);
  assert.equal(out.raw, 'py\n');
});

test('exec: detachKeys is taken in any case, as Go decodes JSON; it detaches the session and leaves the process', async () => {
  // Docker shows the keys as the bytes they stand for: ctrl-x, x
  const keys = Buffer.from([0x18, 0x78]).toString('base64');
  let id = await execCreate('ex', { Cmd: ['cat'], detachKeys: 'ctrl-x,x' });
  assert.equal((await e.api('GET', `/exec/${id}/json`)).json().DetachKeys, keys);
  // a later key for the same field wins
  id = await execCreate('ex', { Cmd: ['cat'], DetachKeys: 'ctrl-x,x', detachkeys: 'ctrl-y' });
  assert.equal((await e.api('GET', `/exec/${id}/json`)).json().DetachKeys, Buffer.from([0x19]).toString('base64'));
  assert.equal((await e.api('POST', '/containers/ex/exec', { Cmd: ['cat'], detachkeys: 'bad-key' })).status, 400);

  const ex = await docker.getContainer('ex').exec({ Cmd: ['cat'], AttachStdin: true, AttachStdout: true, Tty: true, detachKeys: 'ctrl-x,x' } as Docker.ExecCreateOptions);
  assert.equal((await ex.inspect()).DetachKeys as unknown, keys);

  // docker-py sends `detachKeys`: typed into the session, they end it while cat runs on
  const out = await py<{ keys: string; running: boolean; ended: boolean }>(`
x = c.api.exec_create('ex', ['cat'], stdin=True, tty=True, detach_keys='ctrl-x,x')
out['keys'] = c.api.exec_inspect(x['Id'])['DetachKeys']
s = c.api.exec_start(x['Id'], tty=True, socket=True)
sock = s._sock
sock.sendall(b'hello\\n')
sock.sendall(b'\\x18x')
sock.settimeout(60)
while True:
    b = sock.recv(4096)
    if not b:
        break
out['ended'] = True
out['running'] = c.api.exec_inspect(x['Id'])['Running']
`);
  assert.deepEqual(out, { keys, running: true, ended: true });
});

test('create: Env entries without "=" are kept, and unset the variable in the container', async () => {
  const r = await e.api('POST', '/containers/create?name=envc', { Image: 'busybox', Cmd: ['env'], Env: ['Foo', 'A=1', 'HOSTNAME'] });
  assert.equal(r.status, 201, r.body.toString());
  // Docker's merge: the request's entries as sent, then the image's it does not name
  assert.deepEqual((await inspect('envc')).Config.Env, ['Foo', 'A=1', 'HOSTNAME', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
  const env = (await e.docker(['start', '-a', 'envc'])).stdout.split('\n');
  assert.ok(env.includes('A=1'), env.join(' '));
  assert.ok(!env.some((v) => /^(Foo|HOSTNAME)(=|$)/.test(v)), env.join(' '));

  const c = await docker.createContainer({ Image: 'busybox', Env: ['Bar', 'B=2'] });
  assert.deepEqual((await c.inspect()).Config.Env.slice(0, 2), ['Bar', 'B=2']);
  await c.remove();
  const out = await py<{ env: string[] }>(`
ct = c.containers.create('busybox', environment=['Baz', 'C=3'])
out['env'] = ct.attrs['Config']['Env'][:2]
ct.remove()
`);
  assert.deepEqual(out.env, ['Baz', 'C=3']);
});

test('create: HostConfig.Runtime is runc; an unknown log driver gets Docker\'s message alone', async () => {
  assert.equal((await inspect('envc')).HostConfig.Runtime, 'runc');
  const bad = await e.api('POST', '/containers/create', { Image: 'busybox', HostConfig: { LogConfig: { Type: 'asdf' } } });
  assert.equal(bad.status, 400);
  assert.equal(bad.json().message, "logger: no log driver named 'asdf' is registered");

  const c = await docker.createContainer({ Image: 'busybox' });
  assert.equal((await c.inspect()).HostConfig.Runtime, 'runc');
  await c.remove();
  await assert.rejects(docker.createContainer({ Image: 'busybox', HostConfig: { LogConfig: { Type: 'asdf', Config: {} } } }), (err: { statusCode?: number; json?: { message?: string } }) => {
    assert.equal(err.statusCode, 400);
    assert.equal(err.json?.message, "logger: no log driver named 'asdf' is registered");
    return true;
  });
  const out = await py<{ runtime: string; err: string }>(`
ct = c.containers.create('busybox')
out['runtime'] = ct.attrs['HostConfig']['Runtime']
ct.remove()
try:
    c.containers.create('busybox', log_config={'Type': 'asdf'})
except docker.errors.APIError as err:
    out['err'] = err.explanation
`);
  assert.deepEqual(out, { runtime: 'runc', err: "logger: no log driver named 'asdf' is registered" });
});

test('create: anonymous volumes exist from create on; archives go into them before the first start', async () => {
  const before = (await e.docker(['volume', 'ls', '-q'])).stdout.split('\n').filter(Boolean).length;
  assert.equal((await e.docker(['create', '--name', 'av', '-v', '/data', 'busybox', 'cat', '/data/f.txt'])).code, 0);
  assert.equal((await e.docker(['volume', 'ls', '-q'])).stdout.split('\n').filter(Boolean).length, before + 1);
  const [m] = (await inspect('av')).Mounts;
  assert.equal(m.Type, 'volume');
  assert.ok(m.Name && m.Source, JSON.stringify(m));
  const put = await e.api('PUT', '/containers/av/archive?path=/data', await tarOf({ 'f.txt': 'put before start\n' }), { 'Content-Type': 'application/x-tar' });
  assert.equal(put.status, 200, put.body.toString());
  assert.equal((await e.docker(['start', '-a', 'av'])).stdout, 'put before start\n');

  // an image's VOLUME is filled with the image's files at create, so a file put there joins them
  assert.equal((await e.docker(['run', '--name', 'volbase', 'busybox', 'sh', '-c', 'mkdir /vol && echo from-image > /vol/img.txt'])).code, 0);
  assert.equal((await e.docker(['commit', '--change', 'VOLUME /vol', 'volbase', 'volimg'])).code, 0);
  const c = await docker.createContainer({ Image: 'volimg', Cmd: ['cat', '/vol/img.txt', '/vol/node.txt'] });
  await c.putArchive(await tarOf({ 'node.txt': 'from node\n' }), { path: '/vol' });
  const logs = new PassThrough();
  let text = '';
  logs.on('data', (b: Buffer) => (text += b.toString()));
  const stream = await c.attach({ stream: true, stdout: true, stderr: true });
  const ended = new Promise((r) => stream.on('end', r));
  docker.modem.demuxStream(stream, logs, logs);
  await c.start();
  await ended;
  assert.equal(text, 'from-image\nfrom node\n');

  const out = await py<{ put: boolean; output: string }>(`
ct = c.containers.create('busybox', ['cat', '/data/p.txt'], volumes=['/data'])
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode='w') as t:
    data = b'from python\\n'
    ti = tarfile.TarInfo('p.txt'); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
out['put'] = ct.put_archive('/data', buf.getvalue())
ct.start(); ct.wait()
out['output'] = ct.logs().decode()
`);
  assert.deepEqual(out, { put: true, output: 'from python\n' });
});

test('lifecycle: a container its restart policy is restarting is only removed with force', async () => {
  assert.equal((await e.docker(['run', '-d', '--name', 'rs', '--restart', 'always', 'busybox', 'sh', '-c', 'exit 1'])).code, 0);
  // a few restarts in, the back-off leaves it restarting for seconds
  await until(async () => {
    const c = await inspect('rs');
    return c.State.Restarting && c.RestartCount >= 5;
  }, 60_000);
  const r = await e.api('DELETE', '/containers/rs');
  assert.equal(r.status, 409);
  assert.match(r.json().message, /cannot remove container "\/rs": container is (restarting|running)/);
  await assert.rejects(docker.getContainer('rs').remove(), (err: { statusCode?: number }) => err.statusCode === 409);
  const out = await py<{ status: number }>(`
try:
    c.containers.get('rs').remove()
except docker.errors.APIError as err:
    out['status'] = err.status_code
`);
  assert.equal(out.status, 409);
  assert.equal((await e.docker(['rm', 'rs'])).code, 1);
  assert.equal((await e.api('DELETE', '/containers/rs?force=1')).status, 204);
  assert.equal((await e.api('GET', '/containers/rs/json')).status, 404);
});

test('lifecycle: DELETE /containers/PARENT/ALIAS?link=1 removes a legacy link', async () => {
  assert.equal((await e.docker(['run', '-d', '--name', 'db', 'busybox', 'sleep', '600'])).code, 0);
  for (const n of ['web', 'web2', 'web3']) assert.equal((await e.docker(['create', '--name', n, '--link', 'db:dbal', 'busybox', 'cat', '/etc/hosts'])).code, 0);
  assert.match((await e.docker(['start', '-a', 'web'])).stdout, /\tdbal\t/);

  const rm = await e.docker(['rm', '--link', 'web/dbal']);
  assert.equal(rm.code, 0, rm.stderr);
  assert.equal((await inspect('web')).HostConfig.Links, null);
  assert.doesNotMatch((await e.docker(['start', '-a', 'web'])).stdout, /dbal/);
  // the linked container is untouched
  assert.equal((await inspect('db')).State.Running, true);

  const missing = await e.api('DELETE', '/containers/web/dbal?link=1');
  assert.equal(missing.status, 404);
  assert.equal(missing.json().message, 'No such container: web/dbal');
  // a container's own name is no link: Docker refuses, and the container stays
  const own = await e.api('DELETE', '/containers/web2?link=1');
  assert.equal(own.status, 500);
  assert.equal(own.json().message, 'Conflict, cannot remove the default link name of the container');
  assert.equal((await e.api('GET', '/containers/web2/json')).status, 200);

  await docker.getContainer('web2/dbal').remove({ link: true });
  assert.equal((await inspect('web2')).HostConfig.Links, null);
  await py(`c.api.remove_container('web3/dbal', link=True)`);
  assert.equal((await inspect('web3')).HostConfig.Links, null);
  assert.equal((await inspect('db')).State.Running, true);

  // without link=1 the link's name is the linked container's, as in Docker: that one goes
  assert.equal((await e.docker(['create', '--name', 'db2', 'busybox', 'true'])).code, 0);
  assert.equal((await e.docker(['create', '--name', 'web4', '--link', 'db2:x', 'busybox', 'true'])).code, 0);
  assert.equal((await e.api('DELETE', '/containers/web4/x')).status, 204);
  assert.equal((await e.api('GET', '/containers/db2/json')).status, 404);
  assert.equal((await e.api('GET', '/containers/web4/json')).status, 200);
});

test('lifecycle: commit with pause of a container whose process has just ended commits it', async () => {
  assert.equal((await e.docker(['run', '-d', '--name', 'gone', 'busybox', 'sh', '-c', 'echo kept > /kept; exec sleep 600'])).code, 0);
  await until(async () => (await e.docker(['exec', 'gone', 'cat', '/kept'])).stdout === 'kept\n');
  const pid = (await inspect('gone')).State.Pid as number;
  const stat = async (p: number) => (await fs.readFile(`/proc/${p}/stat`, 'utf8')).replace(/^.*\) /, '').split(' ');
  const monitor = Number((await stat(pid))[1]);
  // hold its monitor still: the process ends, and the engine does not learn of it yet (the window of the race)
  process.kill(monitor, 'SIGSTOP');
  try {
    process.kill(pid, 'SIGKILL');
    await until(async () => (await stat(pid))[0] === 'Z');
    const r = await e.api('POST', '/commit?container=gone&repo=gone1&pause=1');
    assert.equal(r.status, 201, r.body.toString());
    await docker.getContainer('gone').commit({ repo: 'gone2', pause: true });
    // docker-py sends no pause: the engine's default, true
    await py(`c.containers.get('gone').commit('gone3')`);
  } finally {
    process.kill(monitor, 'SIGCONT');
  }
  for (const img of ['gone1', 'gone2', 'gone3']) assert.equal((await e.docker(['run', '--rm', img, 'cat', '/kept'])).stdout, 'kept\n');
  await until(async () => (await inspect('gone')).State.Status === 'exited');
});

/** POST attach (logs and stream, no upgrade), and start the container as soon as the response headers are in. */
function attachThenStart(id: string): Promise<{ body: Buffer; started: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: e.sock, method: 'POST', path: `/v1.44/containers/${id}/attach?logs=1&stream=1&stdout=1&stderr=1` }, (res) => {
      const chunks: Buffer[] = [];
      const started = e.api('POST', `/containers/${id}/start`).then((r) => `${r.status} ${r.body.toString()}`);
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => void started.then((s) => resolve({ body: Buffer.concat(chunks), started: s })));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

test('attach: opened before start, it delivers the output and ends with the container, every time', { timeout: 120_000 }, async () => {
  for (let i = 0; i < 30; i++) {
    const r = await e.api('POST', '/containers/create', { Image: 'busybox', Cmd: ['sh', '-c', `echo out-${i}; echo err-${i} >&2`] });
    const id = r.json<{ Id: string }>().Id;
    const { body, started } = await attachThenStart(id);
    assert.equal(started, '204 ');
    assert.deepEqual(demux(body), { stdout: `out-${i}\n`, stderr: `err-${i}\n` }, `round ${i}`);
    assert.equal((await e.api('POST', `/containers/${id}/wait`)).json().StatusCode, 0);
    assert.equal((await e.api('DELETE', `/containers/${id}`)).status, 204);
  }

  for (let i = 0; i < 5; i++) {
    const c = await docker.createContainer({ Image: 'busybox', Cmd: ['echo', `node-${i}`] });
    const stream = await c.attach({ stream: true, logs: true, stdout: true, stderr: true });
    let text = '';
    const o = new PassThrough().on('data', (b: Buffer) => (text += b.toString()));
    docker.modem.demuxStream(stream, o, o);
    const ended = new Promise((res) => stream.on('end', res));
    await c.start();
    await ended;
    assert.equal(text, `node-${i}\n`);
    await c.wait();
    await c.remove();
  }

  const out = await py<{ outputs: string[] }>(`
out['outputs'] = []
for i in range(5):
    ct = c.containers.create('busybox', ['echo', 'py-%d' % i])
    s = ct.attach(stdout=True, stderr=True, stream=True, logs=True)
    ct.start()
    out['outputs'].append(b''.join(s).decode())
    ct.wait()
    ct.remove()
`);
  assert.deepEqual(out.outputs, [0, 1, 2, 3, 4].map((i) => `py-${i}\n`));
});
