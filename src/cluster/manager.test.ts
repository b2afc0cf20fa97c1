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
