import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isCode } from '../lib/errors.js';
import { EtcdCluster } from './etcd.js';
import { ClusterStore, newToken, type NodeRecord } from './store.js';

const node = (id: string, state: 'up' | 'down' = 'up'): NodeRecord => ({
  id, name: `n-${id}`, labels: { zone: 'a' }, api: 'unix:///x.sock', addr: '10.0.0.2', capacity: { ncpu: 2, memTotal: 1024 }, version: '0.1.0', joinedAt: '2026-01-01T00:00:00Z', state,
});

test('the store keeps nodes, placements, batches and the token\'s hash in etcd, readable by a second manager; a failed guard or a dead etcd refuses writes with 503', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'spstore-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const etcd = await EtcdCluster.start({ dir, members: 1 });
  t.after(() => etcd.stop());
  const a = ClusterStore.connect(etcd.endpoints, 'c1');
  const b = ClusterStore.connect(etcd.endpoints, 'c1');
  const other = ClusterStore.connect(etcd.endpoints, 'c2');
  t.after(() => [a, b, other].forEach((s) => s.close()));

  await a.putNode(node('1'));
  await a.putNode(node('2'));
  await a.putNode(node('1', 'down'));
  assert.deepEqual((await b.nodes()).map((n) => [n.id, n.state]).sort(), [['1', 'down'], ['2', 'up']]);
  assert.deepEqual(await other.nodes(), [], 'clusters do not see each other\'s keys');

  await a.putPlacements([{ id: 'c-a', placement: { node: '1', name: 'web-1', batch: 'b1' } }, { id: 'c-b', placement: { node: '2', name: 'web-2' } }]);
  await a.write([{ del: 'placements/c-b' }]);
  assert.deepEqual([...(await b.placements())], [['c-a', { node: '1', name: 'web-1', batch: 'b1' }]]);

  await a.putBatch({ id: 'b1', prefix: 'web', replicas: 1, image: 'busybox', state: 'done', createdAt: '', updatedAt: '', running: 1, failed: 0, errors: [] });
  assert.equal((await b.batch('b1'))?.running, 1);

  // writes made together share transactions of at most 128 operations, and every one lands
  let txns = 0;
  a.onWrite = () => txns++;
  await Promise.all(Array.from({ length: 300 }, (_, i) => a.putPlacements([{ id: `many-${i}`, placement: { node: '1' } }])));
  assert.equal(txns, 3, '300 writes of one operation in 3 transactions');
  assert.equal([...(await b.placements())].filter(([id]) => id.startsWith('many-')).length, 300);
  a.onWrite = undefined;
  assert.equal(await b.batch('nope'), undefined);

  // two writers of one key in one tick share a transaction that names the key once: the last write wins
  await Promise.all([a.write([{ put: 'placements/twice', value: { node: '1' } }]), a.write([{ put: 'placements/twice', value: { node: '2' } }])]);
  assert.deepEqual((await b.placements()).get('twice'), { node: '2' });

  assert.equal(await b.hasToken(), false);
  const tok = newToken();
  await a.setToken(tok);
  assert.equal(await b.checkToken(tok), true);
  assert.equal(await b.checkToken(`${tok}x`), false);
  assert.equal(await other.checkToken(tok), false);

  // a guard that does not hold (HA: not the leader any more) refuses the write, and nothing is written
  b.guard = ['leader', 'Value', '==', 'b'];
  await assert.rejects(b.putNode(node('3')), (e) => isCode(e, 'UNAVAILABLE') && /not the leader/.test((e as Error).message));
  assert.equal((await a.nodes()).length, 2);

  await etcd.stop();
  await assert.rejects(a.putNode(node('4')), (e) => isCode(e, 'UNAVAILABLE') && /etcd/.test((e as Error).message));
});
