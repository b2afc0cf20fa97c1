/**
 * Mirror mode (`sampan registry --proxy-remote URL`): a pull-through cache of an upstream registry.
 * skopeo pulls an image through the mirror with the upstream's digests; the upstream is stopped and
 * the mirror still serves it (tags stale, everything else local); pushes and deletes are refused with
 * 405 UNSUPPORTED; a tag re-pointed upstream shows through the mirror after the TTL; upstreams with
 * htpasswd (Distribution, Basic) and token auth (Bearer, Docker token spec) with the mirror's
 * credentials; an https upstream's certificate verified. Against a scripted slow upstream: a blob reaches the client while it is being fetched,
 * concurrent requests share one upstream fetch, a HEAD fetches nothing, and bad upstream bytes are
 * neither stored nor handed out whole. Finally the Sampan engine pulls through the mirror as its
 * docker.io mirror.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { TestEngine, runCmd, sleep, until } from '../harness.js';
import { TestRegistry, errCode, freePort, makeBusyboxLayout, must, sha256, verifyBlobStore } from './harness.js';

const TTL_MS = 1500;

let work: string;
let layout: string;
/** The upstream: a plain `sampan registry`. */
let up: TestRegistry;
/** The mirror of `up`, tags re-checked after TTL_MS. */
let mirror: TestRegistry;
let pushed = '';

/** skopeo never reads the machine's credentials. */
const skopeoEnv = () => ({ REGISTRY_AUTH_FILE: path.join(work, 'no-such-auth.json') });


const skopeo = (...args: string[]) => must('skopeo', args, skopeoEnv());
const skopeoTry = (...args: string[]) => runCmd('skopeo', args, { timeoutMs: 120_000, env: skopeoEnv() });
const inspectDigest = async (ref: string) => (await skopeo('inspect', ...(ref.startsWith('docker://') ? ['--tls-verify=false'] : []), '--format', '{{.Digest}}', ref)).stdout.trim();


/** Blob GETs the upstream answered (its /metrics). */
async function upstreamBlobGets(reg: TestRegistry): Promise<number> {
  const text = (await reg.req('GET', '/metrics')).text();
  let n = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('sampan_registry_http_requests_total{') && line.includes('route="blob"') && line.includes('method="GET"')) n += Number(line.split(' ').pop());
  }
  return n;
}

before(async () => {
  up = await TestRegistry.start();
  work = up.dir;
  layout = await makeBusyboxLayout(work);
  mirror = await TestRegistry.start({ args: ['--proxy-remote', up.base, '--proxy-ttl', `${TTL_MS}ms`] });
  await skopeo('copy', '-q', '--dest-tls-verify=false', `oci:${layout}:1`, `docker://${up.hostPort}/mirror/busybox:1`);
  pushed = await inspectDigest(`docker://${up.hostPort}/mirror/busybox:1`);
});
after(async () => {
  await mirror?.cleanup();
  await up?.cleanup();
});

