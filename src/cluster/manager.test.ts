import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCode } from '../lib/errors.js';
import { loadManagerConfig } from './manager.js';

test('the external scheduler\'s URL and timeout come from flags or SAMPAN_CLUSTER_*, validated at start', async () => {
  const etcd = ['http://127.0.0.1:2379'];
  const cfg = await loadManagerConfig({ etcd }, { SAMPAN_CLUSTER_SCHEDULER_URL: 'http://127.0.0.1:9000/place' });
  assert.equal(cfg.schedulerUrl, 'http://127.0.0.1:9000/place');
  assert.equal(cfg.schedulerTimeoutMs, 5000);
  assert.equal((await loadManagerConfig({ etcd, schedulerTimeoutMs: 800 }, {})).schedulerUrl, undefined);
  await assert.rejects(loadManagerConfig({ etcd, schedulerUrl: 'ftp://x/place' }, {}), (e) => isCode(e, 'INVALID_ARGUMENT') && /schedulerUrl/.test((e as Error).message));
  await assert.rejects(loadManagerConfig({ etcd }, { SAMPAN_CLUSTER_SCHEDULER_URL: 'not a url' }), /manager config: schedulerUrl/);
  await assert.rejects(loadManagerConfig({ etcd, schedulerTimeoutMs: 10 }, {}), /schedulerTimeoutMs/);
});
