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
