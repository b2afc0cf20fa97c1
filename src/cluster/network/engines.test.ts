import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isCode } from '../../lib/errors.js';
import { silentLogger } from '../../lib/log.js';
import type { ManagerMessage, NetworksMessage, PeersMessage } from '../../lib/node-protocol.js';
import { EtcdCluster } from '../etcd.js';
import { ClusterState } from '../state.js';
import { ClusterStore, type NodeRecord } from '../store.js';
import { NetworkSync } from './engines.js';
import { ClusterNetworking } from './networks.js';

const rec = (id: string, addr: string): NodeRecord => ({
  id, name: `h-${id}`, labels: {}, api: 'unix:///x.sock', addr, capacity: { ncpu: 1, memTotal: 1 }, version: '0', joinedAt: '', state: 'up',
});

test('engines are told the networks and the peers of the networks where they hold blocks, changes coalesced per flush; netstate; node removal', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'spsync-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const etcd = await EtcdCluster.start({ dir, members: 1 });
  t.after(() => etcd.stop());
  const store = ClusterStore.connect(etcd.endpoints, 's1');
  t.after(() => store.close());

  const sent: Array<[string, ManagerMessage]> = [];
  const payloads: Array<[string, Buffer]> = [];
  /** Nodes whose connection has more queued than they read. */
  const slow = new Set<string>();
  const dropped: string[] = [];
  const state = new ClusterState();
  const nets = new ClusterNetworking(store, { pool: '10.192.0.0/12', networkSize: 16, blockSize: 24, routing: 'host-gw' });
  const sync = new NetworkSync(nets, state, store, {
    send: (n, m) => sent.push([n, m]),
    sendEncoded: (n, data) => {
      payloads.push([n, data]);
      sent.push([n, JSON.parse(data.toString()) as ManagerMessage]);
    },
    buffered: (n) => (slow.has(n) ? 2 << 20 : 0),
    broadcast: (m) => sent.push(['*', m]),
    drop: (n) => dropped.push(n),
  }, silentLogger);
  await nets.load(new Map());
  await nets.ensureDefault();
  sent.length = 0; // the default network's creation, told to none yet
  const peersTo = (node: string) => sent.filter(([n, m]) => n === node && m.type === 'peers').map(([, m]) => m as PeersMessage);

  const nodes = ['a', 'b', 'c', 'd'].map((id, i) => state.upsertNode(rec(id, `10.222.0.${i + 2}`)));
  for (const n of nodes) await store.putNode(n.rec);
  const [a, b, c, d] = nodes as [typeof nodes[0], typeof nodes[0], typeof nodes[0], typeof nodes[0]];

  // a welcome: the networks, then a full (empty: a holds no block) peers list
  sync.welcome(a);
  assert.deepEqual(sent.map(([n, m]) => [n, m.type]), [['a', 'networks'], ['a', 'peers']]);
  assert.deepEqual((sent[0]![1] as NetworksMessage).networks.map((n) => n.name), ['cluster']);
  assert.deepEqual(peersTo('a')[0], { type: 'peers', full: true, set: [], remove: [] });
  sent.length = 0;

  // a, b and c take their first blocks in one tick: one message each, with the network's whole list
  const net = nets.get('cluster');
  /** The network's I-th /24 block, in lease order. */
  const block = (i: number) => net.ipam.blockCidr(net.ipam.subnet.start + i * 256);
  await nets.place([a, b, c].map((n, i) => ({ id: `x${i}`, node: n, net: { network: net.spec.id } })));
  await sync.settled();
  for (const n of ['a', 'b', 'c']) {
    const ms = peersTo(n);
    assert.equal(ms.length, 1, `one message to ${n}`);
    assert.deepEqual(ms[0]!.set.map((p) => [p.node, p.addr, p.blocks]).sort(), [['a', '10.222.0.2', [block(0)]], ['b', '10.222.0.3', [block(1)]], ['c', '10.222.0.4', [block(2)]]]);
    assert.equal(ms[0]!.full, false);
  }
  assert.equal(peersTo('d').length, 0, 'd holds no block: it carries none of the routes');
  assert.equal(new Set(payloads.slice(-3).map(([, b]) => b)).size, 1, 'one payload, serialized once, for the three');
  sent.length = 0;

  // d joins the network: it gets the whole list, the holders only d's entry
  await nets.place([{ id: 'x3', node: d, net: { network: net.spec.id } }]);
  await sync.settled();
  assert.deepEqual(peersTo('d')[0]!.set.map((p) => p.node).sort(), ['a', 'b', 'c', 'd']);
  for (const n of ['a', 'b', 'c']) assert.deepEqual(peersTo(n)[0]!.set.map((p) => p.node), ['d']);
  const deltas = payloads.filter(([n]) => n !== 'd').slice(-3).map(([, b]) => b);
  assert.equal(new Set(deltas).size, 1, 'the change, serialized once for every holder');
  sent.length = 0;

  // an engine that reads slower than it is told gets no changes meanwhile, then the whole list once it caught up
  slow.add('a');
  sync.netstate(c, { type: 'netstate', network: net.spec.id, vtepMac: '02:00:00:00:00:0c' });
  await sync.settled();
  assert.equal(peersTo('a').length, 0, 'a is behind: nothing more is queued for it');
  assert.deepEqual(peersTo('b')[0]!.set.map((p) => p.node), ['c']);
  slow.delete('a');
  await sync.settled();
  assert.deepEqual(peersTo('a').map((m) => m.set.map((p) => p.node).sort()), [['a', 'b', 'c', 'd']], 'caught up: the whole list, once');
  sent.length = 0;

  // a creates network: every engine is told the full set
  await nets.create({ name: 'v', routing: 'vxlan' });
  assert.deepEqual(sent.map(([n, m]) => [n, m.type]), [['*', 'networks']]);
  assert.deepEqual((sent[0]![1] as NetworksMessage).networks.map((n) => n.name), ['cluster', 'v']);
  sent.length = 0;

  // netstate: a VTEP's MAC goes to the holders; an error degrades the node for that network only
  sync.netstate(b, { type: 'netstate', network: net.spec.id, vtepMac: '02:00:00:00:00:0b' });
  sync.netstate(c, { type: 'netstate', network: 'cluster', error: 'RTNETLINK answers: File exists' });
  await sync.settled();
  assert.deepEqual(peersTo('a')[0]!.set, [{ node: 'b', network: net.spec.id, addr: '10.222.0.3', blocks: [block(1)], vtepMac: '02:00:00:00:00:0b' }]);
  assert.deepEqual(sync.degraded.get('c'), { cluster: 'RTNETLINK answers: File exists' });
  assert.equal(sync.degraded.get('b'), undefined);
  sync.netstate(c, { type: 'netstate', network: 'cluster' });
  assert.equal(sync.degraded.get('c'), undefined, 'a later success clears it');
  sent.length = 0;

  // a welcome of a node holding blocks: the full list of its networks
  sync.welcome(b);
  const full = peersTo('b')[0]!;
  assert.equal(full.full, true);
  assert.deepEqual(full.set.map((p) => p.node).sort(), ['a', 'b', 'c', 'd']);
  sent.length = 0;

  // node removal: refused while up unless forced; then its placements, addresses and blocks leave etcd, and the
  // other holders are told
  state.placed.set('x3', 'd');
  await assert.rejects(sync.removeNode('h-d', false), (e) => isCode(e, 'CONFLICT') && /not down/.test((e as Error).message));
  d.rec = { ...d.rec, state: 'down' };
  await sync.removeNode('h-d', false);
  await sync.settled();
  for (const n of ['a', 'b', 'c']) assert.deepEqual(peersTo(n)[0]!.remove, [{ node: 'd', network: net.spec.id }]);
  assert.deepEqual(dropped, ['d']);
  assert.equal(state.node('h-d'), undefined);
  assert.equal((await store.readAll(`blocks/${net.spec.id}/`)).size, 3);
  assert.equal((await store.readAll('placements/')).has('x3'), false);
  assert.equal((await store.readAll(`ips/${net.spec.id}/`)).size, 3);
  assert.equal((await store.nodes()).some((n) => n.id === 'd'), false);
  assert.equal(nets.get('cluster').ipam.freeBlock(), nets.get('cluster').ipam.subnet.start + 3 * 256, 'its block is free again');
});

