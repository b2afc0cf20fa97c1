/**
 * Auth end to end against a real `sampan registry`: htpasswd (Basic) and token (Docker registry token
 * spec) modes, with skopeo and the Sampan engine driven by the docker CLI as clients; expired, forged
 * and wrongly scoped tokens; per-repository policy rules from --auth-config merged with
 * --anonymous-read; failed logins delayed and logged; the configuration's refusals.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { libtrustKeyId, loadSigningKey, TokenIssuer, type SigningKey } from '../../src/registry/auth/index.js';
import { TestEngine, runCmd } from '../harness.js';
import { BIN, TestRegistry, errCode, makeBusyboxLayout, must, request, type Res } from './harness.js';

const ALICE = 'wonder-land';
const BOB = 'builder-bob';
const SERVICE = 'sampan-test';

let work: string;
let layout: string;
let htpasswdFile: string;
let authConfigFile: string;
/** Token mode: --auth-config (policy rules) + --anonymous-read public/* + --auth-service. */
let tok: TestRegistry;
/** htpasswd mode, the same policy, a custom Basic realm. */
let ht: TestRegistry;

/** skopeo never reads the machine's credentials. */
const skopeoEnv = () => ({ REGISTRY_AUTH_FILE: path.join(work, 'no-such-auth.json') });
const skopeoRun = (...args: string[]) => runCmd('skopeo', args, { timeoutMs: 120_000, env: skopeoEnv() });


const skopeo = (...args: string[]) => must('skopeo', args, skopeoEnv());


