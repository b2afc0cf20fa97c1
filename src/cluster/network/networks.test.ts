import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isCode } from '../../lib/errors.js';
import type { NewPlacement } from '../state.js';
import { EtcdCluster } from '../etcd.js';
import type { NodeEntry } from '../state.js';
import { ClusterStore } from '../store.js';
import { cidrText, contains, overlaps, parseCidr } from './ipam.js';
import { ClusterNetworking, defaultNetworkPrefix, type NetworkConfig } from './networks.js';

const CFG: NetworkConfig = { pool: '10.192.0.0/12', networkSize: 16, blockSize: 24, routing: 'host-gw' };
const node = (id: string) => ({ rec: { id } }) as NodeEntry;
let seq = 0;
const placements = (net: string, nodes: string[], each: number): NewPlacement[] =>
  nodes.flatMap((n) => Array.from({ length: each }, () => ({ id: `c${++seq}`, node: node(n), net: { network: net } })));

test('cluster networks and their addresses in etcd: blocks leased per node, an address per placement in its transaction, no duplicate when two managers race, exhaustion leaves nothing behind, all rebuilt at start', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'spipam-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const etcd = await EtcdCluster.start({ dir, members: 1 });
  t.after(() => etcd.stop());
  const sa = ClusterStore.connect(etcd.endpoints, 'n1');
  const sb = ClusterStore.connect(etcd.endpoints, 'n1');
  t.after(() => [sa, sb].forEach((s) => s.close()));
  const keys = async (prefix: string) => sa.readAll<{ node?: string; container?: string; ip?: string }>(prefix);

  const a = new ClusterNetworking(sa, CFG);
  await a.load(new Map());
  await a.ensureDefault();
  const def = a.get('cluster');
  const pool = parseCidr(CFG.pool);
  assert.equal(def.spec.subnet, cidrText({ start: pool.start, prefix: pool.prefix + 1 }), 'the default network, made at the first start: half the pool');
  assert.ok(def.ipam.blockCount >= 2048, 'a block for each of thousands of hosts');

  // network records: names unique, subnets in the pool and apart, VNIs unique
  const web = await a.create({ name: 'web', routing: 'vxlan' });
  const webNet = parseCidr(web.spec.subnet);
  assert.equal(webNet.prefix, CFG.networkSize);
  assert.ok(contains(pool, webNet) && !overlaps(webNet, def.ipam.subnet), `${web.spec.subnet}: in the pool, apart from the default network`);
  /** An address or block of web's subnet: its first two octets, then these. */
  const inWeb = (rest: string) => `${web.spec.subnet.split('.').slice(0, 2).join('.')}.${rest}`;
  assert.notEqual(web.spec.vni, def.spec.vni);
  assert.equal(web.spec.mtu, 1450);
  await assert.rejects(a.create({ name: 'web' }), (e) => isCode(e, 'CONFLICT') && /already exists/.test((e as Error).message));
  await assert.rejects(a.create({ name: 'x', subnet: '10.0.0.0/16' }), (e) => isCode(e, 'INVALID_ARGUMENT') && /10\.192\.0\.0\/12/.test((e as Error).message));
  await assert.rejects(a.create({ name: 'x', subnet: inWeb('4.0/24') }), (e) => isCode(e, 'INVALID_ARGUMENT') && /overlaps network web/.test((e as Error).message));
  const tiny = await a.create({ name: 'tiny', subnet: '10.207.0.0/23' });
  assert.equal(tiny.ipam.blockCount, 2);
  const b = new ClusterNetworking(sb, CFG);
  await b.load(await sb.placements());
  assert.deepEqual(b.specs(), a.specs(), 'a second manager reads them, and makes no other default network');

  // 3 nodes × 300 containers: /24 blocks of 254 addresses, so 2 blocks each
  const ps = placements(def.spec.id, ['n1', 'n2', 'n3'], 300);
  await a.place(ps);
  const ips = ps.map((p) => p.net!.ip!);
  assert.equal(new Set(ips).size, 900);
  const blocks = await keys(`blocks/${def.spec.id}/`);
  assert.equal(blocks.size, 6);
  for (const p of ps) {
    const block = `${p.net!.ip!.split('.').slice(0, 3).join('.')}.0`;
    assert.equal(blocks.get(block)?.node, p.node.rec.id, `${p.net!.ip} is in a block of its node`);
    assert.notEqual(p.net!.ip!.split('.')[3], '0');
    assert.notEqual(p.net!.ip!.split('.')[3], '255');
  }
  assert.equal((await keys(`ips/${def.spec.id}/`)).size, 900);
  assert.equal((await keys('placements/')).get(ps[0]!.id)?.ip, ps[0]!.net!.ip);

  // two managers racing (b does not know a's blocks and addresses): never one address twice
  const ra = placements(web.spec.id, ['n1', 'n2'], 100);
  const rb = placements(web.spec.id, ['n3', 'n4'], 100);
  await Promise.all([a.place(ra), b.place(rb)]);
  const c = new ClusterNetworking(sb, CFG);
  await c.load(await sb.placements());
  await Promise.all([a.place(placements(web.spec.id, ['n1'], 20)), c.place(placements(web.spec.id, ['n1'], 20))]);
  const held = await keys(`ips/${web.spec.id}/`);
  assert.equal(held.size, 440, 'every address once in etcd');
  assert.equal(new Set([...held.values()].map((v) => v.container)).size, 440, 'each to one container');
  const webBlocks = [...(await keys(`blocks/${web.spec.id}/`)).values()].map((v) => v.node).sort();
  assert.deepEqual(webBlocks, ['n1', 'n2', 'n3', 'n4'], 'one block each: the block race was lost and learnt');

  // --ip: taken anywhere is a 409, also when only the other manager knows it
  const fixed = { id: 'fixed', node: node('n1'), net: { network: web.spec.id, want: ra[0]!.net!.ip! } };
  await assert.rejects(b.place([fixed]), (e) => isCode(e, 'CONFLICT') && /Address already in use/.test((e as Error).message));
  const mine = { id: 'fixed2', node: node('n9'), net: { network: web.spec.id, want: inWeb('77.7') } };
  await a.place([mine]);
  assert.equal((await keys(`blocks/${web.spec.id}/`)).get(inWeb('77.0'))?.node, 'n9', 'an address in no block: its node leases that block');

  // exhausted: a 409, and no placement, block or address written
  const before = (await keys('')).size;
  await assert.rejects(a.place(placements(tiny.spec.id, ['n1', 'n2', 'n3'], 1)), (e) => isCode(e, 'CONFLICT') && /no available IPv4 addresses on network tiny/.test((e as Error).message));
  assert.equal((await keys('')).size, before);
  await a.place(placements(tiny.spec.id, ['n1', 'n2'], 1));
  assert.equal(tiny.ipam.usedCount(), 2, 'what the failed placement chose was given back');

  // removed: the placement and its address together; a network with containers stays
  await assert.rejects(a.remove('web'), (e) => isCode(e, 'CONFLICT') && /has active endpoints/.test((e as Error).message));
  await sa.write(a.unplaceOps([ps[0]!.id]));
  a.released([ps[0]!.id]);
  assert.equal((await keys('placements/')).has(ps[0]!.id), false);
  assert.equal((await keys(`ips/${def.spec.id}/`)).has(ps[0]!.net!.ip!), false);

  // a new manager rebuilds from etcd: the free address is the one it hands out next on that node
  const d = new ClusterNetworking(sa, CFG);
  await d.load(await sa.placements());
  assert.equal(d.get('cluster').ipam.usedCount(), 899);
  const again = placements(def.spec.id, [ps[0]!.node.rec.id], 1);
  await d.place(again);
  assert.equal(again[0]!.net!.ip, ps[0]!.net!.ip);

  // a network without containers goes with its blocks
  const empty = await a.create({ name: 'empty' });
  await a.place(placements(empty.spec.id, ['n1'], 1)).then(() => undefined);
  await sa.write(a.unplaceOps([`c${seq}`]));
  a.released([`c${seq}`]);
  await a.remove('empty');
  assert.equal((await keys(`blocks/${empty.spec.id}/`)).size, 0);
  assert.equal(a.find('empty'), undefined);
});

test('the default network is half the pool, never smaller than a named network nor than a block', () => {
  assert.equal(defaultNetworkPrefix(CFG), 13);
  assert.equal(defaultNetworkPrefix({ ...CFG, pool: '10.0.0.0/8', networkSize: 9, blockSize: 26 }), 9);
  assert.equal(defaultNetworkPrefix({ ...CFG, pool: '10.192.0.0/16' }), 16, 'a pool of one network: all of it');
  assert.equal(defaultNetworkPrefix({ ...CFG, pool: '10.192.0.0/24', networkSize: 24 }), 24, 'a pool of one block');
});
