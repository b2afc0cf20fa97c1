import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { sha256 } from '../digest.js';
import { MediaType } from '../oci.js';
import { Registries, DistributionError, domainOfServer, hostOf, insecureMatch, isLoopback, parseMirrors, readBody } from './client.js';

test('endpoints: loopback and insecure registries, mirrors, login server names', () => {
  for (const d of ['localhost:5000', '127.0.0.1:5000', '127.9.9.9', '[::1]:5000', 'localhost']) assert.ok(isLoopback(d), d);
  for (const d of ['10.0.0.1:5000', 'registry.example', 'docker.io']) assert.ok(!isLoopback(d), d);
  assert.ok(insecureMatch(['reg.lan:5000'], 'reg.lan:5000'));
  assert.ok(insecureMatch(['reg.lan'], 'reg.lan:5000'));
  assert.ok(!insecureMatch(['reg.lan:5001'], 'reg.lan:5000'));
  assert.ok(insecureMatch(['10.1.0.0/16'], '10.1.2.3:5000'));
  assert.ok(!insecureMatch(['10.1.0.0/16'], '10.2.2.3:5000'));
  assert.deepEqual(parseMirrors(['https://mirror.example/', 'reg.lan:5000=http://127.0.0.1:6000']).map((m) => [m.domain, m.url.href]), [
    ['docker.io', 'https://mirror.example/'],
    ['reg.lan:5000', 'http://127.0.0.1:6000/'],
  ]);
  assert.throws(() => parseMirrors(['ftp://x']), /scheme/);
  assert.throws(() => parseMirrors(['not a url']), /not a URL/);
  assert.equal(domainOfServer('https://index.docker.io/v1/'), 'docker.io');
  assert.equal(domainOfServer('http://127.0.0.1:5000/'), '127.0.0.1:5000');
  assert.equal(domainOfServer(undefined), 'docker.io');
});


test('host of a registry name: host:port, [v6]:port, bare v6, host', () => {
  assert.equal(hostOf('reg.lan:5000'), 'reg.lan');
  assert.equal(hostOf('[::1]:5000'), '[::1]');
  assert.equal(hostOf('::1'), '::1');
  assert.equal(hostOf('reg.lan'), 'reg.lan');
});

// ---- against a scripted registry on loopback (plain http, as the engine talks to loopback registries)

interface Seen {
  method: string;
  url: string;
  authorization?: string;
}

/** A registry with a token service: alice/secret may pull and push `team/app`; blobs redirect to a second host. */
async function scriptedRegistry() {
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: {}, layers: [] }));
  const blob = Buffer.from('layer bytes');
  const seen: Seen[] = [];
  const uploaded: Buffer[] = [];
  let tokens = 0;
  const storage = http.createServer((req, res) => {
    seen.push({ method: req.method!, url: `storage${req.url}`, authorization: req.headers.authorization });
    res.end(blob);
  });
  await new Promise<void>((r) => storage.listen(0, '127.0.0.1', r));
  const storageUrl = `http://127.0.0.1:${(storage.address() as AddressInfo).port}`;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    seen.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization });
    const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    if (url.pathname === '/token') {
      const basic = req.headers.authorization === `Basic ${Buffer.from('alice:secret').toString('base64')}`;
      if (req.headers.authorization && !basic) return void res.writeHead(401).end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'bad password' }] }));
      tokens++;
      const scopes = url.searchParams.getAll('scope').join(' ');
      return void res.end(JSON.stringify({ token: `${basic ? 'alice' : 'anon'}|${scopes}`, expires_in: 300 }));
    }
    const bearer = (req.headers.authorization ?? '').replace(/^Bearer /, '');
    if (url.pathname === '/upload/1') {
      if (!bearer.includes('team/app:pull,push')) return void res.writeHead(401).end();
      return void readBody(req).then((b) => {
        uploaded.push(b);
        res.writeHead(201).end();
      });
    }
    const challenge = (scope?: string) => `Bearer realm="http://${host}/token",service="test"${scope ? `,scope="${scope}"` : ''}`;
    if (url.pathname === '/v2/') return void res.writeHead(401, { 'www-authenticate': challenge() }).end();
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/(.+)$/.exec(url.pathname);
    const repo = m?.[1] ?? '';
    if (!bearer.includes(`repository:${repo}:`)) return void res.writeHead(401, { 'www-authenticate': challenge(`repository:${repo}:pull`) }).end();
    if (repo !== 'team/app' || !bearer.startsWith('alice|')) return void res.writeHead(404).end(JSON.stringify({ errors: [{ code: 'NAME_UNKNOWN', message: 'repository name not known to registry' }] }));
    if (m![2] === 'manifests' && m![3] === 'bad') return void res.writeHead(200, { 'content-type': MediaType.OciManifest }).end('{"schemaVersion":1}');
    if (m![2] === 'manifests' && m![3] === 'missing') return void res.writeHead(404).end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }));
    if (m![2] === 'manifests') return void res.writeHead(200, { 'content-type': 'text/plain' }).end(manifest);
    if (m![3] === 'uploads/') return void res.writeHead(202, { location: '/upload/1' }).end();
    if (m![3] === sha256(blob)) return void res.writeHead(307, { location: `${storageUrl}/blob` }).end();
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const domain = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = () => {
    server.closeAllConnections();
    storage.closeAllConnections();
    server.close();
    storage.close();
  };
  return { domain, manifest, blob, seen, uploaded, tokens: () => tokens, close };
}

