import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { text } from 'node:stream/consumers';
import { Registry } from 'prom-client';
import { conflict } from '../errors.js';
import { silentLogger } from '../log.js';
import { HttpApp } from './app.js';
import { dockerFlavour, jsonFlavour } from './status.js';

async function serve(app: HttpApp): Promise<string> {
  const { port } = await app.listen('127.0.0.1', 0);
  return `http://127.0.0.1:${port}`;
}

test('routes with params, 404, 405 with Allow, HEAD without a body, typed errors in the JSON flavour', async (t) => {
  const metrics = new Registry();
  const app = new HttpApp({ log: silentLogger, flavour: jsonFlavour, metrics: { registry: metrics, prefix: 'test_' } });
  app.route('GET', '/things/:id', 'thing', (r) => ({ status: 200, body: { id: r.param('id'), q: r.query.get('q') } }));
  app.route('POST', '/things', 'create', async (r) => ({ status: 201, body: await r.json() }));
  app.route('DELETE', '/things/:id', 'remove', () => {
    throw conflict('thing is in use');
  });
  app.metricsRoute(metrics);
  const base = await serve(app);
  t.after(() => app.close(1000));

  assert.deepEqual(await (await fetch(`${base}/things/a%20b?q=1`)).json(), { id: 'a b', q: '1' });
  const head = await fetch(`${base}/things/x`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), '');
  const missing = await fetch(`${base}/nothing`);
  assert.equal(missing.status, 404);
  assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
  const wrong = await fetch(`${base}/things`, { method: 'PUT' });
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get('allow'), 'POST');
  const used = await fetch(`${base}/things/x`, { method: 'DELETE' });
  assert.equal(used.status, 409);
  assert.deepEqual(await used.json(), { error: { code: 'CONFLICT', message: 'thing is in use' } });
  const notJson = await fetch(`${base}/things`, { method: 'POST', body: '{nope' });
  assert.equal(notJson.status, 400);
  const created = await fetch(`${base}/things`, { method: 'POST', body: '{"a":1}' });
  assert.equal(created.status, 201);
  assert.match(await (await fetch(`${base}/metrics`)).text(), /test_http_requests_total\{route="remove",method="DELETE",status="409"\} 1/);
});

test('a body over the limit is 413 before it is read; Docker flavour errors are {"message"}', async (t) => {
  const app = new HttpApp({ log: silentLogger, flavour: dockerFlavour, maxBody: 10 });
  app.route('POST', '/in', 'in', async (r) => ({ status: 200, body: (await r.body()).length }));
  const base = await serve(app);
  t.after(() => app.close(1000));
  const big = await fetch(`${base}/in`, { method: 'POST', body: 'x'.repeat(100) });
  assert.equal(big.status, 413);
  assert.match(((await big.json()) as { message: string }).message, /larger than 10 bytes/);
  assert.equal(await (await fetch(`${base}/in`, { method: 'POST', body: 'x'.repeat(5) })).text(), '5');
});

test('a wildcard route sees the path as sent and names what it found; a route may have its own error flavour; a fast path answers first', async (t) => {
  const metrics = new Registry();
  const app = new HttpApp({
    log: silentLogger,
    flavour: jsonFlavour,
    metrics: { registry: metrics, prefix: 'test_' },
    fastPath: (req, res) => req.url === '/fast' && (res.end('fast'), true),
  });
  app.route('GET', '/v2/*', 'v2', (r) => {
    r.route = r.path.endsWith('/tags/list') ? 'tags' : 'other';
    return { status: 200, body: { path: r.path, q: r.query.get('n') } };
  });
  app.route('GET', '/token', 'token', () => {
    throw conflict('no');
  }, dockerFlavour);
  app.metricsRoute(metrics);
  const base = await serve(app);
  t.after(() => app.close(1000));

  // node:http sends the path as written (fetch would resolve the dot segments first)
  const raw = await new Promise<string>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: new URL(base).port, path: '/v2/a/%2e%2e/b%2Fc/tags/list?n=2' }, (res) => void text(res).then(resolve, reject)).on('error', reject);
  });
  assert.deepEqual(JSON.parse(raw), { path: '/v2/a/%2e%2e/b%2Fc/tags/list', q: '2' });
  assert.deepEqual(await (await fetch(`${base}/token`)).json(), { message: 'no' });
  assert.equal(await (await fetch(`${base}/fast`)).text(), 'fast');
  assert.match(await (await fetch(`${base}/metrics`)).text(), /test_http_requests_total\{route="tags",method="GET",status="200"\} 1/);
});