describe('mirror of a sampan registry', () => {
  it('serves an image pulled through it with the upstream\'s digests, fetching each blob once', async () => {
    assert.match(mirror.log, /mirror mode: read-only pull-through cache/);
    const before = await upstreamBlobGets(up);
    const byTag = path.join(work, 'via-mirror-tag');
    await skopeo('copy', '-q', '--src-tls-verify=false', `docker://${mirror.hostPort}/mirror/busybox:1`, `oci:${byTag}:1`);
    assert.equal(await inspectDigest(`oci:${byTag}:1`), pushed);
    assert.equal(await inspectDigest(`docker://${mirror.hostPort}/mirror/busybox:1`), pushed);
    const fetched = (await upstreamBlobGets(up)) - before;
    assert.ok(fetched >= 2, `expected the config and layer to come from the upstream, saw ${fetched} blob GETs`);
    // the same again, by digest: all local now
    const byDigest = path.join(work, 'via-mirror-digest');
    await skopeo('copy', '-q', '--src-tls-verify=false', `docker://${mirror.hostPort}/mirror/busybox@${pushed}`, `oci:${byDigest}:1`);
    assert.equal(await inspectDigest(`oci:${byDigest}:1`), pushed);
    assert.equal((await upstreamBlobGets(up)) - before, fetched, 'the second pull fetched blobs from the upstream again');
    // its /metrics count the first pull's blobs as misses and the second's as hits (the dashboard's hit rate)
    const page = (await mirror.req('GET', '/metrics')).text();
    const metric = (n: string) => Number(/^(\S+) (\S+)$/m.exec(page.split('\n').filter((l) => l.startsWith(`${n} `)).join('\n'))?.[2]);
    assert.equal(metric('sampan_registry_mirror_misses_total'), fetched);
    assert.ok(metric('sampan_registry_mirror_hits_total') >= 2, page);
    assert.doesNotMatch((await up.req('GET', '/metrics')).text(), /sampan_registry_mirror_/, 'a registry that is no mirror has no hit rate');
    // the mirror's store holds verified blobs: manifest, config, layer
    assert.ok((await verifyBlobStore(mirror.root)) >= 3);
    const m = await mirror.req('GET', `/v2/mirror/busybox/manifests/${pushed}`);
    assert.equal(m.status, 200);
    assert.equal(sha256(m.body), pushed);
    assert.equal(m.headers['docker-content-digest'], pushed);
  });

  it('keeps serving it with the upstream stopped (tags stale after the TTL, the rest local)', async () => {
    assert.equal(await up.terminate(), 0);
    try {
      await sleep(TTL_MS + 200); // the tag's TTL has passed: the mirror tries the upstream, fails, serves its copy
      const offline = path.join(work, 'offline');
      await skopeo('copy', '-q', '--src-tls-verify=false', `docker://${mirror.hostPort}/mirror/busybox:1`, `oci:${offline}:1`);
      assert.equal(await inspectDigest(`oci:${offline}:1`), pushed);
      await skopeo('copy', '-q', '--src-tls-verify=false', `docker://${mirror.hostPort}/mirror/busybox@${pushed}`, `oci:${offline}:2`);
      assert.match(mirror.log, /upstream manifest lookup failed; serving the local copy/);
      // the tag list falls back to the local tags
      const tags = await mirror.req('GET', '/v2/mirror/busybox/tags/list');
      assert.equal(tags.status, 200);
      assert.deepEqual(tags.json().tags, ['1']);
      // something never pulled: the upstream's absence is reported, not hidden behind a 404
      const missing = await mirror.req('GET', '/v2/mirror/busybox/manifests/never-pulled');
      assert.equal(missing.status, 503);
      assert.equal(errCode(missing), 'UNAVAILABLE');
      assert.match(missing.text(), /upstream http:\/\/127\.0\.0\.1:\d+ unavailable/);
    } finally {
      await up.launch();
    }
  });

  it('refuses pushes, uploads and deletes with 405 UNSUPPORTED and says why', async () => {
    const push = await skopeoTry('copy', '-q', '--dest-tls-verify=false', `oci:${layout}:1`, `docker://${mirror.hostPort}/mirror/busybox:pushed`);
    assert.notEqual(push.code, 0);
    assert.match(push.stderr, /read-only mirror/);
    const checks: Array<[string, string, object?]> = [
      ['POST', '/v2/mirror/busybox/blobs/uploads/'],
      ['POST', `/v2/mirror/busybox/blobs/uploads/?digest=${sha256('x')}`, { body: 'x' }],
      ['POST', `/v2/mirror/other/blobs/uploads/?mount=${pushed}&from=mirror/busybox`],
      ['PUT', '/v2/mirror/busybox/manifests/2', { body: '{}', headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } }],
      ['DELETE', '/v2/mirror/busybox/manifests/1'],
      ['DELETE', `/v2/mirror/busybox/manifests/${pushed}`],
      ['DELETE', `/v2/mirror/busybox/blobs/${pushed}`],
    ];
    for (const [method, p, opts] of checks) {
      const r = await mirror.req(method, p, opts);
      assert.equal(r.status, 405, `${method} ${p}: ${r.status} ${r.text()}`);
      assert.equal(errCode(r), 'UNSUPPORTED');
      assert.match(r.text(), /read-only mirror/);
    }
    // and nothing changed
    assert.equal((await mirror.req('GET', '/v2/mirror/busybox/manifests/1')).status, 200);
  });

  it('shows a tag re-pointed upstream after the TTL; tag lists pass through', async () => {
    const a = await up.pushImage('mirror/moving', 'latest', 'a');
    const first = await mirror.req('GET', '/v2/mirror/moving/manifests/latest');
    assert.equal(first.headers['docker-content-digest'], a.digest);
    const b = await up.pushImage('mirror/moving', 'latest', 'b');
    assert.notEqual(a.digest, b.digest);
    // that the tag is not re-checked before its TTL is shown on a fake clock (src/registry/registry.test.ts)
    await sleep(TTL_MS + 100);
    const later = await mirror.req('GET', '/v2/mirror/moving/manifests/latest');
    assert.equal(later.status, 200);
    assert.equal(later.headers['docker-content-digest'], b.digest);
    assert.equal(sha256(later.body), b.digest);
    // the old manifest stays available by digest (immutable), the new one's blobs come through
    assert.equal((await mirror.req('GET', `/v2/mirror/moving/manifests/${a.digest}`)).status, 200);
    const layer = await mirror.req('GET', `/v2/mirror/moving/blobs/${b.layer}`);
    assert.equal(layer.status, 200);
    assert.deepEqual(layer.body, b.layerBytes);
    // tags the mirror never served are listed: the list is the upstream's
    await up.pushImage('mirror/moving', 'other', 'c');
    const tags = await mirror.req('GET', '/v2/mirror/moving/tags/list');
    assert.deepEqual(tags.json().tags, ['latest', 'other']);
    const page = await mirror.req('GET', '/v2/mirror/moving/tags/list?n=1');
    assert.deepEqual(page.json().tags, ['latest']);
    assert.match(String(page.headers.link), /rel="next"/);
  });

  it('links a blob it already holds into another repository only when the upstream has it there', async () => {
    // the busybox layer is in the mirror's store (for mirror/busybox); the upstream copies it to another repository
    await skopeo('copy', '-q', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${up.hostPort}/mirror/busybox:1`, `docker://${up.hostPort}/mirror/copy:1`);
    const before = await upstreamBlobGets(up);
    const out = path.join(work, 'copy');
    await skopeo('copy', '-q', '--src-tls-verify=false', `docker://${mirror.hostPort}/mirror/copy:1`, `oci:${out}:1`);
    assert.equal(await inspectDigest(`oci:${out}:1`), pushed);
    assert.equal(await upstreamBlobGets(up), before, 'blobs the mirror holds were fetched again');
    // a repository the upstream does not have it in: unknown, even though the bytes are in the store
    const manifest = JSON.parse((await mirror.req('GET', `/v2/mirror/busybox/manifests/${pushed}`)).text()) as { layers: { digest: string }[] };
    const stranger = await mirror.req('GET', `/v2/mirror/stranger/blobs/${manifest.layers[0]!.digest}`);
    assert.equal(stranger.status, 404);
    assert.equal(errCode(stranger), 'BLOB_UNKNOWN');
  });
});