const basic = (user: string, password: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
const ACCEPT = { Accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' };

/** The parameters of a WWW-Authenticate challenge, and its scheme. */
function challenge(r: Res): { scheme: string; params: Record<string, string> } {
  const h = String(r.headers['www-authenticate'] ?? '');
  const params: Record<string, string> = {};
  for (const m of h.matchAll(/(\w+)="([^"]*)"/g)) params[m[1]!] = m[2]!;
  return { scheme: h.split(' ')[0] ?? '', params };
}

interface Granted {
  token: string;
  access: { type: string; name: string; actions: string[] }[];
  sub: string;
}

/** A token from the registry's realm (as its challenge names it), with Basic credentials or none. */
async function fetchToken(reg: TestRegistry, scopes: string[], creds?: [string, string]): Promise<Granted> {
  const c = challenge(await reg.req('GET', '/v2/'));
  assert.equal(c.scheme, 'Bearer');
  const q = new URLSearchParams({ service: c.params.service! });
  for (const s of scopes) q.append('scope', s);
  const r = await request(reg.base, 'GET', `${c.params.realm}?${q}`, { headers: creds ? basic(...creds) : {} });
  assert.equal(r.status, 200, r.text());
  const body = r.json<{ token: string; access_token: string; expires_in: number }>();
  assert.equal(body.access_token, body.token);
  const claims = JSON.parse(Buffer.from(body.token.split('.')[1]!, 'base64url').toString()) as Granted;
  return { token: body.token, access: claims.access, sub: claims.sub };
}

/** Like the registry's own key, but not it: same algorithm, a key id of its own. */
function otherKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { privateKey, publicKey, alg: 'ES256', kid: libtrustKeyId(publicKey), source: 'test' };
}

let pushedDigest = '';

before(async () => {
  work = await fs.mkdtemp('/tmp/sregauth-');
  layout = await makeBusyboxLayout(work);
  htpasswdFile = path.join(work, 'htpasswd');
  // bcrypt entries made by Apache's htpasswd ($2y$)
  const entries = execFileSync('htpasswd', ['-Bbn', 'alice', ALICE]).toString().trim() + '\n' + execFileSync('htpasswd', ['-Bbn', 'bob', BOB]).toString().trim() + '\n';
  await fs.writeFile(htpasswdFile, entries);
  authConfigFile = path.join(work, 'auth.json');
  await fs.writeFile(
    authConfigFile,
    JSON.stringify({
      policy: {
        rules: [
          { user: 'alice', repos: '**', actions: ['*'] },
          { user: 'bob', repos: 'bob/**', actions: ['pull', 'push'] },
          { user: 'bob', repos: 'alice/**', actions: ['pull'] },
        ],
      },
    }),
  );
  [tok, ht] = await Promise.all([
    TestRegistry.start({ args: ['--auth', 'token', '--htpasswd', htpasswdFile, '--auth-config', authConfigFile, '--auth-service', SERVICE, '--anonymous-read', 'public/*'] }),
    TestRegistry.start({ args: ['--auth', 'htpasswd', '--htpasswd', htpasswdFile, '--auth-config', authConfigFile, '--auth-realm', 'Sampan Test', '--anonymous-read', 'public/*'] }),
  ]);
});

after(async () => {
  await Promise.all([tok?.cleanup(), ht?.cleanup()]);
  if (work) await fs.rm(work, { recursive: true, force: true });
});

describe('htpasswd mode', () => {
  it('GET /v2/ without credentials: 401 with a Basic challenge; with them: 200', async () => {
    const r = await ht.req('GET', '/v2/');
    assert.equal(r.status, 401);
    assert.equal(errCode(r), 'UNAUTHORIZED');
    assert.equal(r.headers['www-authenticate'], 'Basic realm="Sampan Test"');
    assert.equal((await ht.req('GET', '/v2/', { headers: basic('alice', ALICE) })).status, 200);
  });

  it('a wrong password: 401 UNAUTHORIZED with the Basic challenge, after a delay, logged without the password', async () => {
    const r = await ht.req('GET', '/v2/', { headers: basic('alice', 'not-her-password') });
    assert.equal(r.status, 401);
    assert.equal(errCode(r), 'UNAUTHORIZED');
    assert.match(String(r.headers['www-authenticate']), /^Basic realm="Sampan Test"$/);
    // the delay itself is proven on a fake clock (src/registry/auth/authorizer.test.ts); here: its length
    const logged = ht.log.split('\n').filter((l) => l.includes('"failed login"'));
    assert.ok(logged.some((l) => l.includes('"user":"alice"') && l.includes('"address":"127.0.0.1"') && l.includes('"delayMs":1000')), ht.log.slice(-2000));
    assert.ok(!ht.log.includes('not-her-password'));
    // an unknown user is refused the same way
    assert.equal((await ht.req('GET', '/v2/', { headers: basic('mallory', 'x') })).status, 401);
  });

  it('skopeo pushes and pulls with --dest-creds / --src-creds; digests survive', async () => {
    await skopeo('copy', '-q', '--dest-tls-verify=false', '--dest-creds', `alice:${ALICE}`, `oci:${layout}:1`, `docker://${ht.hostPort}/alice/busybox:1`);
    const d = (await skopeo('inspect', '--tls-verify=false', '--creds', `alice:${ALICE}`, '--format', '{{.Digest}}', `docker://${ht.hostPort}/alice/busybox:1`)).stdout.trim();
    const local = (await skopeo('inspect', '--format', '{{.Digest}}', `oci:${layout}:1`)).stdout.trim();
    assert.equal(d, local);
    const back = path.join(work, 'ht-back');
    await skopeo('copy', '-q', '--src-tls-verify=false', '--src-creds', `bob:${BOB}`, `docker://${ht.hostPort}/alice/busybox@${d}`, `oci:${back}:1`);
    assert.equal((await skopeo('inspect', '--format', '{{.Digest}}', `oci:${back}:1`)).stdout.trim(), d);
  });

  it('skopeo with a wrong password or none fails; raw requests get 401', async () => {
    const wrong = await skopeoRun('copy', '-q', '--dest-tls-verify=false', '--dest-creds', 'alice:nope', `oci:${layout}:1`, `docker://${ht.hostPort}/alice/busybox:2`);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /unauthorized|authentication required|invalid username or password/i);
    const none = await skopeoRun('inspect', '--tls-verify=false', '--raw', `docker://${ht.hostPort}/alice/busybox:1`);
    assert.notEqual(none.code, 0);
    const r = await ht.req('GET', '/v2/alice/busybox/manifests/1', { headers: ACCEPT });
    assert.equal(r.status, 401);
    assert.equal(r.headers['www-authenticate'], 'Basic realm="Sampan Test"');
    // the manifest is served to alice from the cache and still checked each time
    assert.equal((await ht.req('GET', '/v2/alice/busybox/manifests/1', { headers: { ...ACCEPT, ...basic('alice', ALICE) } })).status, 200);
    assert.equal((await ht.req('GET', '/v2/alice/busybox/manifests/1', { headers: ACCEPT })).status, 401);
  });

  it('the policy: bob may pull alice/* but not push there (403 DENIED); anonymous read of public/*', async () => {
    const push = await ht.req('POST', '/v2/alice/busybox/blobs/uploads/', { headers: basic('bob', BOB) });
    assert.equal(push.status, 403);
    assert.equal(errCode(push), 'DENIED');
    assert.equal((await ht.req('POST', '/v2/bob/app/blobs/uploads/', { headers: basic('bob', BOB) })).status, 202);
    await skopeo('copy', '-q', '--dest-tls-verify=false', '--dest-creds', `alice:${ALICE}`, `oci:${layout}:1`, `docker://${ht.hostPort}/public/busybox:1`);
    assert.equal((await ht.req('GET', '/v2/public/busybox/manifests/1', { headers: ACCEPT })).status, 200);
    assert.equal((await ht.req('GET', '/v2/public/busybox/tags/list')).status, 200);
    const anonPush = await ht.req('POST', '/v2/public/busybox/blobs/uploads/');
    assert.equal(anonPush.status, 401);
    assert.equal(errCode(anonPush), 'UNAUTHORIZED');
    // the catalog is for accounts only
    assert.equal((await ht.req('GET', '/v2/_catalog')).status, 401);
    assert.equal((await ht.req('GET', '/v2/_catalog', { headers: basic('bob', BOB) })).status, 200);
  });
});

