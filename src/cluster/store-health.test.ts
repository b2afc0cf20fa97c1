import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCode, unavailable } from '../lib/errors.js';
import { StoreHealth, UNREACHABLE } from './store-health.js';

test('an unreachable etcd marks the store down until a call is answered; a refused guard says nothing of its health', async () => {
  const h = new StoreHealth();
  const changes: boolean[] = [];
  h.onChange = (up) => changes.push(up);
  assert.equal(h.stale, undefined);
  h.requireUp();

  await assert.rejects(h.track(Promise.reject(unavailable('this manager may not write the cluster state (it is not the leader)'))));
  assert.ok(h.up);
  await assert.rejects(h.track(Promise.reject(unavailable(`${UNREACHABLE}: 14 UNAVAILABLE`))));
  await assert.rejects(h.track(Promise.reject(unavailable(`${UNREACHABLE}: 4 DEADLINE_EXCEEDED`))));
  assert.ok(!h.up);
  assert.match(h.stale!, /^etcd unreachable since \d{4}-\d\d-\d\dT[\d:.]+Z$/);
  assert.throws(() => h.requireUp(), (err) => isCode(err, 'UNAVAILABLE') && /^cluster state store \(etcd\) unreachable since .*changes are refused/.test((err as Error).message));

  assert.equal(await h.track(Promise.resolve(7)), 7);
  assert.ok(h.up);
  assert.equal(h.stale, undefined);
  assert.deepEqual(changes, [false, true], 'told once per change');
});
