import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { isCode } from '../lib/errors.js';
import { silentLogger } from '../lib/log.js';
import { compareVersions, Election, firstInLine, type ElectionHooks } from './election.js';
import { EtcdCluster } from './etcd.js';
import { ClusterStore, type NodeRecord } from './store.js';

const node = (id: string): NodeRecord => ({
  id, name: `n-${id}`, labels: {}, api: 'unix:///x.sock', addr: '10.0.0.2', capacity: { ncpu: 2, memTotal: 1024 }, version: '0.1.0', joinedAt: '2026-01-01T00:00:00Z', state: 'up',
});

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('versions compare by their numbers; the first in line leads unless a higher version waits', () => {
  assert.equal(compareVersions('1.10.0', '1.9.2'), 1);
  assert.equal(compareVersions('0.1', '0.1.0'), 0);
  assert.equal(compareVersions('2.0.0-rc1', '2.0.1'), -1);
  const c = (rev: number, version: string) => ({ rev, version });
  assert.deepEqual(firstInLine([c(7, '1.0'), c(3, '1.0')]), { first: c(3, '1.0'), outranked: false });
  assert.deepEqual(firstInLine([c(3, '1.0'), c(7, '2.0')]), { first: c(3, '1.0'), outranked: true });
  assert.deepEqual(firstInLine([c(3, '2.0'), c(7, '1.0')]), { first: c(3, '2.0'), outranked: false });
  assert.deepEqual(firstInLine([]), { first: undefined, outranked: false });
});

test('election on a real etcd: one leader, fenced once its key is gone; resigning hands over; a higher version takes over, a lower one never', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'spelect-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const etcd = await EtcdCluster.start({ dir, members: 1 });
  t.after(() => etcd.stop());
  const raw = new Etcd3({ hosts: etcd.endpoints });
  t.after(() => raw.close());

  const managers: Array<{ e: Election; store: ClusterStore; outranked: number; data: Map<string, string> }> = [];
  const start = async (name: string, version = '1.0.0') => {
    const store = ClusterStore.connect(etcd.endpoints, 'el');
    const m = { store, outranked: 0, data: new Map<string, string>() } as (typeof managers)[number];
    const hooks: ElectionHooks = {
      onData: (k, v) => (v === undefined ? m.data.delete(k) : m.data.set(k, v)),
      onLead: () => undefined,
      onOutranked: () => m.outranked++,
    };
    m.e = new Election(etcd.endpoints, 'el', { name, api: `unix:///${name}.sock`, version }, 2, store, silentLogger, hooks);
    await m.e.follow();
    await m.e.campaign();
    managers.push(m);
    return m;
  };
  t.after(async () => {
    for (const m of managers) {
      await m.e.close();
      m.store.close();
    }
  });
  const leaders = () => managers.filter((m) => m.e.role === 'leader').map((m) => m.e.me.name);
  const storedLeader = async () => JSON.parse((await raw.get('/sampan/cluster/el/leader').string()) ?? 'null') as { name: string; api: string; version: string; since: string } | null;

  const a = await start('a');
  const b = await start('b');
  await until('a leads', () => a.e.role === 'leader');
  assert.deepEqual(leaders(), ['a'], 'exactly one leader: the first in line');
  const l = await storedLeader();
  assert.deepEqual({ ...l, since: '' }, { name: 'a', api: 'unix:///a.sock', version: '1.0.0', since: '' });
  assert.ok(!Number.isNaN(Date.parse(l!.since)));
  await a.store.putNode(node('1'));
  await until('the standby follows what the leader wrote', () => b.data.has('nodes/1'));
  await assert.rejects(b.store.putNode(node('2')), (err: unknown) => isCode(err, 'UNAVAILABLE'), 'a standby writes nothing');
  assert.equal(await b.e.leaderTarget(0).then((x) => x !== 'self' && x?.name), 'a', 'the standby forwards to the leader');

  // the keys gone (their leases expired while the managers were paused, say), b stands again and leads
  const fence = a.store.guard;
  await raw.delete().prefix('/sampan/cluster/el/election/').exec();
  await until('the keys are gone', () => !b.e.candidates.length);
  await b.e.stepBack();
  await until('b leads', () => b.e.role === 'leader');
  // a, as if it had been paused through all this and still took itself for the leader: etcd refuses its write
  a.store.guard = fence;
  await assert.rejects(a.store.putNode(node('3')), (err: unknown) => isCode(err, 'UNAVAILABLE'), 'the old leader is fenced');
  assert.equal((await raw.get('/sampan/cluster/el/nodes/3').string()), null);
  assert.equal((await storedLeader())?.name, 'b');

  // resigning hands over at once: a stands again behind b, then leads
  await a.e.stepBack();
  await b.e.resign();
  await until('a leads after b resigned', () => a.e.role === 'leader');
  assert.deepEqual(leaders(), ['a']);
  await a.store.putNode(node('4'));

  // a higher version ready: the leader is told to hand over, and after it steps back the higher one leads
  const c = await start('c', '2.0.0');
  await until('a is outranked', () => a.outranked === 1);
  assert.equal(c.e.role, 'standby', 'c waits for a to hand over');
  await a.e.stepBack();
  await until('c leads', () => c.e.role === 'leader');
  assert.deepEqual(leaders(), ['c']);

  // a lower version never takes over from a higher one that lives
  const d = await start('d', '1.5.0');
  await c.e.stepBack();
  await until('c leads again', () => c.e.role === 'leader');
  assert.equal(d.e.role, 'standby');
  assert.deepEqual(leaders(), ['c']);
  assert.equal(c.outranked, 0);
});