describe('token mode', () => {
  it('GET /v2/ without a token: 401 with Bearer realm and service', async () => {
    const r = await tok.req('GET', '/v2/');
    assert.equal(r.status, 401);
    assert.equal(errCode(r), 'UNAUTHORIZED');
    assert.equal(r.headers['www-authenticate'], `Bearer realm="http://${tok.hostPort}/auth/token",service="${SERVICE}"`);
    // Basic credentials are not a token
    assert.equal((await tok.req('GET', '/v2/', { headers: basic('alice', ALICE) })).status, 401);
  });

  it('a token from the realm with Basic credentials opens the registry; a request names its scope in the challenge', async () => {
    const t = await fetchToken(tok, ['repository:alice/app:pull,push'], ['alice', ALICE]);
    assert.equal(t.sub, 'alice');
    assert.deepEqual(t.access, [{ type: 'repository', name: 'alice/app', actions: ['pull', 'push'] }]);
    assert.equal((await tok.req('GET', '/v2/', { headers: bearer(t.token) })).status, 200);
    const up = await tok.req('POST', '/v2/alice/app/blobs/uploads/', { headers: bearer(t.token) });
    assert.equal(up.status, 202, up.text());
    const r = await tok.req('GET', '/v2/alice/other/tags/list');
    assert.equal(r.status, 401);
    const c = challenge(r);
    assert.equal(c.params.scope, 'repository:alice/other:pull');
    assert.equal(c.params.service, SERVICE);
  });

  it('grants the intersection of what was asked and what the policy allows', async () => {
    const t = await fetchToken(tok, ['repository:alice/app:pull,push,delete', 'repository:bob/x:pull,push'], ['bob', BOB]);
    assert.deepEqual(
      t.access.map((a) => [a.name, [...a.actions].sort()]),
      [
        ['alice/app', ['pull']],
        ['bob/x', ['pull', 'push']],
      ],
    );
    const anon = await fetchToken(tok, ['repository:public/busybox:pull,push', 'repository:alice/app:pull']);
    assert.equal(anon.sub, '');
    assert.deepEqual(
      anon.access.map((a) => [a.name, a.actions]),
      [
        ['public/busybox', ['pull']],
        ['alice/app', []],
      ],
    );
  });

  it('wrong credentials at the realm: 401 after a delay, logged', async () => {
    const c = challenge(await tok.req('GET', '/v2/'));
    const r = await request(tok.base, 'GET', `${c.params.realm}?service=${SERVICE}&scope=repository:alice/app:pull`, { headers: basic('alice', 'guess') });
    assert.equal(r.status, 401);
    assert.equal(errCode(r), 'UNAUTHORIZED');
    // the delay itself is proven on a fake clock (src/registry/auth/token.test.ts); here: its length
    assert.ok(tok.log.split('\n').some((l) => l.includes('"failed login"') && l.includes('"user":"alice"') && l.includes('"endpoint":"token"') && l.includes('"delayMs":1000')), tok.log.slice(-2000));
    assert.ok(!tok.log.includes('guess'));
  });

  it('skopeo pushes and pulls with credentials (token dance), and fails without', async () => {
    await skopeo('copy', '-q', '--dest-tls-verify=false', '--dest-creds', `alice:${ALICE}`, `oci:${layout}:1`, `docker://${tok.hostPort}/alice/busybox:1`);
    pushedDigest = (await skopeo('inspect', '--tls-verify=false', '--creds', `alice:${ALICE}`, '--format', '{{.Digest}}', `docker://${tok.hostPort}/alice/busybox:1`)).stdout.trim();
    assert.equal(pushedDigest, (await skopeo('inspect', '--format', '{{.Digest}}', `oci:${layout}:1`)).stdout.trim());
    const back = path.join(work, 'tok-back');
    await skopeo('copy', '-q', '--src-tls-verify=false', '--src-creds', `bob:${BOB}`, `docker://${tok.hostPort}/alice/busybox:1`, `oci:${back}:1`);
    assert.equal((await skopeo('inspect', '--format', '{{.Digest}}', `oci:${back}:1`)).stdout.trim(), pushedDigest);
    // bob may not push to alice/*: the token lacks push, skopeo gets refused
    const bobPush = await skopeoRun('copy', '-q', '--dest-tls-verify=false', '--dest-creds', `bob:${BOB}`, `oci:${layout}:1`, `docker://${tok.hostPort}/alice/busybox:bob`);
    assert.notEqual(bobPush.code, 0);
    const anon = await skopeoRun('inspect', '--tls-verify=false', '--raw', `docker://${tok.hostPort}/alice/busybox:1`);
    assert.notEqual(anon.code, 0);
    assert.match(anon.stderr, /unauthorized|authentication required|denied/i);
  });

  it('an expired token (signed with the registry\'s own key) is refused with invalid_token', async () => {
    const key = await loadSigningKey(path.join(tok.root, 'auth', 'token-key.pem'));
    const issuer = new TokenIssuer({ key, issuer: 'sampan-token-service', expiresInSeconds: 300 });
    const scope = [{ type: 'repository', name: 'alice/busybox', actions: ['pull' as const] }];
    const manifest = '/v2/alice/busybox/manifests/1';
    // the same issuer, now: accepted (so what follows is refused for its expiry only)
    const fresh = await issuer.issue('alice', SERVICE, scope);
    assert.equal((await tok.req('GET', manifest, { headers: { ...ACCEPT, ...bearer(fresh.token) } })).status, 200);
    const old = await issuer.issue('alice', SERVICE, scope, Date.now() - 3600_000);
    assert.ok(old.claims.exp < Date.now() / 1000 - 60);
    const r = await tok.req('GET', manifest, { headers: { ...ACCEPT, ...bearer(old.token) } });
    assert.equal(r.status, 401);
    assert.equal(errCode(r), 'UNAUTHORIZED');
    assert.equal(challenge(r).params.error, 'invalid_token');
    assert.match(r.json<{ errors: { message: string }[] }>().errors[0]!.message, /expired/);
    // and a token for another audience (service) is not ours either
    const elsewhere = await issuer.issue('alice', 'another-registry', scope);
    assert.equal((await tok.req('GET', manifest, { headers: { ...ACCEPT, ...bearer(elsewhere.token) } })).status, 401);
  });

  it('forged tokens (another key, a borrowed key id, alg none) are refused with invalid_token', async () => {
    const scope = [{ type: 'repository', name: 'alice/busybox', actions: ['pull' as const, 'push' as const] }];
    const manifest = '/v2/alice/busybox/manifests/1';
    const forger = otherKey();
    const forged = await new TokenIssuer({ key: forger, issuer: 'sampan-token-service' }).issue('alice', SERVICE, scope);
    const r1 = await tok.req('GET', manifest, { headers: { ...ACCEPT, ...bearer(forged.token) } });
    assert.equal(r1.status, 401);
    assert.equal(challenge(r1).params.error, 'invalid_token');
    // the registry's key id in the header, signed by the forger's key
    const real = await loadSigningKey(path.join(tok.root, 'auth', 'token-key.pem'));
    const borrowed = await new TokenIssuer({ key: { ...forger, kid: real.kid }, issuer: 'sampan-token-service' }).issue('alice', SERVICE, scope);
    const r2 = await tok.req('GET', manifest, { headers: { ...ACCEPT, ...bearer(borrowed.token) } });
    assert.equal(r2.status, 401);
    assert.equal(challenge(r2).params.error, 'invalid_token');
    // unsigned
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(forged.claims)}.`;
    const r3 = await tok.req('GET', manifest, { headers: { ...ACCEPT, Authorization: `Bearer ${unsigned}` } });
    assert.equal(r3.status, 401);
    // the registry logged why
    assert.ok(tok.log.includes('"invalid token"'));
  });

  it('a token for repository A used on repository B: 401 insufficient_scope; pull-only used to push: the same', async () => {
    const t = await fetchToken(tok, ['repository:alice/busybox:pull'], ['alice', ALICE]);
    assert.equal((await tok.req('GET', '/v2/alice/busybox/manifests/1', { headers: { ...ACCEPT, ...bearer(t.token) } })).status, 200);
    const r = await tok.req('GET', '/v2/alice/secret/manifests/1', { headers: { ...ACCEPT, ...bearer(t.token) } });
    assert.equal(r.status, 401);
    assert.equal(errCode(r), 'UNAUTHORIZED');
    const c = challenge(r);
    assert.equal(c.params.error, 'insufficient_scope');
    assert.equal(c.params.scope, 'repository:alice/secret:pull');
    const push = await tok.req('POST', '/v2/alice/busybox/blobs/uploads/', { headers: bearer(t.token) });
    assert.equal(push.status, 401);
    assert.equal(challenge(push).params.error, 'insufficient_scope');
    assert.equal(challenge(push).params.scope, 'repository:alice/busybox:pull,push');
  });

  it('anonymous read of public/*: pulls without credentials work, pushes are refused', async () => {
    await skopeo('copy', '-q', '--dest-tls-verify=false', '--dest-creds', `alice:${ALICE}`, `oci:${layout}:1`, `docker://${tok.hostPort}/public/busybox:1`);
    // raw, no token at all
    const m = await tok.req('GET', '/v2/public/busybox/manifests/1', { headers: ACCEPT });
    assert.equal(m.status, 200);
    assert.equal(m.headers['docker-content-digest'], pushedDigest);
    // skopeo without credentials: an anonymous token
    const back = path.join(work, 'anon-back');
    await skopeo('copy', '-q', '--src-tls-verify=false', `docker://${tok.hostPort}/public/busybox:1`, `oci:${back}:1`);
    assert.equal((await skopeo('inspect', '--format', '{{.Digest}}', `oci:${back}:1`)).stdout.trim(), pushedDigest);
    const push = await skopeoRun('copy', '-q', '--dest-tls-verify=false', `oci:${layout}:1`, `docker://${tok.hostPort}/public/busybox:anon`);
    assert.notEqual(push.code, 0);
    const raw = await tok.req('POST', '/v2/public/busybox/blobs/uploads/');
    assert.equal(raw.status, 401);
    assert.equal(challenge(raw).params.scope, 'repository:public/busybox:pull,push');
    assert.equal((await tok.req('GET', '/v2/public/busybox/manifests/anon', { headers: ACCEPT })).status, 404);
    // public/* is one component: public/a/b is not covered
    assert.equal((await tok.req('GET', '/v2/public/a/b/manifests/1', { headers: ACCEPT })).status, 401);
  });
});