// ---------------------------------------------------------------- a scripted upstream

interface FakeBlob {
  bytes: Buffer;
  /** Bytes sent before waiting for `gate`. */
  firstPart?: number;
  gate?: Promise<void>;
  /** Send other bytes than the digest's (same length). */
  corrupt?: boolean;
}

/** A minimal Distribution upstream (no auth): blobs only, each GET counted, bodies sent as scripted. */
class FakeUpstream {
  readonly blobs = new Map<string, FakeBlob>();
  readonly gets = new Map<string, number>();
  readonly heads = new Map<string, number>();
  private server!: http.Server;
  port = 0;

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    if (url === '/v2/' || url === '/v2') {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Docker-Distribution-API-Version': 'registry/2.0' }).end('{}');
      return;
    }
    const m = /^\/v2\/(.+)\/blobs\/(sha256:[a-f0-9]{64})$/.exec(url);
    const b = m ? this.blobs.get(m[2]!) : undefined;
    if (!m || !b) {
      res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}');
      return;
    }
    const d = m[2]!;
    const counter = req.method === 'HEAD' ? this.heads : this.gets;
    counter.set(d, (counter.get(d) ?? 0) + 1);
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': b.bytes.length, 'Docker-Content-Digest': d });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const body = b.corrupt ? Buffer.from(b.bytes).fill(0x41, 0, 16) : b.bytes;
    const first = b.firstPart ?? body.length;
    res.write(body.subarray(0, first));
    if (b.gate) await b.gate;
    res.end(body.subarray(first));
  }

  add(bytes: Buffer, opts: Omit<FakeBlob, 'bytes'> = {}): string {
    const d = sha256(bytes);
    this.blobs.set(d, { bytes, ...opts });
    return d;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** A GET whose progress can be watched while the body arrives. */
function watchGet(base: string, p: string): { received: () => number; done: Promise<{ status: number; body: Buffer; complete: boolean }> } {
  let received = 0;
  const chunks: Buffer[] = [];
  const done = new Promise<{ status: number; body: Buffer; complete: boolean }>((resolve, reject) => {
    const u = new URL(p, base);
    const req = http.get({ host: u.hostname, port: u.port, path: u.pathname, agent: false }, (res) => {
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        received += c.length;
      });
      const finish = (complete: boolean) => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), complete });
      res.on('end', () => finish(res.complete));
      res.on('aborted', () => finish(false));
      res.on('error', () => finish(false));
    });
    req.on('error', reject);
  });
  return { received: () => received, done };
}

