import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCode } from '../lib/errors.js';
import { loadManagerConfig } from './manager.js';

const etcd = ['http://127.0.0.1:2379'];
const tls = { tlscacert: '/m/ca.pem', tlscert: '/m/cert.pem', tlskey: '/m/key.pem' };

test('the external scheduler\'s URL and timeout come from flags or SAMPAN_CLUSTER_*, validated at start', async () => {
  const cfg = await loadManagerConfig({ etcd }, { SAMPAN_CLUSTER_SCHEDULER_URL: 'http://127.0.0.1:9000/place' });
  assert.equal(cfg.schedulerUrl, 'http://127.0.0.1:9000/place');
  assert.equal(cfg.schedulerTimeoutMs, 5000);
  assert.equal((await loadManagerConfig({ etcd, schedulerTimeoutMs: 800 }, {})).schedulerUrl, undefined);
  await assert.rejects(loadManagerConfig({ etcd, schedulerUrl: 'ftp://x/place' }, {}), (e) => isCode(e, 'INVALID_ARGUMENT') && /schedulerUrl/.test((e as Error).message));
  await assert.rejects(loadManagerConfig({ etcd }, { SAMPAN_CLUSTER_SCHEDULER_URL: 'not a url' }), /manager config: schedulerUrl/);
  await assert.rejects(loadManagerConfig({ etcd, schedulerTimeoutMs: 10 }, {}), /schedulerTimeoutMs/);
});

test('manager config: tcp:// and wss:// need the three TLS files; ws:// stays on loopback', async () => {
  await assert.rejects(loadManagerConfig({ etcd, listen: 'tcp://10.0.0.1:2376' }, {}), /refusing to listen on tcp:\/\/10\.0\.0\.1:2376 without mutual TLS: pass --tlscacert, --tlscert and --tlskey/);
  await assert.rejects(loadManagerConfig({ etcd, nodeListen: 'wss://10.0.0.1:4000', tlscacert: '/m/ca.pem' }, {}), /refusing to listen on wss:\/\/10\.0\.0\.1:4000 without mutual TLS/);
  await assert.rejects(loadManagerConfig({ etcd, nodeListen: 'ws://10.0.0.1:4000' }, {}), /nodeListen: .*wss:\/\/HOST:PORT \(mutual TLS\) off loopback/);
  const c = await loadManagerConfig({ etcd, listen: 'tcp://10.0.0.1:2376', nodeListen: 'wss://10.0.0.1:4000', ...tls }, {});
  assert.equal(c.listen, 'tcp://10.0.0.1:2376');
  assert.equal((await loadManagerConfig({ etcd, nodeListen: 'ws://127.0.0.1:4000' }, {})).nodeListen, 'ws://127.0.0.1:4000');
});

test('manager config: the certificate towards engines defaults to the manager\'s own; --engine-tls* (SAMPAN_CLUSTER_ENGINE_TLS*) override it', async () => {
  const own = await loadManagerConfig({ etcd, ...tls }, {});
  assert.deepEqual([own.engineTlscacert, own.engineTlscert, own.engineTlskey], ['/m/ca.pem', '/m/cert.pem', '/m/key.pem']);
  const other = await loadManagerConfig({ etcd, ...tls, engineTlscacert: '/e/ca.pem' }, { SAMPAN_CLUSTER_ENGINE_TLSCERT: '/e/cert.pem' });
  assert.deepEqual([other.engineTlscacert, other.engineTlscert, other.engineTlskey], ['/e/ca.pem', '/e/cert.pem', '/m/key.pem']);
  const none = await loadManagerConfig({ etcd }, {});
  assert.equal(none.engineTlscert, undefined);
});

test('manager config: the cluster networks\' pool, network and block sizes and routing, from flags or SAMPAN_CLUSTER_*, checked together at start', async () => {
  const d = await loadManagerConfig({ etcd }, {});
  assert.deepEqual([d.pool, d.networkSize, d.blockSize, d.routing], ['10.192.0.0/12', 16, 24, 'host-gw']);
  const e = await loadManagerConfig({ etcd, blockSize: 26 }, { SAMPAN_CLUSTER_POOL: '10.64.0.0/10', SAMPAN_CLUSTER_NETWORK_SIZE: '20', SAMPAN_CLUSTER_ROUTING: 'vxlan' });
  assert.deepEqual([e.pool, e.networkSize, e.blockSize, e.routing], ['10.64.0.0/10', 20, 26, 'vxlan']);
  await assert.rejects(loadManagerConfig({ etcd, pool: '10.192.0.1/12' }, {}), (err) => isCode(err, 'INVALID_ARGUMENT') && /host bits/.test((err as Error).message));
  await assert.rejects(loadManagerConfig({ etcd, networkSize: 8 }, {}), /network size \/8: must be within the pool \(\/12\)/);
  await assert.rejects(loadManagerConfig({ etcd, networkSize: 25 }, {}), /hold a block \(\/24\)/);
  await assert.rejects(loadManagerConfig({ etcd }, { SAMPAN_CLUSTER_ROUTING: 'bgp' }), /routing/);
});