describe('the Sampan engine (docker CLI) against sampan registry with auth', () => {
  let e: TestEngine;
  let busyboxId: string;
  let cfg: { DOCKER_CONFIG: string };

  before(async () => {
    e = await TestEngine.start();
    cfg = { DOCKER_CONFIG: path.join(work, 'docker-config') };
    await fs.mkdir(cfg.DOCKER_CONFIG, { recursive: true });
    busyboxId = (await e.docker(['image', 'inspect', '-f', '{{.Id}}', 'busybox'])).stdout.trim();
    assert.match(busyboxId, /^sha256:/);
  });
  after(async () => {
    await e?.cleanup();
  });

  for (const mode of ['token', 'htpasswd'] as const) {
    it(`${mode} mode: docker login, push, rmi, pull; a wrong password is refused`, async () => {
      const reg = mode === 'token' ? tok : ht;
      const ref = `${reg.hostPort}/alice/engine:1`;
      const wrong = await e.docker(['login', reg.hostPort, '-u', 'alice', '-p', 'not-it'], { env: cfg, timeoutMs: 60_000 });
      assert.notEqual(wrong.code, 0, wrong.stdout);
      assert.match(wrong.stderr, /unauthorized|incorrect username or password|401/i);
      const ok = await e.docker(['login', reg.hostPort, '-u', 'alice', '-p', ALICE], { env: cfg, timeoutMs: 60_000 });
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /Login Succeeded/);
      assert.equal((await e.docker(['tag', 'busybox', ref])).code, 0);
      const pushed = await e.docker(['push', ref], { env: cfg, timeoutMs: 120_000 });
      assert.equal(pushed.code, 0, pushed.stderr + pushed.stdout);
      const m = /1: digest: (sha256:[a-f0-9]{64})/.exec(pushed.stdout);
      assert.ok(m, pushed.stdout);
      // the registry holds it (checked with alice's own credentials)
      const headers = mode === 'token' ? bearer((await fetchToken(reg, ['repository:alice/engine:pull'], ['alice', ALICE])).token) : basic('alice', ALICE);
      const got = await reg.req('HEAD', '/v2/alice/engine/manifests/1', { headers: { ...ACCEPT, ...headers } });
      assert.equal(got.status, 200);
      assert.equal(got.headers['docker-content-digest'], m[1]);
      assert.equal((await e.docker(['rmi', ref])).code, 0);
      const pulled = await e.docker(['pull', ref], { env: cfg, timeoutMs: 120_000 });
      assert.equal(pulled.code, 0, pulled.stderr + pulled.stdout);
      assert.equal((await e.docker(['image', 'inspect', '-f', '{{.Id}}', ref])).stdout.trim(), busyboxId);
      // logged out: the private repository is closed again, public/* stays open
      assert.equal((await e.docker(['logout', reg.hostPort], { env: cfg })).code, 0);
      assert.equal((await e.docker(['rmi', ref])).code, 0);
      const anon = await e.docker(['pull', ref], { env: cfg, timeoutMs: 60_000 });
      assert.notEqual(anon.code, 0);
      assert.match(anon.stderr, /pull access denied|unauthorized|authentication required/i);
      const pub = await e.docker(['pull', `${reg.hostPort}/public/busybox:1`], { env: cfg, timeoutMs: 120_000 });
      assert.equal(pub.code, 0, pub.stderr + pub.stdout);
    });
  }
});