describe('mirror blob fetches (scripted upstream)', () => {
  let fake: FakeUpstream;
  let m: TestRegistry;

  before(async () => {
    fake = new FakeUpstream();
    await fake.start();
    m = await TestRegistry.start({ args: ['--proxy-remote', `http://127.0.0.1:${fake.port}`] });
  });
  after(async () => {
    await m?.cleanup();
    await fake?.stop();
  });

  it('streams a blob to the client while fetching it; concurrent requests share one upstream fetch', async () => {
    const size = 8 << 20;
    const half = size / 2;
    const bytes = randomBytes(size);
    let release!: () => void;
    const d = fake.add(bytes, { firstPart: half, gate: new Promise<void>((r) => (release = r)) });
    const a = watchGet(m.base, `/v2/big/blob/blobs/${d}`);
    // the first half reaches the client while the upstream still holds back the rest
    await until(async () => a.received() >= half, 15_000, 20);
    // a second client joins mid-fetch (from the start of the blob), a HEAD meanwhile
    const b = watchGet(m.base, `/v2/big/blob/blobs/${d}`);
    await until(async () => b.received() >= half, 15_000, 20);
    const head = await m.req('HEAD', `/v2/big/blob/blobs/${d}`);
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(size));
    assert.ok(a.received() < size && b.received() < size, 'the whole blob was handed out before the upstream sent it');
    release();
    const [ra, rb] = await Promise.all([a.done, b.done]);
    for (const r of [ra, rb]) {
      assert.equal(r.status, 200);
      assert.ok(r.complete);
      assert.equal(sha256(r.body), d);
    }
    assert.equal(fake.gets.get(d), 1, 'the upstream was asked for the blob more than once');
    // later pulls are local: the upstream is not asked again, not even a HEAD
    const headsBefore = fake.heads.get(d) ?? 0;
    const again = await m.req('GET', `/v2/big/blob/blobs/${d}`);
    assert.equal(sha256(again.body), d);
    assert.equal(fake.gets.get(d), 1);
    assert.equal(fake.heads.get(d) ?? 0, headsBefore);
    // ranges are served from the store
    const range = await m.req('GET', `/v2/big/blob/blobs/${d}`, { headers: { Range: 'bytes=10-19' } });
    assert.equal(range.status, 206);
    assert.deepEqual(range.body, bytes.subarray(10, 20));
  });

  it('a HEAD fetches nothing; many concurrent first GETs make one upstream fetch', async () => {
    const bytes = randomBytes(3 << 20);
    const d = fake.add(bytes);
    const head = await m.req('HEAD', `/v2/small/blob/blobs/${d}`);
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(bytes.length));
    await sleep(100);
    assert.equal(fake.gets.get(d) ?? 0, 0, 'a HEAD fetched the blob');
    const all = await Promise.all(Array.from({ length: 8 }, () => m.req('GET', `/v2/small/blob/blobs/${d}`)));
    for (const r of all) assert.equal(sha256(r.body), d);
    assert.equal(fake.gets.get(d), 1);
    const unknown = await m.req('GET', `/v2/small/blob/blobs/${sha256('nowhere')}`);
    assert.equal(unknown.status, 404);
    assert.equal(errCode(unknown), 'BLOB_UNKNOWN');
  });

  it('never stores or hands out whole a blob whose upstream bytes do not match its digest', async () => {
    const bytes = randomBytes(1 << 20);
    const d = fake.add(bytes, { corrupt: true });
    for (let i = 1; i <= 2; i++) {
      const r = await watchGet(m.base, `/v2/bad/blob/blobs/${d}`).done;
      assert.equal(r.status, 200);
      assert.ok(!r.complete && r.body.length < bytes.length, 'a wrong blob was handed out whole');
      await until(async () => (m.log.match(/blob fetch from the upstream failed/g) ?? []).length >= i, 5_000, 20);
      assert.equal(fake.gets.get(d), i, 'a failed fetch was not retried by the next request');
    }
    assert.match(m.log, /hashes to/);
    // the store never holds it, and everything it holds hashes to its name
    await assert.rejects(fs.stat(path.join(m.root, 'blobs', 'sha256', d.slice(7, 9), d.slice(7), 'data')));
    await verifyBlobStore(m.root);
    // with good bytes upstream, the next request fetches and serves it
    fake.blobs.get(d)!.corrupt = false;
    const ok = await m.req('GET', `/v2/bad/blob/blobs/${d}`);
    assert.equal(sha256(ok.body), d);
  });
});

