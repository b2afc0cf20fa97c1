import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { setImmediate } from 'node:timers/promises';
import { SignJWT, decodeJwt, decodeProtectedHeader } from 'jose';
import { libtrustKeyId, verificationKey, type SigningKey } from './keys.js';
import { Policy } from './policy.js';
import { parseScope } from './scope.js';
import { FakeClock } from '../../lib/clock.js';
import { LoginThrottle } from './throttle.js';
import { TokenError, TokenIssuer, TokenService, TokenVerifier, tokenCovers, type TokenClaims, type TokenResponse } from './token.js';
import { b64json, basic, captureLogger, serve, usersOf } from './testutil.js';

function ecKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { privateKey, publicKey, alg: 'ES256', kid: libtrustKeyId(publicKey), source: 'test' };
}

const key = ecKey();
const issuer = new TokenIssuer({ key, issuer: 'test-issuer', expiresInSeconds: 300 });
const verifier = () => new TokenVerifier({ keys: [verificationKey(key)], issuer: 'test-issuer', audience: 'test-registry', leewaySeconds: 30 });
const pullPush = [parseScope('repository:alice/app:pull,push')];

test('issue + verify round trip: header, claims, access', async () => {
  const t = await issuer.issue('alice', 'test-registry', pullPush);
  const header = decodeProtectedHeader(t.token);
  assert.deepEqual(header, { typ: 'JWT', alg: 'ES256', kid: key.kid });
  const claims = decodeJwt(t.token) as unknown as TokenClaims;
  assert.equal(claims.iss, 'test-issuer');
  assert.equal(claims.sub, 'alice');
  assert.equal(claims.aud, 'test-registry');
  assert.equal(claims.exp - claims.iat, 300);
  assert.equal(claims.nbf, claims.iat);
  assert.match(claims.jti, /^[A-Za-z0-9_-]{22}$/);
  assert.deepEqual(claims.access, [{ type: 'repository', name: 'alice/app', actions: ['pull', 'push'] }]);
  assert.match(t.issuedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal(t.expiresIn, 300);

  const v = await verifier().verify(t.token);
  assert.equal(v.account, 'alice');
  assert.ok(tokenCovers(v.access, parseScope('repository:alice/app:pull')));
  assert.ok(tokenCovers(v.access, parseScope('repository:alice/app:pull,push')));
  assert.ok(!tokenCovers(v.access, parseScope('repository:alice/app:delete')));
  assert.ok(!tokenCovers(v.access, parseScope('repository:alice/other:pull')));
  assert.ok(!tokenCovers(v.access, parseScope('repository(plugin):alice/app:pull')));

  const anon = await verifier().verify((await issuer.issue(undefined, 'test-registry', [])).token);
  assert.equal(anon.account, undefined);
  assert.deepEqual(anon.access, []);
});

test('RS256 keys work too', async () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const k: SigningKey = { privateKey, publicKey, alg: 'RS256', kid: libtrustKeyId(publicKey), source: 'test' };
  const t = await new TokenIssuer({ key: k, issuer: 'i' }).issue('bob', 'svc', pullPush);
  assert.equal(decodeProtectedHeader(t.token).alg, 'RS256');
  const v = await new TokenVerifier({ keys: [verificationKey(k)], issuer: 'i', audience: 'svc' }).verify(t.token);
  assert.equal(v.account, 'bob');
});

test('expired tokens are refused (beyond the leeway), and so are tokens not yet valid', async () => {
  const hourAgo = Date.now() - 3600_000;
  const old = await issuer.issue('alice', 'test-registry', pullPush, hourAgo);
  await assert.rejects(verifier().verify(old.token), (e: Error) => e instanceof TokenError && /expired/.test(e.message));
  // expired 10 s ago: within the 30 s leeway
  const recent = await issuer.issue('alice', 'test-registry', pullPush, Date.now() - 310_000);
  assert.equal((await verifier().verify(recent.token)).account, 'alice');
  // from the future
  const future = await issuer.issue('alice', 'test-registry', pullPush, Date.now() + 3600_000);
  await assert.rejects(verifier().verify(future.token), TokenError);
  // a verified token that expires afterwards is refused even though it was remembered
  const v = verifier();
  const t = await issuer.issue('alice', 'test-registry', pullPush);
  await v.verify(t.token);
  await assert.rejects(v.verify(t.token, Date.now() + 400_000), /expired/);
  // no exp at all
  const noExp = await new SignJWT({ iss: 'test-issuer', aud: 'test-registry', sub: 'alice', access: [] }).setProtectedHeader({ alg: 'ES256', kid: key.kid }).sign(key.privateKey);
  await assert.rejects(verifier().verify(noExp), TokenError);
});