describe('configuration', () => {
  it('refuses auth settings that would do nothing, and a mode without its file', async () => {
    const root = path.join(work, 'cfg-root');
    const run = (args: string[], env: NodeJS.ProcessEnv = {}) => runCmd(BIN, ['registry', '--root', root, '--addr', '127.0.0.1:0', ...args], { timeoutMs: 20_000, env });
    // --htpasswd alone means htpasswd auth (test/engine/ops.test.ts); contradicting it is still refused
    const contradicted = await run(['--htpasswd', htpasswdFile, '--auth', 'none']);
    assert.notEqual(contradicted.code, 0);
    const anonOnly = await run(['--anonymous-read', 'public/*']);
    assert.notEqual(anonOnly.code, 0);
    assert.match(anonOnly.stderr, /auth\.mode is none/);
    const noFile = await run(['--auth', 'htpasswd']);
    assert.notEqual(noFile.code, 0);
    assert.match(noFile.stderr, /auth\.htpasswd/);
    const badRealm = await run(['--auth', 'token', '--auth-realm', 'not a url']);
    assert.notEqual(badRealm.code, 0);
    assert.match(badRealm.stderr, /auth\.realm/);
    const missing = await run(['--auth', 'htpasswd', '--htpasswd', path.join(work, 'nope')]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /nope/);
  });

  it('SAMPAN_REGISTRY_AUTH (JSON) sets the section; flags override its keys', async () => {
    const reg = await TestRegistry.start({ env: { SAMPAN_REGISTRY_AUTH: JSON.stringify({ mode: 'htpasswd', htpasswd: htpasswdFile, realm: 'From Env' }) } });
    try {
      assert.equal((await reg.req('GET', '/v2/')).headers['www-authenticate'], 'Basic realm="From Env"');
      assert.equal((await reg.req('GET', '/v2/', { headers: basic('bob', BOB) })).status, 200);
    } finally {
      await reg.cleanup();
    }
    const over = await TestRegistry.start({ args: ['--auth', 'token'], env: { SAMPAN_REGISTRY_AUTH: JSON.stringify({ mode: 'htpasswd', htpasswd: htpasswdFile }) } });
    try {
      assert.match(String((await over.req('GET', '/v2/')).headers['www-authenticate']), /^Bearer realm=.*service="sampan-registry"$/);
    } finally {
      await over.cleanup();
    }
  });
});