// ---------------------------------------------------------------- authenticated upstreams

describe('mirror of an upstream with auth', () => {
  it('Distribution with htpasswd (Basic): works with the mirror\'s credentials, denied without', async () => {
    const dir = path.join(work, 'dist');
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, 'htpasswd'), execFileSync('htpasswd', ['-Bbn', 'mirror', 's3cret']));
    const port = await freePort();
    await fs.writeFile(
      path.join(dir, 'config.yml'),
      `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\nhttp:\n  addr: 127.0.0.1:${port}\nauth:\n  htpasswd:\n    realm: mirror-test\n    path: ${dir}/htpasswd\n`,
    );
    const dist: ChildProcess = spawn('docker-registry', ['serve', path.join(dir, 'config.yml')], { stdio: 'ignore' });
    let withCreds: TestRegistry | undefined;
    let without: TestRegistry | undefined;
    try {
      await until(() => fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.status === 401, () => false), 15_000);
      await skopeo('copy', '-q', '--dest-tls-verify=false', '--dest-creds', 'mirror:s3cret', `oci:${layout}:1`, `docker://127.0.0.1:${port}/secure/busybox:1`);
      const d = (await skopeo('inspect', '--tls-verify=false', '--creds', 'mirror:s3cret', '--format', '{{.Digest}}', `docker://127.0.0.1:${port}/secure/busybox:1`)).stdout.trim();
      // the password from the environment, the rest from flags
      withCreds = await TestRegistry.start({ args: ['--proxy-remote', `http://127.0.0.1:${port}`, '--proxy-username', 'mirror'], env: { SAMPAN_REGISTRY_PROXY_PASSWORD: 's3cret' } });
      const out = path.join(work, 'from-dist');
      await skopeo('copy', '-q', '--src-tls-verify=false', `docker://${withCreds.hostPort}/secure/busybox:1`, `oci:${out}:1`);
      assert.equal(await inspectDigest(`oci:${out}:1`), d);
      assert.equal(d, pushed); // the same image as everywhere else
      without = await TestRegistry.start({ args: ['--proxy-remote', `http://127.0.0.1:${port}`] });
      const denied = await without.req('GET', '/v2/secure/busybox/manifests/1');
      assert.equal(denied.status, 403);
      assert.equal(errCode(denied), 'DENIED');
      assert.match(denied.text(), /proxy credentials/);
    } finally {
      await withCreds?.cleanup();
      await without?.cleanup();
      dist.kill('SIGTERM');
    }
  });

  it('sampan registry in token mode (Bearer, Docker token spec)', async () => {
    const htpasswd = path.join(work, 'tok-htpasswd');
    await fs.writeFile(htpasswd, execFileSync('htpasswd', ['-Bbn', 'puller', 'pa55word']));
    const tok = await TestRegistry.start({ args: ['--auth', 'token', '--htpasswd', htpasswd] });
    let mir: TestRegistry | undefined;
    try {
      const challenge = await tok.req('GET', '/v2/');
      assert.equal(challenge.status, 401);
      assert.match(String(challenge.headers['www-authenticate']), /^Bearer realm=/);
      await skopeo('copy', '-q', '--dest-tls-verify=false', '--dest-creds', 'puller:pa55word', `oci:${layout}:1`, `docker://${tok.hostPort}/team/busybox:1`);
      mir = await TestRegistry.start({ args: ['--proxy-remote', tok.base, '--proxy-username', 'puller', '--proxy-password', 'pa55word'] });
      const out = path.join(work, 'from-token');
      await skopeo('copy', '-q', '--src-tls-verify=false', `docker://${mir.hostPort}/team/busybox:1`, `oci:${out}:1`);
      assert.equal(await inspectDigest(`oci:${out}:1`), pushed);
    } finally {
      await mir?.cleanup();
      await tok.cleanup();
    }
  });
});

