import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { promises as fs, rmSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate } from 'node:timers/promises';
import bcrypt from 'bcryptjs';
import { FakeClock } from '../../lib/clock.js';
import { RegistryError } from '../errors.js';
import { allowAll } from '../hooks.js';
import { toServerAuthorizer } from './adapter.js';
import { createAuthorizer, type AuthResult, type RegistryAuthorizer } from './authorizer.js';
import { AuthConfigError } from './config.js';
import { KEY_FILE, libtrustKeyId, type SigningKey } from './keys.js';
import type { PolicyConfig } from './policy.js';
import { catalogScope, parseScope } from './scope.js';
import { TokenIssuer, type TokenResponse } from './token.js';
import { basic, captureLogger, serve } from './testutil.js';

const dir = await fs.mkdtemp(join(tmpdir(), 'sampan-authz-test-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const htpasswd = join(dir, 'htpasswd');
await fs.writeFile(htpasswd, `alice:${bcrypt.hashSync('wonderland', 4).replace(/^\$2b\$/, '$2y$')}\nbob:${bcrypt.hashSync('builder', 4)}\n`);

const policy: PolicyConfig = {
  rules: [
    { user: 'alice', repos: 'alice/**', actions: ['*'] },
    { user: '*', repos: 'alice/**', actions: ['pull'] },
    { anonymous: true, repos: 'public/*', actions: ['pull'] },
  ],
};

function req(headers: Record<string, string> = {}, address = '10.1.2.3'): IncomingMessage {
  return { method: 'GET', url: '/v2/', headers: { host: 'registry.test:5000', ...headers }, socket: { remoteAddress: address } } as unknown as IncomingMessage;
}

function refused(r: AuthResult): Exclude<AuthResult, { ok: true }> {
  assert.equal(r.ok, false, 'expected a refusal');
  return r as Exclude<AuthResult, { ok: true }>;
}

test('mode none allows everything; the server adapter is allowAll', async () => {
  const a = await createAuthorizer({ mode: 'none' });
  assert.deepEqual(await a.authorize(req(), 'any/repo', ['pull', 'push', 'delete']), { ok: true });
  assert.deepEqual(await a.authorize(req(), undefined, []), { ok: true });
  assert.equal(toServerAuthorizer(a), allowAll);
  assert.equal((await createAuthorizer()).mode, 'none');
});

test('config errors name the field', async () => {
  await assert.rejects(createAuthorizer({ mode: 'htpasswd' }), (e: Error) => e instanceof AuthConfigError && /auth\.htpasswd/.test(e.message));
  await assert.rejects(createAuthorizer({ mode: 'token', issueTokens: false }), /auth\.trustedKeys/);
  await assert.rejects(createAuthorizer({ mode: 'token', realm: 'not a url' } as never), /auth\.realm/);
  await assert.rejects(createAuthorizer({ mode: 'bogus' } as never), AuthConfigError);
  await assert.rejects(createAuthorizer({ mode: 'htpasswd', htpasswd: join(dir, 'missing') }), /htpasswd file/);
  await assert.rejects(createAuthorizer({ mode: 'token' }), /registry root/);
});

test('htpasswd mode: Basic on every request, anonymous grants, 403 when not allowed, delayed failures', async () => {
  const { log, lines } = captureLogger();
  const clock = new FakeClock();
  const a = await createAuthorizer({ mode: 'htpasswd', htpasswd, realm: 'My Registry', failedLoginDelayMs: 200, policy }, { log, clock });
  const challenge = 'Basic realm="My Registry"';

  // no credentials
  const base = refused(await a.authorize(req(), undefined, []));
  assert.deepEqual(base, { ok: false, status: 401, code: 'UNAUTHORIZED', message: 'authentication required', challenge });
  assert.deepEqual(await a.authorize(req(), 'public/app', ['pull']), { ok: true });
  assert.equal(refused(await a.authorize(req(), 'public/app', ['pull', 'push'])).status, 401);
  assert.equal(refused(await a.authorize(req(), 'alice/app', ['pull'])).status, 401);
  assert.equal(refused(await a.authorizeScope(req(), catalogScope())).status, 401);

  // good credentials
  const alice = req({ authorization: basic('alice', 'wonderland') });
  assert.deepEqual(await a.authorize(alice, undefined, []), { ok: true, account: 'alice' });
  assert.deepEqual(await a.authorize(alice, 'alice/app', ['pull', 'push']), { ok: true, account: 'alice' });
  assert.deepEqual(await a.authorize(alice, 'alice/app', ['delete']), { ok: true, account: 'alice' });
  assert.deepEqual(await a.authorizeScope(alice, catalogScope()), { ok: true, account: 'alice' });
  const bob = req({ authorization: basic('bob', 'builder') });
  assert.deepEqual(await a.authorize(bob, 'bob/app', ['pull', 'push']), { ok: true, account: 'bob' });
  assert.deepEqual(await a.authorize(bob, 'public/app', ['pull']), { ok: true, account: 'bob' });
  const denied = refused(await a.authorize(bob, 'alice/app', ['pull', 'push']));
  assert.equal(denied.status, 403);
  assert.equal(denied.code, 'DENIED');
  assert.equal(denied.challenge, undefined);
  assert.equal(refused(await a.authorize(bob, 'bob/app', ['delete'])).status, 403);

  // bad credentials: 401 once the delay has passed, logged
  let answered = false;
  const pending = a.authorize(req({ authorization: basic('alice', 'nope') }, '10.9.9.9'), 'alice/app', ['pull']).finally(() => (answered = true));
  assert.deepEqual(await clock.sleeping(), [200]);
  clock.advance(199);
  await setImmediate();
  assert.equal(answered, false, 'answered before the delay');
  clock.advance(1);
  const bad = refused(await pending);
  assert.equal(bad.status, 401);
  assert.equal(bad.challenge, challenge);
  assert.ok(lines.some((l) => l.msg === 'failed login' && l.user === 'alice' && l.address === '10.9.9.9' && l.delayMs === 200));

  // other schemes
  assert.equal(refused(await a.authorize(req({ authorization: 'Bearer abc' }), 'public/app', ['pull'])).status, 401);
});

test('htpasswd mode through the server adapter: RegistryError with WWW-Authenticate', async () => {
  const a = toServerAuthorizer(await createAuthorizer({ mode: 'htpasswd', htpasswd, policy }));
  await assert.rejects(
    Promise.resolve(a.authorize(req(), { type: 'repository', name: 'alice/app', actions: ['pull'] })),
    (e: unknown) => e instanceof RegistryError && e.kind === 'UNAUTHORIZED' && e.status === 401 && e.headers?.['WWW-Authenticate'] === 'Basic realm="Sampan Registry"',
  );
  await assert.rejects(
    Promise.resolve(a.authorize(req({ authorization: basic('bob', 'builder') }), { type: 'repository', name: 'alice/app', actions: ['delete'] })),
    (e: unknown) => e instanceof RegistryError && e.kind === 'DENIED' && e.status === 403,
  );
  await a.authorize(req({ authorization: basic('bob', 'builder') }), { type: 'repository', name: 'bob/app', actions: ['pull', 'push'] });
});

// ---- token mode

const root = join(dir, 'root');
const { log: tlog, lines: tlines } = captureLogger();
const tokenAuth = await createAuthorizer({ mode: 'token', htpasswd, policy, failedLoginDelayMs: 100 }, { root, log: tlog });
const srv = await serve((rq, rs) => tokenAuth.tokenHandler!(rq, rs));
after(() => srv.close());

async function fetchToken(scopes: string[], auth?: string): Promise<string> {
  const q = new URLSearchParams({ service: 'sampan-registry' });
  for (const s of scopes) q.append('scope', s);
  const res = await fetch(`${srv.url}${tokenAuth.tokenPath}?${q}`, { headers: auth ? { authorization: auth } : {} });
  assert.equal(res.status, 200);
  return ((await res.json()) as TokenResponse).token;
}

const bearer = (t: string) => req({ authorization: `Bearer ${t}` });
const REALM = 'Bearer realm="http://registry.test:5000/auth/token",service="sampan-registry"';

test('token mode: the key is generated under the root; the token handler is exposed', async () => {
  const st = await fs.stat(join(root, KEY_FILE));
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal(tokenAuth.mode, 'token');
  assert.equal(tokenAuth.tokenPath, '/auth/token');
  assert.equal(typeof tokenAuth.tokenHandler, 'function');
});

test('token mode: challenges carry realm, service and scope', async () => {
  const base = refused(await tokenAuth.authorize(req(), undefined, []));
  assert.deepEqual(base, { ok: false, status: 401, code: 'UNAUTHORIZED', message: 'authentication required', challenge: REALM });
  const pull = refused(await tokenAuth.authorize(req(), 'alice/app', ['pull']));
  assert.equal(pull.challenge, `${REALM},scope="repository:alice/app:pull"`);
  const push = refused(await tokenAuth.authorize(req(), 'alice/app', ['pull', 'push']));
  assert.equal(push.challenge, `${REALM},scope="repository:alice/app:pull,push"`);
  const cat = refused(await tokenAuth.authorizeScope(req(), catalogScope()));
  assert.equal(cat.challenge, `${REALM},scope="registry:catalog:*"`);
  // Basic credentials are not accepted by a token registry: the challenge sends the client to the realm
  assert.equal(refused(await tokenAuth.authorize(req({ authorization: basic('alice', 'wonderland') }), 'alice/app', ['pull'])).challenge, `${REALM},scope="repository:alice/app:pull"`);
});

test('token mode: a token grants what it carries; more → 401 insufficient_scope', async () => {
  const t = await fetchToken(['repository:alice/app:pull'], basic('alice', 'wonderland'));
  assert.deepEqual(await tokenAuth.authorize(bearer(t), 'alice/app', ['pull']), { ok: true, account: 'alice' });
  assert.deepEqual(await tokenAuth.authorize(bearer(t), undefined, []), { ok: true, account: 'alice' });
  const more = refused(await tokenAuth.authorize(bearer(t), 'alice/app', ['pull', 'push']));
  assert.equal(more.status, 401);
  assert.equal(more.code, 'UNAUTHORIZED');
  assert.equal(more.challenge, `${REALM},scope="repository:alice/app:pull,push",error="insufficient_scope"`);
  const other = refused(await tokenAuth.authorize(bearer(t), 'alice/other', ['pull']));
  assert.match(other.challenge!, /error="insufficient_scope"$/);

  // a token asked with * gets pull, push, delete (alice's rule) and passes each
  const all = await fetchToken(['repository:alice/app:*', 'registry:catalog:*'], basic('alice', 'wonderland'));
  for (const actions of [['pull'], ['pull', 'push'], ['delete']]) assert.equal((await tokenAuth.authorize(bearer(all), 'alice/app', actions)).ok, true);
  assert.equal((await tokenAuth.authorizeScope(bearer(all), catalogScope())).ok, true);

  // bob asked everything on alice/app but only got pull
  const bobs = await fetchToken(['repository:alice/app:pull,push,delete'], basic('bob', 'builder'));
  assert.deepEqual(await tokenAuth.authorize(bearer(bobs), 'alice/app', ['pull']), { ok: true, account: 'bob' });
  assert.match(refused(await tokenAuth.authorize(bearer(bobs), 'alice/app', ['pull', 'push'])).challenge!, /insufficient_scope/);
});

test('token mode: anonymous grants, with an anonymous token or without any', async () => {
  const anon = await fetchToken(['repository:public/app:pull,push', 'repository:alice/app:pull']);
  assert.deepEqual(await tokenAuth.authorize(bearer(anon), 'public/app', ['pull']), { ok: true });
  assert.deepEqual(await tokenAuth.authorize(bearer(anon), undefined, []), { ok: true });
  assert.match(refused(await tokenAuth.authorize(bearer(anon), 'public/app', ['pull', 'push'])).challenge!, /insufficient_scope/);
  assert.match(refused(await tokenAuth.authorize(bearer(anon), 'alice/app', ['pull'])).challenge!, /insufficient_scope/);
  // without a token: what anonymous clients may do
  assert.deepEqual(await tokenAuth.authorize(req(), 'public/app', ['pull']), { ok: true });
  assert.equal(refused(await tokenAuth.authorize(req(), 'public/app', ['pull', 'push'])).status, 401);
});

test('token mode: expired, forged and wrong-audience tokens → 401 invalid_token', async () => {
  const svc = tokenAuth.tokenService!;
  const scope = [parseScope('repository:alice/app:pull')];
  const expired = await svc.issuer.issue('alice', 'sampan-registry', scope, Date.now() - 3600_000);
  const r1 = refused(await tokenAuth.authorize(bearer(expired.token), 'alice/app', ['pull']));
  assert.equal(r1.status, 401);
  assert.equal(r1.challenge, `${REALM},scope="repository:alice/app:pull",error="invalid_token"`);
  assert.match(r1.message, /expired/);

  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const otherKey: SigningKey = { privateKey, publicKey, alg: 'ES256', kid: libtrustKeyId(publicKey), source: 'test' };
  const forged = await new TokenIssuer({ key: { ...otherKey, kid: svc.issuer.key.kid }, issuer: 'sampan-token-service' }).issue('alice', 'sampan-registry', scope);
  assert.match(refused(await tokenAuth.authorize(bearer(forged.token), 'alice/app', ['pull'])).challenge!, /error="invalid_token"/);

  const wrongAud = await svc.issuer.issue('alice', 'another-registry', scope);
  const r3 = refused(await tokenAuth.authorize(bearer(wrongAud.token), 'alice/app', ['pull']));
  assert.match(r3.challenge!, /error="invalid_token"/);
  assert.match(r3.message, /aud/);

  const wrongIss = await new TokenIssuer({ key: svc.issuer.key, issuer: 'evil' }).issue('alice', 'sampan-registry', scope);
  assert.match(refused(await tokenAuth.authorize(bearer(wrongIss.token), 'alice/app', ['pull'])).message, /iss/);

  assert.match(refused(await tokenAuth.authorize(bearer('not.a.token'), undefined, [])).challenge!, /invalid_token/);
  assert.ok(tlines.some((l) => l.msg === 'invalid token' && l.address === '10.1.2.3'));
});

test('token mode: the persisted key verifies tokens across restarts; a configured realm is used; https realm by default over TLS', async () => {
  const again: RegistryAuthorizer = await createAuthorizer({ mode: 'token', htpasswd, policy, realm: 'https://auth.example/token', service: 'sampan-registry' }, { root });
  const t = await fetchToken(['repository:alice/app:pull'], basic('alice', 'wonderland'));
  assert.deepEqual(await again.authorize(bearer(t), 'alice/app', ['pull']), { ok: true, account: 'alice' });
  assert.equal(refused(await again.authorize(req(), undefined, [])).challenge, 'Bearer realm="https://auth.example/token",service="sampan-registry"');

  const tls = { method: 'GET', headers: { host: 'r.example' }, socket: { remoteAddress: '::1', encrypted: true } } as unknown as IncomingMessage;
  assert.equal(refused(await tokenAuth.authorize(tls, undefined, [])).challenge, 'Bearer realm="https://r.example/auth/token",service="sampan-registry"');
  // a Host header that is not a host falls back
  const odd = req({ host: 'x" y' });
  assert.match(refused(await tokenAuth.authorize(odd, undefined, [])).challenge!, /realm="http:\/\/localhost\/auth\/token"/);
});

test('token mode with an external issuer: trusted keys only, no token handler', async () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const pub = join(dir, 'external.pem');
  await fs.writeFile(pub, publicKey.export({ type: 'spki', format: 'pem' }));
  const a = await createAuthorizer({ mode: 'token', issueTokens: false, trustedKeys: [pub], realm: 'https://auth.example/token', issuer: 'ext', service: 'reg' });
  assert.equal(a.tokenHandler, undefined);
  const key: SigningKey = { privateKey, publicKey, alg: 'ES256', kid: libtrustKeyId(publicKey), source: 'test' };
  const t = await new TokenIssuer({ key, issuer: 'ext' }).issue('carol', 'reg', [parseScope('repository:x/y:pull,push')]);
  assert.deepEqual(await a.authorize(bearer(t.token), 'x/y', ['pull', 'push']), { ok: true, account: 'carol' });
  // and tokens of our own service are not trusted there
  const ours = await tokenAuth.tokenService!.issuer.issue('carol', 'reg', [parseScope('repository:x/y:pull')]);
  assert.match(refused(await a.authorize(bearer(ours.token), 'x/y', ['pull'])).message, /unknown key|iss/);
});

test('token mode through the server adapter: insufficient scope is UNAUTHORIZED with the challenge', async () => {
  const s = toServerAuthorizer(tokenAuth);
  const t = await fetchToken(['repository:alice/app:pull'], basic('alice', 'wonderland'));
  await s.authorize(bearer(t), { type: 'repository', name: 'alice/app', actions: ['pull'] });
  await assert.rejects(
    Promise.resolve(s.authorize(bearer(t), { type: 'repository', name: 'alice/app', actions: ['pull', 'push'] })),
    (e: unknown) =>
      e instanceof RegistryError &&
      e.kind === 'UNAUTHORIZED' &&
      e.headers?.['WWW-Authenticate'] === `${REALM},scope="repository:alice/app:pull,push",error="insufficient_scope"` &&
      JSON.stringify(e.detail) === JSON.stringify([{ Type: 'repository', Name: 'alice/app', Action: 'pull' }, { Type: 'repository', Name: 'alice/app', Action: 'push' }]),
  );
});
