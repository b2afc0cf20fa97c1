import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadRegistryConfig } from '../config.js';
import { parseTtl } from './config.js';

test('parseTtl: units, bare seconds, junk', () => {
  assert.equal(parseTtl('500ms'), 500);
  assert.equal(parseTtl('1s'), 1000);
  assert.equal(parseTtl('5m'), 300_000);
  assert.equal(parseTtl('1h'), 3_600_000);
  assert.equal(parseTtl('90'), 90_000);
  assert.equal(parseTtl(2), 2000);
  assert.equal(parseTtl(0), 0);
  assert.equal(parseTtl('soon'), undefined);
  assert.equal(parseTtl('-1s'), undefined);
  assert.equal(parseTtl(-1), undefined);
});

test('proxy section: flags > env > file > defaults, key by key', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sreg-proxy-'));
  try {
    const file = path.join(dir, 'config.json');
    await fs.writeFile(file, JSON.stringify({ proxy: { remoteurl: 'https://file.example.com/', username: 'fileuser', password: 'filepass', ttl: '1m' } }));
    const fromFile = await loadRegistryConfig({ config: file }, {});
    assert.deepEqual(fromFile.proxy, { remoteurl: 'https://file.example.com', username: 'fileuser', password: 'filepass', ttl: '1m', ttlMs: 60_000 });

    const env = { SAMPAN_REGISTRY_PROXY_TTL: '30s', SAMPAN_REGISTRY_PROXY_PASSWORD: 'envpass' };
    const layered = await loadRegistryConfig({ config: file, proxy: { remoteurl: 'http://127.0.0.1:5000' } }, env);
    assert.equal(layered.proxy?.remoteurl, 'http://127.0.0.1:5000');
    assert.equal(layered.proxy?.username, 'fileuser');
    assert.equal(layered.proxy?.password, 'envpass');
    assert.equal(layered.proxy?.ttlMs, 30_000);

    // the whole section as JSON in SAMPAN_REGISTRY_PROXY; defaults fill the rest
    const json = await loadRegistryConfig({}, { SAMPAN_REGISTRY_PROXY: '{"remoteurl":"https://r.example.com"}' });
    assert.equal(json.proxy?.ttlMs, 300_000);
    assert.equal(json.proxy?.username, undefined);

    assert.equal((await loadRegistryConfig({}, {})).proxy, undefined);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('proxy section: refusals', async () => {
  const bad = async (proxy: Record<string, string>, re: RegExp) => {
    await assert.rejects(loadRegistryConfig({ proxy }, {}), (err: Error) => re.test(err.message));
  };
  await bad({ remoteurl: 'http://registry.example.com' }, /proxy\.remoteurl: plain http is only allowed for a loopback upstream/);
  await bad({ remoteurl: 'not a url' }, /proxy\.remoteurl: not a URL/);
  await bad({ remoteurl: 'https://u:p@r.example.com' }, /no query, fragment or credentials/);
  await bad({ remoteurl: 'https://r.example.com', password: 'p' }, /proxy\.username: username and password go together/);
  await bad({ remoteurl: 'https://r.example.com', ttl: '5 minutes' }, /proxy\.ttl: invalid duration/);
  await bad({ username: 'u' }, /proxy\.remoteurl/);
  // loopback names and addresses may use http
  for (const u of ['http://localhost:5000', 'http://127.0.0.2:5000', 'http://[::1]:5000']) assert.ok((await loadRegistryConfig({ proxy: { remoteurl: u } }, {})).proxy);
});
