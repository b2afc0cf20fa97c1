/**
 * The Docker API layer imports no engine: mounted over an in-memory backend (as the cluster manager mounts it over
 * many engines), the real docker CLI drives it for ps, create, start, inspect and logs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DockerApiServer, type Backends, type ContainerBackend, type Output } from '../../src/docker-api/index.js';
import type { ContainerInspect, ContainerSummary } from '../../src/lib/docker-types.js';
import { notFound, notImplemented } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/log.js';
import { frame } from '../../src/lib/stdcopy.js';
import { runCmd } from '../harness.js';

interface Fake {
  id: string;
  name: string;
  image: string;
  cmd: string[];
  running: boolean;
  created: number;
}

/** Only what the test drives; anything else is a clear 501. */
function fakeBackends(): Backends {
  const byId = new Map<string, Fake>();
  const find = (ref: string): Fake => {
    for (const c of byId.values()) if (c.id === ref || c.name === ref.replace(/^\//, '') || (ref.length >= 3 && c.id.startsWith(ref))) return c;
    throw notFound(`No such container: ${ref}`);
  };
  const summary = (c: Fake): ContainerSummary => ({
    Id: c.id, Names: [`/${c.name}`], Image: c.image, ImageID: `sha256:${'0'.repeat(64)}`, Command: c.cmd.join(' '), Created: c.created, Ports: [], Labels: {},
    State: c.running ? 'running' : 'created', Status: c.running ? 'Up Less than a second' : 'Created', HostConfig: { NetworkMode: 'default' }, NetworkSettings: { Networks: {} }, Mounts: [],
  });
  const inspect = (c: Fake): ContainerInspect => ({
    Id: c.id, Created: new Date(c.created * 1000).toISOString(), Path: c.cmd[0] ?? '', Args: c.cmd.slice(1),
    State: { Status: c.running ? 'running' : 'created', Running: c.running, Paused: false, Restarting: false, OOMKilled: false, Dead: false, Pid: c.running ? 4242 : 0, ExitCode: 0, Error: '', StartedAt: '', FinishedAt: '' },
    Image: `sha256:${'0'.repeat(64)}`, ResolvConfPath: '', HostnamePath: '', HostsPath: '', LogPath: '', Name: `/${c.name}`, RestartCount: 0, Driver: 'fake', Platform: 'linux',
    MountLabel: '', ProcessLabel: '', AppArmorProfile: '', ExecIDs: null, HostConfig: { NetworkMode: 'default' }, GraphDriver: { Name: 'fake', Data: {} }, Mounts: [],
    Config: { Image: c.image, Cmd: c.cmd, Tty: false, Labels: {} },
    NetworkSettings: { Bridge: '', SandboxID: '', SandboxKey: '', Ports: {}, HairpinMode: false, LinkLocalIPv6Address: '', LinkLocalIPv6PrefixLen: 0, SecondaryIPAddresses: null, SecondaryIPv6Addresses: null, EndpointID: '', Gateway: '', GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, IPAddress: '', IPPrefixLen: 0, IPv6Gateway: '', MacAddress: '', Networks: {} },
  });
  const containers: Partial<ContainerBackend> = {
    list: async (o) => [...byId.values()].filter((c) => o.all || c.running).map(summary),
    create: async (body, name) => {
      const b = body as { Image: string; Cmd?: string[] };
      const id = `${(byId.size + 1).toString(16).padStart(4, '0')}${'ab'.repeat(30)}`;
      byId.set(id, { id, name: name || `fake_${byId.size + 1}`, image: b.Image, cmd: b.Cmd ?? [], running: false, created: Math.floor(Date.now() / 1000) });
      return { Id: id, Warnings: [] };
    },
    inspect: async (id) => inspect(find(id)),
    start: async (id) => {
      find(id).running = true;
    },
    logs: async (id, o, out: Output) => {
      const c = find(id);
      const res = out.open('application/vnd.docker.multiplexed-stream');
      if (o.stdout) res.write(frame(1, Buffer.from(`hello from ${c.name}\n`)));
      if (o.stderr) res.write(frame(2, Buffer.from(`${c.cmd.join(' ')}\n`)));
      res.end();
    },
  };
  const missing = (what: string) =>
    new Proxy({}, { get: (_t, p) => (typeof p === 'string' ? async () => Promise.reject(notImplemented(`${what}.${p} is not in this fake`)) : undefined) });
  const withFallback = <T extends object>(part: Partial<T>, what: string): T => new Proxy(part, { get: (t, p) => (t as Record<string | symbol, unknown>)[p] ?? (missing(what) as Record<string | symbol, unknown>)[p] }) as T;
  return {
    containers: withFallback(containers, 'containers'),
    exec: withFallback({}, 'exec'),
    images: withFallback({}, 'images'),
    build: withFallback({}, 'build'),
    networks: withFallback({}, 'networks'),
    volumes: withFallback({}, 'volumes'),
    system: withFallback<Backends['system']>({ pingHeaders: () => ({}) }, 'system'),
  };
}

test('the Docker API layer over an in-memory backend serves the real docker CLI: create, start, ps, inspect, logs', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sp-fake-'));
  const sock = path.join(dir, 'api.sock');
  const server = new DockerApiServer(fakeBackends(), silentLogger);
  await server.listen([`unix://${sock}`]);
  t.after(async () => {
    await server.close(1000);
    await fs.rm(dir, { recursive: true, force: true });
  });
  const docker = (...args: string[]) => runCmd('docker', args, { env: { DOCKER_HOST: `unix://${sock}`, DOCKER_CLI_HINTS: 'false' }, timeoutMs: 30_000 });

  const created = await docker('create', '--name', 'web', 'nginx:fake', 'serve', '--port', '80');
  assert.equal(created.code, 0, created.stderr);
  const id = created.stdout.trim();
  assert.match(id, /^0001(ab)+$/);
  assert.equal((await docker('ps', '-q')).stdout.trim(), '', 'a created container is not running');
  assert.equal((await docker('start', 'web')).code, 0);
  const ps = await docker('ps', '--format', '{{.Names}} {{.Image}} {{.Command}}');
  assert.equal(ps.stdout.trim(), 'web nginx:fake "serve --port 80"');
  const state = await docker('inspect', '-f', '{{.State.Running}} {{.Name}} {{.Config.Image}}', 'web');
  assert.equal(state.stdout.trim(), 'true /web nginx:fake', state.stderr);
  const logs = await docker('logs', 'web');
  assert.equal(logs.stdout, 'hello from web\n');
  assert.equal(logs.stderr, 'serve --port 80\n');
  const missing = await docker('container', 'inspect', 'nope');
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /No such container: nope/);
  // what the backend does not serve is Docker's 501, with its message
  const unserved = await docker('network', 'ls');
  assert.notEqual(unserved.code, 0);
  assert.match(unserved.stderr, /networks\.list is not in this fake/);
});
