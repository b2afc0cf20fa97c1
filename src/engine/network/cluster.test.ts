import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClusterNetworkSpec, NetworkPeer } from '../../lib/node-protocol.js';
import { blockOf, clusterBridgeConf, clusterRecord, planRouting } from './cluster.js';

const ID = 'a1b2c3d4e5f6'.padEnd(64, '0');
const spec = (over: Partial<ClusterNetworkSpec> = {}): ClusterNetworkSpec => ({
  id: ID, name: 'cluster', subnet: '10.192.0.0/16', routing: 'host-gw', vni: 0, mtu: 1500, internal: false, labels: { a: 'b' }, ...over,
});
const peer = (node: string, addr: string, blocks: string[], vtepMac?: string): NetworkPeer => ({ node, network: ID, addr, blocks, ...(vtepMac ? { vtepMac } : {}) });

test('a cluster network\'s record: overlay and swarm, its bridge named after its id, its blocks kept', () => {
  const r = clusterRecord(spec({ routing: 'vxlan', vni: 7, mtu: 1450 }));
  assert.equal(r.Driver, 'overlay');
  assert.equal(r.Scope, 'swarm');
  assert.equal(r.BridgeName, 'spca1b2c3d4');
  assert.deepEqual(r.IPAM.Config, [{ Subnet: '10.192.0.0/16', Gateway: '10.192.0.1' }]);
  assert.equal(r.Options['com.docker.network.driver.overlay.vxlanid_list'], '7');
  assert.deepEqual(r.Labels, { a: 'b' });
  r.Cluster!.blocks = ['10.192.5.0/24'];
  const again = clusterRecord(spec({ routing: 'vxlan', vni: 7, mtu: 1450 }), r);
  assert.deepEqual(again.Cluster!.blocks, ['10.192.5.0/24']);
  assert.equal(again.IPAM.Config[0]!.Gateway, '10.192.5.1');
  assert.equal(again.Created, r.Created);
});

test('host-gw: a route per other host\'s block via that host', () => {
  const plan = planRouting(spec(), [peer('n2', '10.0.0.2', ['10.192.2.0/24', '10.192.9.0/24']), peer('n3', '10.0.0.3', ['10.192.3.0/24'])]);
  assert.deepEqual(plan.routes, [
    { dst: '10.192.2.0/24', via: '10.0.0.2' },
    { dst: '10.192.9.0/24', via: '10.0.0.2' },
    { dst: '10.192.3.0/24', via: '10.0.0.3' },
  ]);
  assert.deepEqual(plan.neigh, []);
  assert.deepEqual(plan.fdb, []);
});

test('vxlan: routes on-link via each host\'s VTEP (its first block\'s network address), its neighbour and FDB entries; none before its MAC is known', () => {
  const plan = planRouting(spec({ routing: 'vxlan', vni: 42 }), [
    peer('n2', '10.0.0.2', ['10.192.2.0/24', '10.192.9.0/24'], 'AA:BB:CC:00:00:02'),
    peer('n3', '10.0.0.3', ['10.192.3.0/24']),
  ]);
  assert.deepEqual(plan.routes, [
    { dst: '10.192.2.0/24', via: '10.192.2.0', dev: 'spvx42' },
    { dst: '10.192.9.0/24', via: '10.192.2.0', dev: 'spvx42' },
  ]);
  assert.deepEqual(plan.neigh, [{ ip: '10.192.2.0', mac: 'aa:bb:cc:00:00:02' }]);
  assert.deepEqual(plan.fdb, [{ mac: 'aa:bb:cc:00:00:02', dst: '10.0.0.2' }]);
});

test('an endpoint gets its address with its block\'s prefix, the block\'s gateway as its route, and the network\'s MTU', () => {
  const r = clusterRecord(spec({ mtu: 1400 }));
  r.Cluster!.blocks = ['10.192.4.0/24', '10.192.8.0/24'];
  assert.equal(blockOf(r, '10.192.8.9'), '10.192.8.0/24');
  assert.equal(blockOf(r, '10.192.5.9'), undefined);
  const conf = clusterBridgeConf(r, '10.192.8.9');
  assert.equal(conf.bridge, 'spca1b2c3d4');
  assert.equal(conf.isGateway, false);
  assert.equal(conf.mtu, 1400);
  assert.deepEqual(conf.ipam, { type: 'static', addresses: [{ address: '10.192.8.9/24', gateway: '10.192.8.1' }], routes: [{ dst: '0.0.0.0/0', gw: '10.192.8.1' }] });
  const internal = clusterRecord(spec({ internal: true, routing: 'vxlan', mtu: 0 }));
  internal.Cluster!.blocks = ['10.192.4.0/24'];
  const ic = clusterBridgeConf(internal, '10.192.4.2');
  assert.deepEqual((ic.ipam as { routes: unknown }).routes, [{ dst: '10.192.0.0/16', gw: '10.192.4.1' }]);
  assert.equal(ic.mtu, 1450);
});
