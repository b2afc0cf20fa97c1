/** A real etcd (Debian's etcd-server) started as the cluster starts it: 1 member, and 3 that survive losing one. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { EtcdCluster } from '../../src/cluster/index.js';
import { until } from '../harness.js';

async function started(t: { after(fn: () => Promise<void>): void }, members: 1 | 3): Promise<EtcdCluster> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'spetcd-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const etcd = await EtcdCluster.start({ dir, members });
  t.after(() => etcd.stop());
  return etcd;
}

function client(t: { after(fn: () => void): void }, hosts: string[]): Etcd3 {
  const c = new Etcd3({ hosts });
  t.after(() => c.close());
  return c;
}

test('one member: a put is read back, and the member stops on request', async (t) => {
  const etcd = await started(t, 1);
  assert.equal(etcd.endpoints.length, 1);
  const c = client(t, etcd.endpoints);
  await c.put('sampan/one').value('1');
  assert.equal(await c.get('sampan/one').string(), '1');
  const [m] = etcd.info;
  await etcd.stop();
  assert.throws(() => process.kill(m!.pid, 0), /ESRCH/);
});

test('three members: writes go on with one member killed, and the member catches up after its restart', async (t) => {
  const etcd = await started(t, 3);
  assert.deepEqual(etcd.info.map((m) => m.name), ['etcd1', 'etcd2', 'etcd3']);
  assert.equal(new Set(etcd.endpoints).size, 3);
  const c = client(t, etcd.endpoints);
  await c.put('sampan/before').value('a');

  await etcd.stopMember('etcd1', { kill: true });
  await etcd.waitHealthy(); // the two left have a leader again
  await c.put('sampan/during').value('b');
  assert.equal(await c.get('sampan/during').string(), 'b');

  await etcd.restartMember('etcd1');
  // a serializable read is the member's own data: it shows the write it missed once it has caught up
  const alone = client(t, [etcd.info[0]!.endpoint]);
  const seen = await until(async () => (await alone.get('sampan/during').serializable(true).string()) === 'b', 20_000);
  assert.ok(seen);
  assert.equal(await alone.get('sampan/before').serializable(true).string(), 'a');
});
