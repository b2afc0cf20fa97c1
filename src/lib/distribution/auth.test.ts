import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FakeClock } from '../clock.js';
import { TokenCache, authIdentity, basicHeader, decodeRegistryAuth, decodeRegistryConfig, normalizeAuth, parseWwwAuthenticate } from './auth.js';

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

test('token cache: hit until shortly before expiry, keyed by scopes in any order (fake clock)', () => {
  const clock = new FakeClock();
  const c = new TokenCache(2, clock.now);
  const k = TokenCache.key('r', 's', ['b', 'a'], 'id');
  assert.equal(k, TokenCache.key('r', 's', ['a', 'b'], 'id'));
  c.set(k, 'tok', 300);
  // 30 s of margin: a token never expires in flight
  clock.advance(269_999);
  assert.equal(c.get(k), 'tok');
  clock.advance(1);
  assert.equal(c.get(k), undefined);
  // the lifetime counts from issued_at (when it is not in the future), and is at least the spec's 60 s
  c.set(k, 'old', 300, new Date(clock.now() - 299_000).toISOString());
  assert.equal(c.get(k), undefined);
  c.set(k, 'short', 1);
  clock.advance(53_999);
  assert.equal(c.get(k), 'short');
  clock.advance(1);
  assert.equal(c.get(k), undefined);
  c.set(k, 'future', 60, new Date(clock.now() + 3_600_000).toISOString());
  clock.advance(53_999);
  assert.equal(c.get(k), 'future', 'an issued_at in the future counts from now');
  // bounded: the oldest entry goes first
  c.set('a', '1', 300);
  c.set('b', '2', 300);
  c.set('c', '3', 300);
  assert.deepEqual([c.get('a'), c.get('b'), c.get('c')], [undefined, '2', '3']);
});


test('X-Registry-Config: credentials by registry host, docker.io under any of its names', () => {
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64');
  const forRef = decodeRegistryConfig(
    enc({ 'https://index.docker.io/v1/': { username: 'hub', password: 'h' }, 'reg.lan:5000': { auth: Buffer.from('lan:l').toString('base64') }, 'http://other.example/path': { username: 'o', password: 'x' }, bad: 'x' }),
  );
  assert.equal(forRef('busybox')?.username, 'hub');
  assert.equal(forRef('user/app:1')?.username, 'hub');
  assert.equal(forRef('reg.lan:5000/a/b')?.username, 'lan');
  assert.equal(forRef('reg.lan:5000/a/b')?.password, 'l');
  assert.equal(forRef('other.example/a')?.username, 'o');
  assert.equal(forRef('unknown.example/a'), undefined);
  assert.equal(decodeRegistryConfig('%%%')('busybox'), undefined);
  assert.equal(decodeRegistryConfig(undefined)('busybox'), undefined);
});

test('credentials: Go-cased fields, the auth field, tokens; nothing usable is anonymous', () => {
  assert.deepEqual(normalizeAuth({ Username: 'u', Password: 'p', ServerAddress: 'r' }), {
    username: 'u', password: 'p', auth: undefined, email: undefined, serveraddress: 'r', identitytoken: undefined, registrytoken: undefined,
  });
  assert.equal(normalizeAuth({ IdentityToken: 'refresh' })?.identitytoken, 'refresh');
  assert.equal(normalizeAuth({ registrytoken: 'bearer' })?.registrytoken, 'bearer');
  assert.equal(normalizeAuth({ auth: Buffer.from('no-colon').toString('base64') }), undefined);
  assert.equal(normalizeAuth({ username: '', password: 7 }), undefined);
  assert.equal(basicHeader({ username: 'a', password: 'b:c' }), `Basic ${Buffer.from('a:b:c').toString('base64')}`);
  assert.equal(authIdentity(undefined), 'anonymous');
  assert.ok(!authIdentity({ username: 'a', password: 'secret' }).includes('secret'));
});

test('property: WWW-Authenticate challenges read back as a registry writes them; any header parses', () => {
  const quote = (v: string) => `"${v.replace(/["\\]/g, '\\$&')}"`;
  const token = fc.stringMatching(/^[A-Za-z][A-Za-z0-9_.-]{0,10}$/);
  const challenge = fc.record({ scheme: token, params: fc.dictionary(token.map((k) => k.toLowerCase()), fc.string(), { maxKeys: 4 }) }, { noNullPrototype: true });
  fc.assert(
    fc.property(fc.array(challenge, { minLength: 1, maxLength: 3 }), (list) => {
      const header = list.map((c) => `${c.scheme} ${Object.entries(c.params).map(([k, v]) => `${k}=${quote(v)}`).join(', ')}`).join(', ');
      const want = list.map((c) => ({ scheme: c.scheme.toLowerCase(), params: { ...c.params } }));
      assert.deepEqual(parseWwwAuthenticate(header), want, header);
    }),
    { numRuns: 2000 },
  );
  fc.assert(fc.property(fc.oneof(fc.string(), fc.string({ unit: fc.constantFrom('Bearer', ' ', ',', '=', '"', '\\', 'realm', 'a') })), (h) => void parseWwwAuthenticate(h)), { numRuns: 2000 });
});