const reg = await scriptedRegistry();
const registries = new Registries({});
after(() => {
  registries.close();
  reg.close();
});
const alice = { username: 'alice', password: 'secret' };

test('bearer auth: ping, a token for the repository scope, cached across clients; manifests verified', async () => {
  const c = registries.repo(registries.originEndpoint(reg.domain), 'team/app', alice, ['pull']);
  const m = await c.getManifest('latest');
  assert.deepEqual(m.bytes, reg.manifest);
  assert.equal(m.mediaType, MediaType.OciManifest, 'the document\'s own media type wins over a wrong Content-Type');
  assert.equal(m.digest, sha256(reg.manifest));
  const tokenReq = reg.seen.find((s) => s.url.startsWith('/token'))!;
  assert.match(tokenReq.url, /service=test&scope=repository%3Ateam%2Fapp%3Apull&account=alice/);
  const before = reg.tokens();
  await registries.repo(registries.originEndpoint(reg.domain), 'team/app', alice, ['pull']).getManifest(m.digest);
  assert.equal(reg.tokens(), before, 'the token was reused');
  await assert.rejects(c.getManifest(sha256('other')), /manifest verification failed/);
  await assert.rejects(c.getManifest('bad'), (e: DistributionError) => e.code === 'INVALID_ARGUMENT' && /schema 1/.test(e.message));
  await assert.rejects(c.getManifest('missing'), (e: DistributionError) => e.code === 'NOT_FOUND' && e.registryCode === 'MANIFEST_UNKNOWN' && e.said === 'manifest unknown: manifest unknown');
});

test('blobs: a redirect to storage carries no credentials; HEAD; a wrong password is UNAUTHORIZED', async () => {
  const c = registries.repo(registries.originEndpoint(reg.domain), 'team/app', alice, ['pull']);
  assert.deepEqual(await c.readBlob(sha256(reg.blob)), reg.blob);
  const atStorage = reg.seen.filter((s) => s.url.startsWith('storage'));
  assert.ok(atStorage.length > 0 && atStorage.every((s) => s.authorization === undefined));
  assert.equal(await c.hasBlob(sha256('nope')), false);
  const wrong = registries.repo(registries.originEndpoint(reg.domain), 'team/app', { username: 'alice', password: 'guess' }, ['pull']);
  await assert.rejects(wrong.getManifest('latest'), (e: DistributionError) => e.code === 'UNAUTHORIZED' && e.status === 401);
  await assert.rejects(registries.login({ username: 'alice', password: 'guess', serveraddress: reg.domain }), (e: DistributionError) => e.code === 'UNAUTHORIZED');
  await registries.login({ ...alice, serveraddress: `http://${reg.domain}/` });
});

test('a 401 naming another scope is answered once with a token for both; anonymous gets the registry\'s 404', async () => {
  const c = registries.repo(registries.originEndpoint(reg.domain), 'other/app', undefined, ['pull']);
  await assert.rejects(c.getManifest('latest'), (e: DistributionError) => e.code === 'NOT_FOUND' && e.registryCode === 'NAME_UNKNOWN');
  assert.ok(reg.seen.some((s) => s.url.startsWith('/token') && s.url.includes('scope=repository%3Aother%2Fapp%3Apull') && !s.authorization));
});

test('uploads: POST, then the bytes PUT with the digest to where the registry said; push needs the push scope', async () => {
  const c = registries.repo(registries.originEndpoint(reg.domain), 'team/app', alice, ['pull', 'push']);
  const d = sha256('new blob');
  await c.uploadBlob(d, 8, () => Readable.from([Buffer.from('new blob')]));
  assert.equal(reg.seen.filter((s) => s.method === 'PUT').at(-1)!.url, `/upload/1?digest=${encodeURIComponent(d)}`);
  assert.deepEqual(reg.uploaded, [Buffer.from('new blob')]);
  // a streamed body cannot be sent again: its 401 is the error, not a retry
  const pullOnly = registries.repo(registries.originEndpoint(reg.domain), 'team/app', alice, ['pull']);
  await assert.rejects(pullOnly.uploadBlob(d, 8, () => Readable.from([Buffer.from('new blob')])), (e: DistributionError) => /uploading sha256:/.test(e.message) && e.status === 401);
  assert.equal(reg.uploaded.length, 1);
});

test('readBody refuses an answer past its limit', async () => {
  await assert.rejects(readBody(Readable.from([Buffer.alloc(10), Buffer.alloc(10)]), 15), (e: DistributionError) => e.code === 'INVALID_ARGUMENT');
  assert.equal((await readBody(Readable.from([Buffer.alloc(10)]), 10)).length, 10);
});
