/**
 * The browsers' listener passes the API who a checked token is (UI_USER_HEADER), and only then: a header of that
 * name a client sends is dropped, whether its token passes or not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { silentLogger } from '../lib/log.js';
import { UI_USER_HEADER, UiServer, type UiRole } from './server.js';

test('the API hears the checked token\'s identity, never one a client sends', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'spuisrv-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const roles: Record<string, UiRole> = { 'tok-admin': 'admin', 'tok-read': 'read' };
  const ui = new UiServer({
    listen: '127.0.0.1:0', staticDir: dir, log: silentLogger,
    authenticate: async (tok) => roles[tok],
    identify: (tok) => `ui:${tok.slice(4)}`,
    // what the API heard: the header in both of node's views of the request
    api: (req, res) => {
      const raw: string[] = [];
      for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === UI_USER_HEADER) raw.push(req.rawHeaders[i + 1]!);
      res!.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ header: req.headers[UI_USER_HEADER] ?? null, raw }));
    },
  });
  await ui.start();
  t.after(() => ui.close());
  const ask = async (token: string, method = 'GET') => {
    const r = await fetch(`${ui.url}/sampan/v1/releases`, { method, headers: { Authorization: `Bearer ${token}`, [UI_USER_HEADER]: 'ui:forged' } });
    return { status: r.status, body: r.status === 200 ? await r.json() : undefined };
  };
  assert.deepEqual(await ask('tok-admin', 'POST'), { status: 200, body: { header: 'ui:admin', raw: ['ui:admin'] } });
  assert.deepEqual(await ask('tok-read'), { status: 200, body: { header: 'ui:read', raw: ['ui:read'] } });
  assert.equal((await ask('tok-read', 'POST')).status, 403);
  assert.equal((await ask('nobody')).status, 401);
});

test('a token check that fails (etcd does not answer) is a 503 to retry, never a 401 that logs the page out', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'spuisrv-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  let down = true;
  const ui = new UiServer({
    listen: '127.0.0.1:0', staticDir: dir, log: silentLogger,
    authenticate: async (tok) => {
      if (down) throw new Error('etcd: deadline exceeded');
      return tok === 'tok-admin' ? 'admin' : undefined;
    },
    api: (_req, res) => res!.writeHead(200, { 'Content-Type': 'application/json' }).end('{}'),
  });
  await ui.start();
  t.after(() => ui.close());
  const login = () => fetch(`${ui.url}/sampan/v1/ui/login`, { method: 'POST', headers: { Authorization: 'Bearer tok-admin' } });
  const r = await login();
  assert.equal(r.status, 503);
  assert.equal(r.headers.get('retry-after'), '2');
  assert.match(((await r.json()) as { message: string }).message, /deadline exceeded/);
  down = false;
  const ok = await login();
  assert.equal(ok.status, 200);
  assert.deepEqual(await ok.json(), { role: 'admin' });
});
