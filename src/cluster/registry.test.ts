import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import type { EndpointView } from '../lib/docker-types.js';
import type { ReportedContainer } from '../lib/node-protocol.js';
import { serveWatch, ServiceRegistry, type Instance, type RegistryEvent } from './registry.js';
import { ClusterState } from './state.js';
import type { NodeRecord } from './store.js';

const rec = (name: string): NodeRecord => ({
  id: `id-${name}`, name, labels: {}, api: `unix:///tmp/${name}.sock`, addr: '10.0.0.1', capacity: { ncpu: 2, memTotal: 1 }, version: '0', joinedAt: '', state: 'up',
});
const ep = (ip: string, aliases: string[] = []): EndpointView => ({
  IPAMConfig: null, Links: null, Aliases: aliases.length ? aliases : null, MacAddress: '', DriverOpts: null, NetworkID: 'n', EndpointID: 'e', Gateway: '',
  IPAddress: ip, IPPrefixLen: 24, IPv6Gateway: '', GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, DNSNames: null,
});
interface Opts {
  status?: string;
  health?: string;
  labels?: Record<string, string>;
  nets?: Record<string, EndpointView>;
}
const summary = (id: string, name: string, o: Opts = {}): ReportedContainer => ({
  Id: id, Names: [`/${name}`], Image: 'busybox', ImageID: 'sha256:1', Command: 'sleep', Created: 1,
  Ports: [{ PrivatePort: 80, Type: 'tcp' }, { IP: '0.0.0.0', PrivatePort: 443, PublicPort: 8443, Type: 'tcp' }], Labels: o.labels ?? {},
  State: o.status ?? 'running', Status: 'Up', HostConfig: { NetworkMode: 'bridge' }, NetworkSettings: { Networks: o.nets ?? { bridge: ep(`10.0.0.${id.length}`) } }, Mounts: [],
  Facts: { Status: o.status ?? 'running', StartedAt: '2026-01-01T00:00:00Z', FinishedAt: '0001-01-01T00:00:00Z', ExitCode: 0, HasBeenStarted: true, ...(o.health ? { Health: o.health } : {}) },
  Reserved: { memory: 0, nanoCpus: 0 },
});

function setup() {
  const state = new ClusterState();
  const reg = new ServiceRegistry((id) => state.entry(id));
  state.onChange = (b, a) => reg.change(b, a);
  const events: string[] = [];
  reg.watch({}, (event: RegistryEvent, i: Instance) => events.push(`${event} ${i.name}`));
  return { state, reg, events, n1: state.upsertNode(rec('host1')), n2: state.upsertNode(rec('host2')) };
}

test('services are names, com.sampan.service labels and network aliases (lower case), each with its ready instances', () => {
  const { state, reg, n1, n2 } = setup();
  state.setNodeContainers(n1, [summary('a1', 'web-1', { labels: { 'com.sampan.service': 'Web' }, nets: { front: ep('10.1.0.2', ['www']), bridge: ep('10.89.0.2') } })]);
  state.setNodeContainers(n2, [summary('b1', 'web-2', { labels: { 'com.sampan.service': 'web' }, nets: { front: ep('10.1.0.3') } }), summary('b2', 'db')]);
  assert.deepEqual(reg.list().map((s) => `${s.name}: ${s.instances.map((i) => i.name).join(' ')}`), ['db: db', 'web: web-1 web-2', 'web-1: web-1', 'web-2: web-2', 'www: web-1']);
  const [web1] = reg.list({ service: 'WWW' })[0]!.instances;
  assert.deepEqual(web1, {
    id: 'a1', name: 'web-1', node: 'host1', services: ['web', 'web-1', 'www'],
    networks: { front: { ips: ['10.1.0.2'], aliases: ['www'] }, bridge: { ips: ['10.89.0.2'], aliases: [] } },
    ports: [{ port: 80, protocol: 'tcp' }, { port: 443, protocol: 'tcp', hostPort: 8443, hostIp: '0.0.0.0' }],
    health: 'none',
  });
  assert.deepEqual(reg.list({ network: 'front' }).map((s) => s.name), ['web', 'web-1', 'web-2', 'www']);
  assert.deepEqual(reg.list({ service: 'web', network: 'bridge' }).flatMap((s) => s.instances.map((i) => i.name)), ['web-1']);
  assert.deepEqual(reg.list({ service: 'nope' }), []);
});

test('readiness: running without a health check, or healthy; starting, unhealthy, paused, exited and removed are not instances', () => {
  const { state, reg, events, n1 } = setup();
  const names = () => reg.list().map((s) => s.name);
  state.upsert(n1, summary('c1', 'app', { health: 'starting' }));
  state.upsert(n1, summary('c2', 'plain'));
  state.upsert(n1, summary('c3', 'off', { status: 'exited' }));
  assert.deepEqual(names(), ['plain']);
  state.upsert(n1, summary('c1', 'app', { health: 'healthy' }));
  assert.equal(reg.list({ service: 'app' })[0]!.instances[0]!.health, 'healthy');
  state.upsert(n1, summary('c1', 'app', { health: 'healthy' })); // the same again: no event
  state.upsert(n1, summary('c1', 'app', { health: 'unhealthy' }));
  state.upsert(n1, summary('c2', 'plain', { status: 'paused' }));
  assert.deepEqual(names(), []);
  state.upsert(n1, summary('c2', 'plain'));
  state.remove('c2');
  state.remove('c3');
  assert.deepEqual(events, ['add plain', 'add app', 'remove app', 'remove plain', 'add plain', 'remove plain']);
});

