import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestEngine, runCmd } from '../harness.js';

/** The Docker SDK for Python, Debian's python3-docker: Debian's own interpreter, not whatever python3 is first on PATH. */
const PYTHON = '/usr/bin/python3';
const PRELUDE = `
import docker, io, json, os, sys, tarfile, time
c = docker.DockerClient(base_url=os.environ['DOCKER_HOST'], version='auto')
def s(b): return b.decode() if isinstance(b, bytes) else b
`;

let e: TestEngine;
before(async () => {
  e = await TestEngine.start();
});
after(async () => {
  await e?.cleanup();
});

/** Run SDK code that leaves its findings in `out`; returns them. */
async function sdk<T = Record<string, unknown>>(code: string): Promise<T> {
  const r = await runCmd(PYTHON, ['-c', `${PRELUDE}\n${code}\nprint(json.dumps(out))`], { env: e.env });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}

test('docker-py: containers.run returns the output; a failing command raises ContainerError', async () => {
  const out = await sdk<{ output: string; err: unknown[]; version: string }>(`
out = {'version': c.version()['ApiVersion'], 'output': s(c.containers.run('busybox', ['sh', '-c', 'echo hello'], remove=True))}
try:
    c.containers.run('busybox', ['sh', '-c', 'echo broke >&2; exit 3'], remove=True)
except docker.errors.ContainerError as err:
    out['err'] = [err.exit_status, s(err.stderr)]
`);
  assert.match(out.version, /^1\.\d+$/);
  assert.equal(out.output, 'hello\n');
  assert.deepEqual(out.err, [3, 'broke\n']);
});

test('docker-py: a detached container: logs, exec_run, archives, stats, top, pause, update, kill and wait', async () => {
  const out = await sdk(`
ct = c.containers.run('busybox', ['sh', '-c', 'echo started; exec sleep 600'], detach=True, name='py1', labels={'app': 'py'}, environment={'FOO': 'bar'})
out = {}
out['listed'] = [x.name for x in c.containers.list(filters={'label': 'app=py'})]
time.sleep(0.5)
out['logs'] = s(ct.logs())
r = ct.exec_run(['sh', '-c', 'echo $FOO; exit 4'])
out['exec'] = [r.exit_code, s(r.output)]
r = ct.exec_run(['sh', '-c', 'echo o; echo e >&2'], demux=True)
out['demux'] = [s(r.output[0]), s(r.output[1])]
r = ct.exec_run(['sh', '-c', 'echo $X $(pwd) $(id -u)'], environment={'X': 'y'}, workdir='/tmp', user='nobody')
out['exec_opts'] = s(r.output)
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode='w') as t:
    data = b'from the sdk\\n'
    ti = tarfile.TarInfo('f.txt'); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
out['put'] = ct.put_archive('/tmp', buf.getvalue())
bits, stat = ct.get_archive('/tmp/f.txt')
with tarfile.open(fileobj=io.BytesIO(b''.join(bits))) as t:
    out['get'] = [stat['name'], stat['size'], s(t.extractfile('f.txt').read())]
st = ct.stats(stream=False)
out['stats'] = [st['memory_stats'].get('usage', 0) > 0, 'cpu_stats' in st]
out['top'] = any('sleep 600' in ' '.join(p) for p in ct.top()['Processes'])
ct.pause(); ct.reload(); out['paused'] = ct.status
ct.unpause(); ct.reload()
ct.update(mem_limit='64m', memswap_limit='128m'); ct.reload()
out['memory'] = ct.attrs['HostConfig']['Memory']
ct.kill()
out['wait'] = ct.wait(timeout=10)['StatusCode']
ct.remove()
`);
  assert.deepEqual(out, {
    listed: ['py1'],
    logs: 'started\n',
    exec: [4, 'bar\n'],
    demux: ['o\n', 'e\n'],
    exec_opts: 'y /tmp 65534\n',
    put: true,
    get: ['f.txt', 13, 'from the sdk\n'],
    stats: [true, true],
    top: true,
    paused: 'paused',
    memory: 64 * 1024 * 1024,
    wait: 137,
  });
});

test('docker-py: attach_socket carries stdin into the container', async () => {
  const out = await sdk(`
x = c.containers.run('busybox', ['sh', '-c', 'read l; echo got-$l'], detach=True, stdin_open=True)
sock = x.attach_socket(params={'stdin': 1, 'stream': 1})
sock._sock.sendall(b'typed\\n')
out = {'code': x.wait(timeout=10)['StatusCode'], 'logs': s(x.logs())}
sock.close()
x.remove()
`);
  assert.deepEqual(out, { code: 0, logs: 'got-typed\n' });
});

test('docker-py: build, tag, history, save and load, prune', async () => {
  const out = await sdk(`
img, logs = c.images.build(fileobj=io.BytesIO(b'FROM busybox\\nRUN echo built > /b\\nCMD ["cat", "/b"]\\n'), tag='pybuild:1', rm=True)
out = {'tags': img.tags, 'steps': sum(1 for l in logs if s(l.get('stream', '')).startswith('Step '))}
out['run'] = s(c.containers.run('pybuild:1', remove=True))
c.images.get('pybuild:1').tag('pybuild', 'two')
out['tagged'] = sorted(c.images.get('pybuild:1').tags)
out['history'] = len(c.images.get('pybuild:1').history())
data = b''.join(c.api.get_image('pybuild:1'))
c.images.remove('pybuild:1'); c.images.remove('pybuild:two')
out['loaded'] = [i.tags for i in c.images.load(data)]
stopped = c.containers.create('busybox', 'true')
out['pruned'] = stopped.id in c.containers.prune()['ContainersDeleted']
`);
  assert.deepEqual(out, {
    tags: ['pybuild:1'],
    steps: 3,
    run: 'built\n',
    tagged: ['pybuild:1', 'pybuild:two'],
    history: 3,
    loaded: [['pybuild:1']],
    pruned: true,
  });
});

test('docker-py: API errors arrive as the SDK\'s typed exceptions', async () => {
  const out = await sdk(`
out = {}
try:
    c.containers.get('no-such-container')
except docker.errors.NotFound as err:
    out['notfound'] = err.status_code
c.containers.run('busybox', 'sleep 30', name='pydup', detach=True)
try:
    c.containers.run('busybox', 'sleep 30', name='pydup', detach=True)
except docker.errors.APIError as err:
    out['conflict'] = err.status_code
c.containers.get('pydup').remove(force=True)
try:
    c.images.get('no-such-image:1')
except docker.errors.ImageNotFound as err:
    out['noimage'] = err.status_code
`);
  assert.deepEqual(out, { notfound: 404, conflict: 409, noimage: 404 });
});