test('whole lists go out paced: past the budget of a flush, the other new holders are told at the next flushes', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sppace-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const etcd = await EtcdCluster.start({ dir, members: 1 });
  t.after(() => etcd.stop());
  const store = ClusterStore.connect(etcd.endpoints, 's1');
  t.after(() => store.close());
  const got: Array<[string, PeersMessage]> = [];
  const state = new ClusterState();
  const nets = new ClusterNetworking(store, { pool: '10.192.0.0/12', networkSize: 16, blockSize: 24, routing: 'host-gw' });
  // a budget of one byte: one whole list a flush
  const sync = new NetworkSync(nets, state, store, {
    send: () => undefined,
    sendEncoded: (n, data) => got.push([n, JSON.parse(data.toString()) as PeersMessage]),
    buffered: () => 0,
    broadcast: () => undefined,
    drop: () => undefined,
  }, silentLogger, 1);
  await nets.load(new Map());
  await nets.ensureDefault();
  const nodes = ['a', 'b', 'c'].map((id, i) => state.upsertNode(rec(id, `10.222.0.${i + 2}`)));
  const net = nets.get('cluster');
  await nets.place(nodes.map((n, i) => ({ id: `p${i}`, node: n, net: { network: net.spec.id } })));
  await sync.settled();
  assert.equal(got.length, 1, 'one whole list in the first flush');
  await sync.settled();
  await sync.settled();
  assert.deepEqual(got.map(([n]) => n).sort(), ['a', 'b', 'c'], 'each told once, over three flushes');
  for (const [, m] of got) assert.deepEqual(m.set.map((p) => p.node).sort(), ['a', 'b', 'c']);
});
