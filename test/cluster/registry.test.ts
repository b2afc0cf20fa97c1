/**
 * The service registry on a 3-host testbed, driven by the real docker CLI through the manager: containers appear in
 * GET /sampan/v1/registry under their name, their com.sampan.service label and their network aliases, with their
 * addresses and ports; the watch (server-sent events) shows a start and a stop; a container with a health check is
 * an instance only while healthy; a host that goes down takes its instances out.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import type { Instance, Service } from '../../src/cluster/registry.js';
import { runCmd, until } from '../harness.js';
import { TestCluster } from './harness.js';

interface SseEvent {
  event: string;
  data: unknown;
  at: number;
}

/** A watch on the manager's socket: its events as they come, each with when it arrived. */
function watch(socketPath: string, query: string): { events: SseEvent[]; contentType: Promise<string>; close: () => void } {
  const events: SseEvent[] = [];
  let buf = '';
  let req!: http.ClientRequest;
  const contentType = new Promise<string>((resolve, reject) => {
    req = http.get({ socketPath, path: `/sampan/v1/registry?watch=1${query}` }, (res) => {
      resolve(String(res.headers['content-type']));
      res.on('data', (c: Buffer) => {
        buf += c.toString();
        for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event && data) events.push({ event, data: JSON.parse(data), at: Date.now() });
        }
      });
    });
    req.on('error', reject);
  });
  return { events, contentType, close: () => req.destroy() };
}

