import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ResolveMessage } from '../lib/node-protocol.js';
import { CACHE_MS, ClusterNames } from './cluster-names.js';

function setup() {
  const sent: ResolveMessage[] = [];
  let now = 1_000_000;
  const names = new ClusterNames((m) => sent.push(m), () => now);
  return { names, sent, later: (ms: number) => (now += ms) };
}

test('a name is asked once while in flight, its answer kept for less than a second, then asked again', async () => {
  const { names, sent, later } = setup();
  const a = names.resolve('cluster', 'web');
  const b = names.resolve('cluster', 'web');
  assert.equal(sent.length, 1);
  assert.deepEqual(sent[0], { type: 'resolve', seq: 1, network: 'cluster', name: 'web' });
  names.settle({ type: 'resolved', seq: 1, ips: ['10.192.0.2'] });
  assert.deepEqual(await a, ['10.192.0.2']);
  assert.deepEqual(await b, ['10.192.0.2']);
  assert.deepEqual(await names.resolve('cluster', 'web'), ['10.192.0.2']);
  assert.equal(sent.length, 1, 'cached');
  assert.ok(CACHE_MS < 1000);
  later(CACHE_MS + 1);
  const c = names.resolve('cluster', 'web');
  assert.deepEqual(sent.map((m) => m.seq), [1, 2]);
  names.settle({ type: 'resolved', seq: 2, ips: [] });
  assert.deepEqual(await c, []);
});

test('a miss is not kept: a name asked just before its container starts is found at the next question', async () => {
  const { names, sent } = setup();
  const miss = names.resolve('cluster', 'late');
  names.settle({ type: 'resolved', seq: 1, ips: [] });
  assert.deepEqual(await miss, []);
  const again = names.resolve('cluster', 'late');
  assert.equal(sent.length, 2, 'asked again at once');
  names.settle({ type: 'resolved', seq: 2, ips: ['10.192.0.7'] });
  assert.deepEqual(await again, ['10.192.0.7']);
});

test('a lost connection answers what waits with no name and forgets the cache; a late or unknown answer is ignored', async () => {
  const { names, sent } = setup();
  const a = names.resolve('cluster', 'db');
  const other = names.resolve('blue', 'db');
  assert.equal(sent.length, 2, 'one question per network');
  names.reset();
  assert.deepEqual(await a, []);
  assert.deepEqual(await other, []);
  names.settle({ type: 'resolved', seq: 1, ips: ['10.192.0.9'] });
  names.settle({ type: 'resolved', seq: 99, ips: ['10.192.0.9'] });
  void names.resolve('cluster', 'db');
  assert.equal(sent.length, 3, 'asked again: nothing was cached');
  names.reset();
});
