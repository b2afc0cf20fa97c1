import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenCache, authIdentity, decodeRegistryAuth, parseWwwAuthenticate } from '../../lib/distribution/auth.js';
import { domainOfServer, insecureMatch, isLoopback, parseMirrors } from '../../lib/distribution/client.js';
import { humanSize, progressBar } from './progress.js';
import { pullReference } from './pull.js';

test('WWW-Authenticate: bearer with quoted params and escapes, basic, several challenges', () => {
  assert.deepEqual(parseWwwAuthenticate('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'), [
    { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' } },
  ]);
  assert.deepEqual(parseWwwAuthenticate('Basic realm="say \\"hi\\""'), [{ scheme: 'basic', params: { realm: 'say "hi"' } }]);
  assert.deepEqual(parseWwwAuthenticate(['Basic realm=x, Bearer realm="r", error="insufficient_scope"']), [
    { scheme: 'basic', params: { realm: 'x' } },
    { scheme: 'bearer', params: { realm: 'r', error: 'insufficient_scope' } },
  ]);
  assert.deepEqual(parseWwwAuthenticate(undefined), []);
});

test('X-Registry-Auth: base64url JSON, auth field split, empty and garbage are anonymous', () => {
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  assert.deepEqual(decodeRegistryAuth(enc({ username: 'u', password: 'p+/?', serveraddress: 'r:5000' })), {
    username: 'u', password: 'p+/?', auth: undefined, email: undefined, serveraddress: 'r:5000', identitytoken: undefined, registrytoken: undefined,
  });
  assert.equal(decodeRegistryAuth(enc({ auth: Buffer.from('me:se:cret').toString('base64') }))?.password, 'se:cret');
  assert.equal(decodeRegistryAuth(enc({ identitytoken: 'tok' }))?.identitytoken, 'tok');
  assert.equal(decodeRegistryAuth(enc({})), undefined);
  assert.equal(decodeRegistryAuth('e30='), undefined);
  assert.equal(decodeRegistryAuth('%%%not-base64'), undefined);
  assert.equal(decodeRegistryAuth(undefined), undefined);
  assert.notEqual(authIdentity({ username: 'a', password: '1' }), authIdentity({ username: 'a', password: '2' }));
});

test('token cache: hit until shortly before expiry, keyed by scopes in any order', () => {
  const c = new TokenCache();
  const k = TokenCache.key('r', 's', ['b', 'a'], 'id');
  assert.equal(k, TokenCache.key('r', 's', ['a', 'b'], 'id'));
  c.set(k, 'tok', 300);
  assert.equal(c.get(k), 'tok');
  c.set(k, 'old', 300, new Date(Date.now() - 299_000).toISOString());
  assert.equal(c.get(k), undefined);
});

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

test('pull references: tag param, digest as tag, latest by default', () => {
  assert.deepEqual(pullReference('busybox', ''), { domain: 'docker.io', path: 'library/busybox', tag: 'latest', digest: undefined });
  assert.equal(pullReference('r:5000/a/b', '1').tag, '1');
  const d = `sha256:${'a'.repeat(64)}`;
  assert.equal(pullReference('a/b', d).digest, d);
  assert.equal(pullReference(`a/b:1@${d}`).tag, undefined);
  assert.throws(() => pullReference('a/UPPER', '1'));
});

test('progress: Docker-style sizes and bars', () => {
  assert.equal(humanSize(512), '512B');
  assert.equal(humanSize(2_130_944), '2.131MB');
  assert.equal(progressBar(0, 100), `[>${' '.repeat(49)}]       0B/100B`);
  assert.equal(progressBar(50, 100), `[${'='.repeat(25)}>${' '.repeat(24)}]      50B/100B`);
  assert.equal(progressBar(100, 100), `[${'='.repeat(50)}>]     100B/100B`);
});
