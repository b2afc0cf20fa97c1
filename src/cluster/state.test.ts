import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ReportedContainer } from '../lib/node-protocol.js';
import { isCode } from '../lib/errors.js';
import { ClusterState } from './state.js';
import type { NodeRecord } from './store.js';

const rec = (name: string): NodeRecord => ({
  id: `id-${name}`, name, labels: {}, api: `unix:///tmp/${name}.sock`, addr: '10.0.0.1', capacity: { ncpu: 2, memTotal: 1 }, version: '0', joinedAt: '', state: 'up',
});
const summary = (id: string, name: string, labels: Record<string, string> = {}): ReportedContainer => ({
  Id: id, Names: [`/${name}`], Image: 'busybox', ImageID: 'sha256:1', Command: 'sleep', Created: 1, Ports: [], Labels: labels, State: 'running', Status: 'Up',
  HostConfig: { NetworkMode: 'bridge' }, NetworkSettings: { Networks: {} }, Mounts: [],
  Facts: { Status: 'running', StartedAt: '2026-01-01T00:00:00Z', FinishedAt: '0001-01-01T00:00:00Z', ExitCode: 0, HasBeenStarted: true },
  Reserved: { memory: 100, nanoCpus: 0 },
});

test('containers are found by full id, name, NODE/NAME and unique id prefix; an ambiguous prefix is a 400', () => {
  const s = new ClusterState();
  const n1 = s.upsertNode(rec('host1'));
  const n2 = s.upsertNode(rec('host2'));
  s.setNodeContainers(n1, [summary('abc111', 'web'), summary('abd222', 'db')]);
  s.setNodeContainers(n2, [summary('ff0000', 'cache')]);
  assert.equal(s.get('abc111').summary.Names[0], '/web');
  assert.equal(s.get('/db').summary.Id, 'abd222');
  assert.equal(s.get('host2/cache').node, n2);
  assert.equal(s.find('host1/cache'), undefined);
  assert.equal(s.get('ff').summary.Id, 'ff0000');
  assert.deepEqual(s.withPrefix('ab'), ['abc111', 'abd222']);
  assert.throws(() => s.get('ab'), (e) => isCode(e, 'INVALID_ARGUMENT'));
  assert.throws(() => s.get('nope'), (e) => isCode(e, 'NOT_FOUND'));
});

test('a node\'s snapshot replaces its containers and only its; events update the name and label indexes', () => {
  const s = new ClusterState();
  const n1 = s.upsertNode(rec('host1'));
  const n2 = s.upsertNode(rec('host2'));
  s.setNodeContainers(n1, [summary('a1', 'one', { tier: 'web' }), summary('a2', 'two', { tier: 'db' })]);
  s.setNodeContainers(n2, [summary('b1', 'three', { tier: 'web' })]);
  assert.deepEqual([...s.withLabel('tier=web')].sort(), ['a1', 'b1']);
  assert.deepEqual([...s.withLabel('tier')].sort(), ['a1', 'a2', 'b1']);
  s.setNodeContainers(n1, [summary('a2', 'two', { tier: 'db' })]);
  assert.equal(s.find('one'), undefined);
  assert.deepEqual([...s.withLabel('tier=web')], ['b1']);
  assert.equal(s.containerCount, 2);
  assert.deepEqual([...n1.containers], ['a2']);
  assert.deepEqual(n1.reserved, { memory: 100, nanoCpus: 0 }, 'what a node\'s containers reserve follows them');
  // a rename moves the name; a destroy removes every trace
  s.upsert(n1, summary('a2', 'renamed', { tier: 'db' }));
  assert.equal(s.find('two'), undefined);
  assert.equal(s.get('renamed').summary.Id, 'a2');
  s.remove('a2');
  assert.equal(s.find('renamed'), undefined);
  assert.deepEqual(s.withPrefix('a'), []);
  assert.equal(s.withLabel('tier=db').size, 0);
  assert.deepEqual(n1.reserved, { memory: 0, nanoCpus: 0 });
  // a node that rejoins under the same id keeps its entry
  assert.equal(s.upsertNode({ ...rec('host2'), state: 'down' }), n2);
  assert.equal(s.node('host2')!.rec.state, 'down');
});

test('a replica retried on another node keeps its id: removing the first node\'s copy leaves the other', () => {
  const s = new ClusterState();
  const n1 = s.upsertNode(rec('host1'));
  const n2 = s.upsertNode(rec('host2'));
  s.upsert(n1, summary('r1', 'web-1'));
  s.placed.set('r1', n2.rec.id);
  assert.equal(s.owns(n1, 'r1'), false);
  assert.equal(s.owns(n2, 'r1'), true);
  s.upsert(n2, summary('r1', 'web-1'));
  assert.deepEqual([...n1.containers], []);
  s.remove('r1', n1);
  assert.equal(s.get('web-1').node, n2);
  s.remove('r1', n2);
  assert.equal(s.find('web-1'), undefined);
});

test('names are unique cluster-wide: in use or held by a create in flight is a 409', () => {
  const s = new ClusterState();
  s.setNodeContainers(s.upsertNode(rec('host1')), [summary('a1', 'web')]);
  assert.throws(() => s.reserveName('web'), (e) => isCode(e, 'CONFLICT') && /"\/web" is already in use/.test((e as Error).message));
  s.reserveName('api');
  assert.throws(() => s.reserveName('api'), (e) => isCode(e, 'CONFLICT'));
  s.releaseName('api');
  s.reserveName('api');
});
