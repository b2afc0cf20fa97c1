import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadEngineConfig } from './config.js';

test('engine config: flags > env (SAMPAN_*) > file > defaults, validated once', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sp-cfg-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'engine.json');
  await fs.writeFile(file, JSON.stringify({ root: '/from/file', execRoot: '/exec/file', bridgeName: 'sampan9' }));
  const env = { SAMPAN_CONFIG: file, SAMPAN_EXEC_ROOT: '/exec/env', SAMPAN_LXCFS: 'false', SAMPAN_REGISTRY_MIRRORS: 'http://a, http://b' };
  const c = await loadEngineConfig({ root: '/from/flag' }, env);
  assert.equal(c.root, '/from/flag');
  assert.equal(c.execRoot, '/exec/env');
  assert.equal(c.bridgeName, 'sampan9');
  assert.equal(c.lxcfs, false);
  assert.deepEqual(c.registryMirrors, ['http://a', 'http://b']);
  assert.equal(c.cgroupParent, '/sampan');
  await assert.rejects(loadEngineConfig({ bridgeName: 'br0' }, env), /engine config: bridgeName/);
  await assert.rejects(loadEngineConfig({ hosts: ['tcp://127.0.0.1:2376'] }, env), /without mutual TLS/);
  await assert.rejects(loadEngineConfig({ config: path.join(dir, 'missing.json') }, {}), /config file .*missing\.json/);
  await fs.writeFile(file, '{"bogus": 1}');
  await assert.rejects(loadEngineConfig({}, env), /bogus|unrecognized/i);
});

test('engine config: a wss:// join takes --join-tls* (env SAMPAN_JOIN_TLS*), else the engine\'s own --tls* files, else is refused; ws:// only on loopback', async () => {
  const base = { join: ['wss://10.0.0.1:4000'], joinToken: 't' };
  const own = await loadEngineConfig({ ...base, tlscacert: '/c/ca.pem', tlscert: '/c/cert.pem', tlskey: '/c/key.pem' }, {});
  assert.deepEqual([own.joinTlscacert, own.joinTlscert, own.joinTlskey], ['/c/ca.pem', '/c/cert.pem', '/c/key.pem']);
  const given = await loadEngineConfig({ ...base, tlscacert: '/c/ca.pem', tlscert: '/c/cert.pem', tlskey: '/c/key.pem', joinTlscert: '/j/cert.pem' }, { SAMPAN_JOIN_TLSKEY: '/j/key.pem' });
  assert.deepEqual([given.joinTlscacert, given.joinTlscert, given.joinTlskey], ['/c/ca.pem', '/j/cert.pem', '/j/key.pem']);
  await assert.rejects(loadEngineConfig({ ...base, joinTlscacert: '/j/ca.pem' }, {}), /refusing to join wss:\/\/10\.0\.0\.1:4000 without mutual TLS/);
  await assert.rejects(loadEngineConfig({ ...base, join: ['ws://10.0.0.1:4000'] }, {}), /join\.0: .*wss:\/\/HOST:PORT \(mutual TLS\) for a manager off this host/);
  assert.deepEqual((await loadEngineConfig({ ...base, join: ['ws://127.0.0.1:4000', 'unix:///run/n.sock'] }, {})).join, ['ws://127.0.0.1:4000', 'unix:///run/n.sock']);
});
