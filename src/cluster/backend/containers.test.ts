import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ReportedContainer } from '../../lib/node-protocol.js';
import { ClusterState } from '../state.js';
import type { Cluster } from './cluster.js';
import { ClusterContainers } from './containers.js';

const summary = (id: string, name: string): ReportedContainer => ({
  Id: id, Names: [`/${name}`], Image: 'busybox', ImageID: 'sha256:1', Command: 'sleep', Created: 1, Ports: [], Labels: {}, State: 'running', Status: '',
  HostConfig: { NetworkMode: 'bridge' }, NetworkSettings: { Networks: {} }, Mounts: [],
  Facts: { Status: 'running', StartedAt: '2026-01-01T00:00:00Z', FinishedAt: '0001-01-01T00:00:00Z', ExitCode: 0, HasBeenStarted: true },
  Reserved: { memory: 0, nanoCpus: 0 },
});

test('docker ps --filter name=: an exact ^NAME$ (or ^NODE/NAME$) comes from the name index, anything else is a regular expression over NAME and NODE/NAME', async () => {
  const state = new ClusterState();
  for (const [node, names] of [['host1', ['web.1', 'web-2', 'db']], ['host2', ['web.10', 'cache']]] as const) {
    const n = state.upsertNode({ id: node, name: node, labels: {}, api: '', addr: '', capacity: { ncpu: 1, memTotal: 1 }, version: '', joinedAt: '', state: 'up' });
    state.setNodeContainers(n, names.map((name, i) => summary(`${node === 'host1' ? 'a' : 'b'}${i}`.padEnd(64, '0'), name)));
  }
  const cc = new ClusterContainers({ state } as unknown as Cluster);
  const ps = async (...name: string[]) => (await cc.list({ all: true, limit: 0, size: false, filters: new Map([['name', name]]) })).map((c) => c.Names[0]).sort();
  assert.deepEqual(await ps('^web\\.1$'), ['/host1/web.1']);
  assert.deepEqual(await ps('^/web\\.1$'), ['/host1/web.1']);
  assert.deepEqual(await ps('^host2/cache$'), ['/host2/cache']);
  assert.deepEqual(await ps('^host1/cache$'), []);
  assert.deepEqual(await ps('^db$', '^cache$'), ['/host1/db', '/host2/cache']);
  // not exact: a regular expression (the dot matches any character), as Docker reads it
  assert.deepEqual(await ps('^web.1'), ['/host1/web.1', '/host2/web.10']);
  assert.deepEqual(await ps('web'), ['/host1/web-2', '/host1/web.1', '/host2/web.10']);
  assert.deepEqual(await ps('^host2/'), ['/host2/cache', '/host2/web.10']);
});
