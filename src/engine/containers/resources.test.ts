import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyPriority, cgroupsPathOf, mergeUpdate, ociResources, ociRlimits, validateResources } from './resources.js';
import type { HostConfig } from './model.js';

const hc = (o: Record<string, unknown> = {}): HostConfig => ({ RestartPolicy: { Name: 'no', MaximumRetryCount: 0 }, AutoRemove: false, Memory: 0, NanoCpus: 0, CpuShares: 0, OomScoreAdj: 0, Ulimits: null, ...o }) as unknown as HostConfig;

test('validateResources follows Docker\'s rules and messages', () => {
  assert.throws(() => validateResources(hc({ Memory: 4 << 20 })), /Minimum memory limit allowed is 6MB/);
  assert.throws(() => validateResources(hc({ Memory: 64 << 20, MemorySwap: 32 << 20 })), /memoryswap limit should be larger than memory limit/);
  assert.throws(() => validateResources(hc({ MemorySwap: 64 << 20 })), /always set the Memory limit/);
  assert.throws(() => validateResources(hc({ Memory: 16 << 20, MemoryReservation: 32 << 20 })), /memory reservation limit/);
  assert.throws(() => validateResources(hc({ NanoCpus: 5e8, CpuQuota: 20000 })), /Nano CPUs and CPU Quota/);
  assert.throws(() => validateResources(hc({ CpuPeriod: 500 })), /CPU cfs period/);
  assert.throws(() => validateResources(hc({ BlkioWeight: 5 })), /blkio weight is from 10 to 1000/);
  assert.throws(() => validateResources(hc({ CpusetCpus: '0-9999' })), /Requested CPUs are not available/);
  assert.doesNotThrow(() => validateResources(hc({ Memory: 64 << 20, MemorySwap: -1, NanoCpus: 5e8, PidsLimit: 10 })));
});

test('ociResources maps HostConfig to the OCI spec', async () => {
  const r = await ociResources(hc({ Memory: 32 << 20, MemoryReservation: 16 << 20, NanoCpus: 5e8, CpuShares: 512, CpusetCpus: '0', PidsLimit: 8 }));
  assert.deepEqual((r.memory as Record<string, unknown>).limit, 32 << 20);
  assert.deepEqual((r.memory as Record<string, unknown>).reservation, 16 << 20);
  assert.deepEqual(r.cpu, { period: 100000, quota: 50000, shares: 512, cpus: '0' });
  assert.deepEqual(r.pids, { limit: 8 });
  const q = await ociResources(hc({ CpuPeriod: 50000, CpuQuota: 25000 }));
  assert.deepEqual(q.cpu, { period: 50000, quota: 25000 });
});

test('ulimits: within the host\'s hard limits, a clear error above them', async () => {
  assert.deepEqual(await ociRlimits(hc({ Ulimits: [{ Name: 'nofile', Soft: 1024, Hard: 2048 }] })), [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: 2048 }]);
  await assert.rejects(ociRlimits(hc({ Ulimits: [{ Name: 'nofile', Soft: 1, Hard: 1e12 }] })), /above this host's hard limit/);
  await assert.rejects(ociRlimits(hc({ Ulimits: [{ Name: 'bogus', Soft: 1, Hard: 1 }] })), /invalid ulimit type/);
  await assert.rejects(ociRlimits(hc({ Ulimits: [{ Name: 'nofile', Soft: 20, Hard: 10 }] })), /soft limit/);
});

test('priority label presets and cgroup parent', () => {
  const b = hc();
  applyPriority({ 'com.sampan.priority': 'batch' }, b);
  assert.deepEqual([b.CpuShares, b.OomScoreAdj, b.BlkioWeight], [2, 1000, 10]);
  const o = hc();
  applyPriority({ 'com.sampan.priority': 'online' }, o);
  assert.deepEqual([o.CpuShares, o.OomScoreAdj, o.BlkioWeight], [0, 0, undefined]);
  assert.throws(() => applyPriority({ 'com.sampan.priority': 'urgent' }, hc()), /invalid priority/);
  assert.equal(cgroupsPathOf(hc(), '/sampan', 'abc'), '/sampan/abc');
  assert.equal(cgroupsPathOf(hc({ CgroupParent: 'tenant-a/' }), '/sampan', 'abc'), '/tenant-a/abc');
});

test('mergeUpdate keeps what the CLI sent as zero, and updates the restart policy', () => {
  const cur = hc({ Memory: 64 << 20, MemorySwap: 128 << 20, NanoCpus: 5e8, PidsLimit: 10 });
  const n = mergeUpdate(cur, { Memory: 256 << 20, MemorySwap: 0, NanoCpus: 0, CpuShares: 0, RestartPolicy: { Name: 'always' } });
  assert.equal(n.Memory, 256 << 20);
  assert.equal(n.MemorySwap, 512 << 20); // raised with the limit, as it was below it
  assert.equal(n.NanoCpus, 5e8);
  assert.equal(n.PidsLimit, 10);
  assert.deepEqual(n.RestartPolicy, { Name: 'always', MaximumRetryCount: 0 });
  assert.equal(cur.Memory, 64 << 20);
  assert.throws(() => mergeUpdate(hc({ AutoRemove: true }), { RestartPolicy: { Name: 'always' } }), /AutoRemove/);
  const q = mergeUpdate(cur, { CpuQuota: 20000, CpuPeriod: 100000 });
  assert.equal(q.NanoCpus, 0);
});