test('forged tokens are refused: another key, tampered payload, alg none, HS256 with the public key', async () => {
  const good = (await issuer.issue('bob', 'test-registry', [parseScope('repository:bob/app:pull')])).token;
  const [h, p, s] = good.split('.') as [string, string, string];

  // signed by another key that claims our kid
  const other = ecKey();
  const forged = await new TokenIssuer({ key: { ...other, kid: key.kid }, issuer: 'test-issuer' }).issue('bob', 'test-registry', pullPush);
  await assert.rejects(verifier().verify(forged.token), /signature/);
  // signed by another key under its own kid
  const foreign = await new TokenIssuer({ key: other, issuer: 'test-issuer' }).issue('bob', 'test-registry', pullPush);
  await assert.rejects(verifier().verify(foreign.token), /unknown key/);

  // tampered payload: more actions, same signature
  const claims = decodeJwt(good) as unknown as TokenClaims;
  const tampered = `${h}.${b64json({ ...claims, access: [{ type: 'repository', name: 'bob/app', actions: ['pull', 'push', 'delete'] }] })}.${s}`;
  await assert.rejects(verifier().verify(tampered), /signature/);
  // tampered signature
  await assert.rejects(verifier().verify(`${h}.${p}.${s.slice(0, -4)}AAAA`), TokenError);

  // alg none
  const none = `${b64json({ typ: 'JWT', alg: 'none', kid: key.kid })}.${p}.`;
  await assert.rejects(verifier().verify(none), /algorithm/);
  // HS256 keyed with the public key (algorithm confusion)
  const hh = b64json({ typ: 'JWT', alg: 'HS256', kid: key.kid });
  const mac = createHmac('sha256', createPublicKey(key.privateKey).export({ type: 'spki', format: 'pem' })).update(`${hh}.${p}`).digest('base64url');
  await assert.rejects(verifier().verify(`${hh}.${p}.${mac}`), /algorithm/);

  // garbage
  for (const junk of ['', 'abc', 'a.b.c', `${h}.${p}`, 'x'.repeat(9000)]) await assert.rejects(verifier().verify(junk), TokenError);
});

test('wrong audience and wrong issuer are refused; a malformed access claim too', async () => {
  const wrongAud = await issuer.issue('alice', 'other-registry', pullPush);
  await assert.rejects(verifier().verify(wrongAud.token), /aud/);
  const wrongIss = await new TokenIssuer({ key, issuer: 'someone-else' }).issue('alice', 'test-registry', pullPush);
  await assert.rejects(verifier().verify(wrongIss.token), /iss/);
  const badAccess = await new SignJWT({ iss: 'test-issuer', aud: 'test-registry', sub: 'a', access: 'everything' })
    .setProtectedHeader({ alg: 'ES256', kid: key.kid })
    .setExpirationTime('5m')
    .sign(key.privateKey);
  await assert.rejects(verifier().verify(badAccess), /access claim/);
});

// ---- the token endpoint

const { log, lines } = captureLogger();
const DELAY = 300;
const clock = new FakeClock();
const service = new TokenService({
  issuer,
  service: 'test-registry',
  authenticator: usersOf({ alice: 'wonderland', bob: 'builder' }),
  policy: new Policy({
    rules: [
      { user: 'alice', repos: 'alice/*', actions: ['*'] },
      { anonymous: true, repos: 'public/*', actions: ['pull'] },
    ],
  }),
  throttle: new LoginThrottle(log, { baseDelayMs: DELAY, maxDelayMs: 4 * DELAY, clock }),
  log,
});
const srv = await serve(service.handler);
after(() => srv.close());

async function getToken(query: string, auth?: string): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(`${srv.url}/auth/token?${query}`, { headers: auth ? { authorization: auth } : {} });
  const body = (await res.json()) as Record<string, unknown>;
  return { status: res.status, body, headers: res.headers };
}

/** A failed login's answer: held for exactly `delayMs` on the clock, then given. */
async function delayed<T>(answer: Promise<T>, delayMs: number): Promise<T> {
  let answered = false;
  void answer.finally(() => (answered = true));
  assert.deepEqual(await clock.sleeping(), [delayMs]);
  clock.advance(delayMs - 1);
  await setImmediate();
  assert.equal(answered, false, 'answered before the delay');
  clock.advance(1);
  return answer;
}

test('token endpoint: Basic auth → the intersection of asked and allowed', async () => {
  const r = await getToken('service=test-registry&scope=repository:alice/app:pull,push,delete&scope=repository:bob/app:pull,delete&scope=registry:catalog:*&account=alice', basic('alice', 'wonderland'));
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'application/json');
  assert.equal(r.headers.get('cache-control'), 'no-store');
  const body = r.body as unknown as TokenResponse;
  assert.equal(body.token, body.access_token);
  assert.equal(body.expires_in, 300);
  assert.match(body.issued_at, /Z$/);
  const claims = (await verifier().verify(body.token));
  assert.equal(claims.account, 'alice');
  assert.deepEqual(claims.access, [
    { type: 'repository', name: 'alice/app', actions: ['pull', 'push', 'delete'] },
    { type: 'repository', name: 'bob/app', actions: ['pull'] }, // default: pull and push, no delete
    { type: 'registry', name: 'catalog', actions: ['*'] },
  ]);
  assert.ok(lines.some((l) => l.msg === 'token issued' && l.sub === 'alice'));
});

