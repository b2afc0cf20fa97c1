import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadRegistryConfig } from './config.js';

test('config: an htpasswd file with no mode anywhere means htpasswd auth; settings contradicting mode none refuse', async () => {
  assert.equal((await loadRegistryConfig({ auth: { htpasswd: '/etc/h' } }, {})).auth.mode, 'htpasswd');
  assert.equal((await loadRegistryConfig({ auth: { htpasswd: '/etc/h', mode: 'token' } }, {})).auth.mode, 'token');
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sregcfg-'));
  try {
    const file = path.join(dir, 'r.json');
    await fs.writeFile(file, JSON.stringify({ auth: { htpasswd: '/etc/h' } }));
    assert.equal((await loadRegistryConfig({ config: file }, {})).auth.mode, 'htpasswd');
    await fs.writeFile(file, JSON.stringify({ auth: { mode: 'none' } }));
    await assert.rejects(loadRegistryConfig({ config: file, auth: { htpasswd: '/etc/h' } }, {}), /auth.mode is none/);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
  await assert.rejects(loadRegistryConfig({ auth: { htpasswd: '/etc/h', mode: 'none' } }, {}), /auth.mode is none/);
  await assert.rejects(loadRegistryConfig({ anonymousRead: ['public/*'] }, {}), /auth.mode is none/);
  assert.equal((await loadRegistryConfig({ auth: { htpasswd: '/etc/h' }, anonymousRead: ['public/*'] }, {})).auth.mode, 'htpasswd');
});
