import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError } from '../lib/engine-client.js';
import { describeError } from './client.js';
import { parseEnv, parseFilters, parseLabels } from './commands/options.js';
import { runConfig } from './commands/run.js';
import { imageRows, splitTag } from './commands/images.js';

test('command helpers: filters, env, labels, run config', () => {
  assert.deepEqual(parseFilters(['name=a', 'label=x=y', 'name=b']), { name: ['a', 'b'], label: ['x=y'] });
  assert.equal(parseFilters([]), undefined);
  assert.throws(() => parseFilters(['nope']), /bad format/);
  assert.deepEqual(parseEnv(['A=1', 'HOME', 'UNSET_ONE', 'B='], { HOME: '/root' }), ['A=1', 'HOME=/root', 'B=']);
  assert.deepEqual(parseLabels(['a=b', 'c', 'd=e=f']), { a: 'b', c: '', 'd': 'e=f' });
  const cfg = runConfig('busybox', ['sh', '-c', 'echo'], { interactive: true, tty: true, rm: true, env: ['A=1'], volume: ['/a:/b:ro'], network: 'none', entrypoint: '/bin/x', workdir: '/w', user: '1:2' }, { h: 24, w: 80 });
  assert.deepEqual(cfg, {
    Image: 'busybox',
    Tty: true,
    OpenStdin: true,
    StdinOnce: true,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    Env: ['A=1'],
    Labels: {},
    HostConfig: { AutoRemove: true, NetworkMode: 'none', Binds: ['/a:/b:ro'], ConsoleSize: [24, 80] },
    Cmd: ['sh', '-c', 'echo'],
    Entrypoint: ['/bin/x'],
    WorkingDir: '/w',
    User: '1:2',
  });
  const detached = runConfig('busybox', [], { detach: true, interactive: true });
  assert.equal(detached.AttachStdout, false);
  assert.equal(detached.StdinOnce, false);
  assert.equal(detached.OpenStdin, true);
  assert.equal('Cmd' in detached, false);
});

test('run flags: -p, --ip, -m, --cpus, --priority, --rich', () => {
  const cfg = runConfig('busybox', [], { publish: ['8080:80', '127.0.0.1::53/udp', '9000'], network: 'net1', ip: '10.1.0.5', memory: '64m', cpus: '0.5', priority: 'batch', rich: true, richMode: 'tini', initscript: '/init.sh' });
  assert.deepEqual(cfg.ExposedPorts, { '80/tcp': {}, '53/udp': {}, '9000/tcp': {} });
  const hc = cfg.HostConfig as Record<string, unknown>;
  assert.deepEqual(hc.PortBindings, { '80/tcp': [{ HostIp: '', HostPort: '8080' }], '53/udp': [{ HostIp: '127.0.0.1', HostPort: '' }], '9000/tcp': [{ HostIp: '', HostPort: '' }] });
  assert.equal(hc.Memory, 64 * 1024 * 1024);
  assert.equal(hc.NanoCpus, 500_000_000);
  assert.deepEqual(cfg.NetworkingConfig, { EndpointsConfig: { net1: { IPAMConfig: { IPv4Address: '10.1.0.5' } } } });
  assert.deepEqual(cfg.Labels, { 'com.sampan.priority': 'batch' });
  assert.deepEqual([cfg.Rich, cfg.RichMode, cfg.InitScript], [true, 'tini', '/init.sh']);
  assert.throws(() => runConfig('busybox', [], { publish: ['8000-8001:80'] }), /invalid publish spec/);
  assert.throws(() => runConfig('busybox', [], { cpus: '0' }), /invalid --cpus/);
});

test('image rows: one per tag, <none> for untagged, newest first', () => {
  assert.deepEqual(splitTag('reg:5000/a/b:1.0'), ['reg:5000/a/b', '1.0']);
  assert.deepEqual(splitTag('reg:5000/a/b'), ['reg:5000/a/b', '<none>']);
  const img = (Id: string, RepoTags: string[], RepoDigests: string[], Created: number, Size: number) => ({ Id, ParentId: '', RepoTags, RepoDigests, Created, Size, SharedSize: -1, Labels: {}, Containers: -1 });
  const rows = imageRows([img('sha256:aaa', ['x:1', 'y:2'], ['x@sha256:ddd'], 10, 5), img('sha256:bbb', [], [], 20, 6), img('sha256:ccc', ['<none>:<none>'], ['z@sha256:eee'], 5, 7)]);
  assert.deepEqual(rows.map((r) => [r.repository, r.tag, r.digest, r.id]), [
    ['<none>', '<none>', '<none>', 'sha256:bbb'],
    ['x', '1', 'sha256:ddd', 'sha256:aaa'],
    ['y', '2', '<none>', 'sha256:aaa'],
    ['z', '<none>', 'sha256:eee', 'sha256:ccc'],
  ]);
});

/** A tiny fake engine on a unix socket. */
test('describeError prints engine answers as the docker CLI does', () => {
  assert.equal(describeError(new ApiError(404, 'No such container: nope')), 'Error response from daemon: No such container: nope');
  assert.equal(describeError(new Error('boom')), 'Error: boom');
});