test('token endpoint: no credentials → an anonymous token with the anonymous grants only', async () => {
  const r = await getToken('service=test-registry&scope=repository:public/app:pull,push&scope=repository:alice/app:pull&scope=registry:catalog:*');
  assert.equal(r.status, 200);
  const v = await verifier().verify(r.body.token as string);
  assert.equal(v.account, undefined);
  assert.equal((decodeJwt(r.body.token as string) as unknown as TokenClaims).sub, '');
  assert.deepEqual(v.access, [
    { type: 'repository', name: 'public/app', actions: ['pull'] },
    { type: 'repository', name: 'alice/app', actions: [] },
    { type: 'registry', name: 'catalog', actions: [] },
  ]);
  // no scope at all (docker login): a token with no access
  const login = await getToken('service=test-registry');
  assert.equal(login.status, 200);
});

test('token endpoint: bad credentials → 401 UNAUTHORIZED after the failed-login delay, growing per address, logged', async () => {
  const before = lines.length;
  const r1 = await delayed(getToken('service=test-registry&scope=repository:alice/app:pull', basic('alice', 'wrong')), DELAY);
  assert.equal(r1.status, 401);
  assert.deepEqual((r1.body.errors as { code: string }[]).map((e) => e.code), ['UNAUTHORIZED']);
  assert.match(r1.headers.get('www-authenticate') ?? '', /^Basic realm="test-registry"$/);
  const r2 = await delayed(getToken('service=test-registry', basic('nobody', 'x')), 2 * DELAY);
  assert.equal(r2.status, 401);
  const logged = lines.slice(before).filter((l) => l.msg === 'failed login');
  assert.equal(logged.length, 2);
  assert.equal(logged[0]!.user, 'alice');
  assert.equal(logged[0]!.address, '127.0.0.1');
  assert.equal(logged[1]!.failures, 2);
  assert.equal(JSON.stringify(logged).includes('wrong'), false, 'passwords are never logged');
  // a success from the address resets the backoff
  assert.equal((await getToken('service=test-registry', basic('bob', 'builder'))).status, 200);
  await delayed(getToken('service=test-registry', basic('bob', 'nope')), DELAY);
  const last = lines.filter((l) => l.msg === 'failed login').at(-1)!;
  assert.equal(last.user, 'bob');
  assert.equal(last.failures, 1, 'after a success the count starts over');
  assert.equal(last.delayMs, DELAY);
  // a malformed header is a failed login too
  const r4 = await delayed(getToken('service=test-registry', 'Basic !!!'), 2 * DELAY);
  assert.equal(r4.status, 401);
  // the delay doubles up to its cap
  await delayed(getToken('service=test-registry', basic('bob', 'nope')), 4 * DELAY);
  await delayed(getToken('service=test-registry', basic('bob', 'nope')), 4 * DELAY);
  // failures are forgotten after a quiet while
  clock.advance(15 * 60_000 + 1);
  await delayed(getToken('service=test-registry', basic('bob', 'nope')), DELAY);
  assert.equal((await getToken('service=test-registry', basic('bob', 'builder'))).status, 200);
});

test('token endpoint: bad requests', async () => {
  assert.equal((await getToken('service=other&scope=repository:a:pull')).status, 400);
  const bad = await getToken('service=test-registry&scope=repository:a');
  assert.equal(bad.status, 400);
  assert.match(JSON.stringify(bad.body), /invalid scope/);
  assert.equal((await getToken('service=test-registry&account=bob', basic('alice', 'wonderland'))).status, 400);
  const put = await fetch(`${srv.url}/auth/token`, { method: 'PUT' });
  assert.equal(put.status, 405);
  await put.body?.cancel();
});

test('token endpoint: POST password grant (OAuth2 form)', async () => {
  const form = new URLSearchParams({ grant_type: 'password', service: 'test-registry', client_id: 'test', username: 'alice', password: 'wonderland', scope: 'repository:alice/app:pull repository:alice/app:push' });
  const res = await fetch(`${srv.url}/auth/token`, { method: 'POST', body: form });
  assert.equal(res.status, 200);
  const body = (await res.json()) as TokenResponse;
  const v = await verifier().verify(body.access_token);
  assert.deepEqual(v.access, [{ type: 'repository', name: 'alice/app', actions: ['pull', 'push'] }]);
  const refresh = await fetch(`${srv.url}/auth/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'x' }) });
  assert.equal(refresh.status, 400);
  assert.equal(((await refresh.json()) as { error: string }).error, 'unsupported_grant_type');
  const wrong = await delayed(fetch(`${srv.url}/auth/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'password', username: 'alice', password: 'x' }) }), DELAY);
  assert.equal(wrong.status, 401);
  await wrong.body?.cancel();
});