describe('service registry on a 3-host testbed', () => {
  let c: TestCluster;
  const docker = (args: string[]) => c.docker(args);
  const registry = async (query = ''): Promise<Service[]> => {
    const r = await c.get(`/sampan/v1/registry${query}`);
    assert.equal(r.status, 200, r.body);
    return JSON.parse(r.body) as Service[];
  };
  const instances = async (service: string) => (await registry(`?service=${service}`)).flatMap((s) => s.instances.map((i) => i.name)).sort();

  before(async () => {
    c = await TestCluster.start(3, 'spreg');
    // a user network of the same name on each host: aliases are network-scoped
    for (const h of c.tb.hosts) {
      const r = await runCmd('docker', ['network', 'create', 'svc'], { env: { DOCKER_HOST: `unix://${h.socket}` } });
      assert.equal(r.code, 0, r.stderr);
    }
  });

  after(async () => {
    await c?.stop();
  });

  test('containers are listed under their name, label and aliases with their node, addresses and ports; the watch shows a start and a stop', async (t) => {
    const w = watch(path.join(c.dir, 'cluster.sock'), '');
    assert.equal(await w.contentType, 'text/event-stream');
    await until(async () => w.events.length > 0);
    assert.deepEqual(w.events[0]!.data, [], 'the snapshot first: nothing runs yet');

    const started = Date.now();
    const r1 = await docker(['run', '-d', '--name', 'web-1', '-l', 'com.sampan.service=web', '--network', 'svc', '--network-alias', 'www', '-p', '18080:80',
      '-e', 'constraint:node==host1', 'busybox', 'sleep', '600']);
    assert.equal(r1.code, 0, r1.stderr);
    const added = (await until(async () => w.events.find((e) => e.event === 'add' && (e.data as Instance).name === 'web-1'), 10_000, 20))!;
    const startedAt = Date.parse((await docker(['inspect', '-f', '{{.State.StartedAt}}', 'web-1'])).stdout.trim());
    t.diagnostic(`watch: web-1's add arrived ${added.at - startedAt} ms after its State.StartedAt (${added.at - started} ms after docker run began)`);
    assert.equal((await docker(['run', '-d', '--name', 'web-2', '-l', 'com.sampan.service=web', '--network', 'svc', '-e', 'constraint:node==host2', 'busybox', 'sleep', '600'])).code, 0);
    assert.equal((await docker(['run', '-d', '--name', 'plain', '-e', 'constraint:node==host3', 'busybox', 'sleep', '600'])).code, 0);

    const ip1 = (await docker(['inspect', '-f', '{{.NetworkSettings.Networks.svc.IPAddress}}', 'web-1'])).stdout.trim();
    const ip2 = (await docker(['inspect', '-f', '{{.NetworkSettings.Networks.svc.IPAddress}}', 'web-2'])).stdout.trim();
    assert.match(ip1, /^\d+\.\d+\.\d+\.\d+$/);
    const all = await registry();
    assert.deepEqual(all.map((s) => s.name), ['plain', 'web', 'web-1', 'web-2', 'www']);
    const web = all.find((s) => s.name === 'web')!;
    assert.deepEqual(web.instances.map((i) => `${i.name} ${i.node} ${i.networks.svc?.ips.join(',')}`), [`web-1 host1 ${ip1}`, `web-2 host2 ${ip2}`]);
    const [one] = web.instances;
    assert.equal(one!.id, (await docker(['inspect', '-f', '{{.Id}}', 'web-1'])).stdout.trim());
    assert.deepEqual(one!.services, ['web', 'web-1', 'www']);
    assert.deepEqual(one!.networks.svc!.aliases, ['www']);
    assert.deepEqual(one!.ports, [{ port: 80, protocol: 'tcp', hostPort: 18080, hostIp: '0.0.0.0' }]);
    assert.equal(one!.health, 'none');
    assert.deepEqual(await instances('www'), ['web-1']);
    assert.deepEqual(await instances('WEB'), ['web-1', 'web-2']);
    assert.deepEqual((await registry('?network=svc')).map((s) => s.name), ['web', 'web-1', 'web-2', 'www']);
    assert.deepEqual((await registry('?network=cluster')).map((s) => s.name), ['plain']);

    const stopping = Date.now();
    assert.equal((await docker(['stop', '-t', '1', 'web-2'])).code, 0);
    const stopped = Date.now();
    const removed = (await until(async () => w.events.find((e) => e.event === 'remove' && (e.data as Instance).name === 'web-2'), 10_000, 20))!;
    // sleep as PID 1 ignores SIGTERM: the stop takes its 1 s timeout before the kill
    t.diagnostic(`watch: web-2's remove arrived ${removed.at - stopping} ms after docker stop began, ${removed.at - stopped} ms after it returned`);
    assert.deepEqual(await instances('web'), ['web-1']);
    assert.equal((await docker(['rm', '-f', 'web-1'])).code, 0);
    await until(async () => w.events.some((e) => e.event === 'remove' && (e.data as Instance).name === 'web-1'), 10_000, 20);
    assert.deepEqual((await registry()).map((s) => s.name), ['plain']);
    w.close();
  });

  test('a container with a health check is an instance only while healthy; a filtered watch sees it come and go', async () => {
    const w = watch(path.join(c.dir, 'cluster.sock'), '&service=api');
    await until(async () => w.events.length > 0);
    assert.deepEqual(w.events[0]!.data, []);
    const r = await docker(['run', '-d', '--name', 'api-1', '-l', 'com.sampan.service=api', '--health-cmd', 'test -f /tmp/ok', '--health-interval', '1s', '--health-retries', '1', 'busybox', 'sleep', '600']);
    assert.equal(r.code, 0, r.stderr);
    await until(async () => (await docker(['inspect', '-f', '{{.State.Health.Status}}', 'api-1'])).stdout.trim() === 'unhealthy', 15_000, 200);
    assert.deepEqual(await instances('api'), []);
    assert.equal((await docker(['exec', 'api-1', 'touch', '/tmp/ok'])).code, 0);
    await until(async () => (await instances('api')).length === 1, 15_000, 200);
    assert.equal((await registry('?service=api'))[0]!.instances[0]!.health, 'healthy');
    assert.equal((await docker(['exec', 'api-1', 'rm', '/tmp/ok'])).code, 0);
    await until(async () => (await instances('api')).length === 0, 15_000, 200);
    assert.deepEqual(w.events.slice(1).map((e) => `${e.event} ${(e.data as Instance).name}`), ['add api-1', 'remove api-1']);
    assert.ok(!w.events.some((e) => e.event !== 'snapshot' && (e.data as Instance).name === 'plain'), 'the filter keeps other services out');
    w.close();
  });

  test('a host whose engine is killed goes down and its instances leave the registry', async () => {
    assert.deepEqual(await instances('plain'), ['plain']);
    const host3 = c.tb.hosts[2]!;
    process.kill(host3.pid, 'SIGKILL');
    await until(async () => (await instances('plain')).length === 0, 30_000, 250);
    assert.ok((await registry()).every((s) => s.instances.every((i) => i.node !== host3.name)));
  });
});