describe('mirror of an https upstream', () => {
  it('verifies the upstream\'s certificate: refused when untrusted, pulls when trusted', async () => {
    const cert = path.join(work, 'up-cert.pem');
    const key = path.join(work, 'up-key.pem');
    await must('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
    const tls = await TestRegistry.start({ args: ['--tls-cert', cert, '--tls-key', key] });
    let trusted: TestRegistry | undefined;
    let untrusted: TestRegistry | undefined;
    try {
      await skopeo('copy', '-q', '--dest-tls-verify=false', `oci:${layout}:1`, `docker://${tls.hostPort}/tls/busybox:1`);
      untrusted = await TestRegistry.start({ args: ['--proxy-remote', tls.base] });
      const refused = await untrusted.req('GET', '/v2/tls/busybox/manifests/1');
      assert.equal(refused.status, 503);
      assert.match(refused.text(), /self-signed certificate/);
      trusted = await TestRegistry.start({ args: ['--proxy-remote', tls.base], env: { NODE_EXTRA_CA_CERTS: cert } });
      const out = path.join(work, 'from-tls');
      await skopeo('copy', '-q', '--src-tls-verify=false', `docker://${trusted.hostPort}/tls/busybox:1`, `oci:${out}:1`);
      assert.equal(await inspectDigest(`oci:${out}:1`), pushed);
    } finally {
      await trusted?.cleanup();
      await untrusted?.cleanup();
      await tls.cleanup();
    }
  });
});

// ---------------------------------------------------------------- configuration

describe('mirror configuration', () => {
  const startFails = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const r = await runCmd(process.env.SAMPAN_BIN ?? path.resolve('bin/sampan'), ['registry', '--root', path.join(work, 'never'), '--addr', '127.0.0.1:0', ...args], { timeoutMs: 20_000, env });
    assert.notEqual(r.code, 0, `started with ${args.join(' ')}`);
    return r.stderr;
  };

  it('refuses plain http to a non-loopback upstream, half credentials and bad TTLs', async () => {
    assert.match(await startFails(['--proxy-remote', 'http://registry.example.com']), /plain http is only allowed for a loopback upstream/);
    assert.match(await startFails(['--proxy-remote', 'ftp://127.0.0.1']), /scheme must be https/);
    assert.match(await startFails(['--proxy-remote', 'https://r.example.com', '--proxy-username', 'u']), /username and password go together/);
    assert.match(await startFails(['--proxy-remote', 'https://r.example.com', '--proxy-ttl', 'soon']), /invalid duration/);
    assert.match(await startFails([], { SAMPAN_REGISTRY_PROXY_REMOTEURL: 'http://10.0.0.1:5000' }), /plain http/);
  });
});

// ---------------------------------------------------------------- the engine

describe('the Sampan engine through the mirror', () => {
  it('pulls a docker.io-style name through the mirror (--registry-mirror) and runs it', async () => {
    // a repository the mirror has never served: the engine's pull is its first
    await skopeo('copy', '-q', '--dest-tls-verify=false', `oci:${layout}:1`, `docker://${up.hostPort}/engine/busybox:1`);
    const e = await TestEngine.start({ seed: false, args: ['--registry-mirror', mirror.base] });
    try {
      const pull = await e.docker(['pull', 'engine/busybox:1'], { timeoutMs: 120_000 });
      assert.equal(pull.code, 0, pull.stderr + e.log.slice(-3000));
      const run = await e.docker(['run', '--rm', 'engine/busybox:1', 'echo', 'through-the-mirror'], { timeoutMs: 60_000 });
      assert.equal(run.stdout.trim(), 'through-the-mirror', run.stderr);
      // it came through the mirror, which now holds it
      assert.equal((await mirror.req('GET', '/v2/engine/busybox/manifests/1')).status, 200);
      await fs.stat(path.join(mirror.root, 'repositories', 'engine', 'busybox'));
      // and the mirror's address works as a registry name too
      const direct = await e.docker(['pull', `${mirror.hostPort}/engine/busybox:1`], { timeoutMs: 120_000 });
      assert.equal(direct.code, 0, direct.stderr);
    } finally {
      await e.cleanup();
    }
  });
});