test('a node\'s snapshot replaces its instances; a rename or a new alias is an add with the new view', () => {
  const { state, reg, events, n1 } = setup();
  state.setNodeContainers(n1, [summary('a1', 'one'), summary('a2', 'two')]);
  state.setNodeContainers(n1, [summary('a2', 'zwei')]);
  assert.deepEqual(reg.list().map((s) => s.name), ['zwei']);
  assert.deepEqual(events, ['add one', 'add two', 'remove one', 'add zwei']);
});

test('a node that goes down takes its instances out; back up, they return', () => {
  const { state, reg, events, n1, n2 } = setup();
  state.setNodeContainers(n1, [summary('a1', 'one')]);
  state.setNodeContainers(n2, [summary('b1', 'two')]);
  n1.rec = { ...n1.rec, state: 'down' };
  state.nodeChanged(n1);
  assert.deepEqual(reg.list().map((s) => s.name), ['two']);
  n1.rec = { ...n1.rec, state: 'up' };
  state.nodeChanged(n1);
  assert.deepEqual(reg.list().map((s) => s.name), ['one', 'two']);
  assert.deepEqual(events, ['add one', 'add two', 'remove one', 'add one']);
});

test('a filtered watch sees an instance leave when it stops matching, and nothing of others', () => {
  const { state, reg, n1 } = setup();
  const seen: string[] = [];
  reg.watch({ network: 'front' }, (event, i) => seen.push(`${event} ${i.name}`));
  state.upsert(n1, summary('a1', 'x', { nets: { front: ep('10.1.0.2') } }));
  state.upsert(n1, summary('a2', 'y'));
  state.upsert(n1, summary('a1', 'x', { nets: { back: ep('10.2.0.2') } }));
  assert.deepEqual(seen, ['add x', 'remove x']);
});

test('resolve: a service\'s addresses on that network; an alias only on the network it was given on; NAME.NETWORK', () => {
  const { state, reg, n1, n2 } = setup();
  state.setNodeContainers(n1, [summary('a1', 'web-1', { labels: { 'com.sampan.service': 'web' }, nets: { front: ep('10.1.0.2', ['www']), back: ep('10.2.0.2') } })]);
  state.setNodeContainers(n2, [summary('b1', 'web-2', { labels: { 'com.sampan.service': 'web' }, nets: { front: ep('10.1.0.3') } }), summary('b2', 'web-3', { labels: { 'com.sampan.service': 'web' }, health: 'unhealthy', nets: { front: ep('10.1.0.4') } })]);
  assert.deepEqual(reg.resolve('front', 'web').sort(), ['10.1.0.2', '10.1.0.3']);
  assert.deepEqual(reg.resolve('front', 'WEB.front.'), reg.resolve('front', 'web'));
  assert.deepEqual(reg.resolve('back', 'web'), ['10.2.0.2']);
  assert.deepEqual(reg.resolve('front', 'www'), ['10.1.0.2']);
  assert.deepEqual(reg.resolve('back', 'www'), []);
  assert.deepEqual(reg.resolve('back', 'web-2'), []);
  assert.deepEqual(reg.resolve('front', 'web-3'), []);
});

/** A response whose client reads nothing: all that is written stays queued. */
class StuckResponse {
  text = '';
  writableLength = 0;
  destroyed = false;
  write(s: string) {
    this.text += s;
    this.writableLength += s.length;
    return false;
  }
  destroy() {
    this.destroyed = true;
  }
}

test('a watch stream starts with the snapshot, then events; a client that does not read is dropped, and stops being told', async () => {
  const { state, reg, n1 } = setup();
  state.upsert(n1, summary('a1', 'one'));
  const res = new StuckResponse();
  let close!: () => void;
  serveWatch(reg, {}, res as unknown as ServerResponse, new Promise<void>((r) => (close = r)), 4096);
  const watchers = reg.watching;
  for (let i = 0; i < 100 && !res.destroyed; i++) state.upsert(n1, summary(`b${i}`, `name-${i}`));
  assert.ok(res.destroyed, 'dropped');
  assert.equal(reg.watching, watchers - 1);
  assert.ok(res.writableLength < 8192, `buffered ${res.writableLength} bytes`);
  const text = res.text;
  assert.match(text, /^event: snapshot\ndata: \[\{"name":"one"/);
  assert.match(text, /\n\nevent: add\ndata: \{"id":"b0","name":"name-0"/);
  close();
});
