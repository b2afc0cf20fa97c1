/**
 * docker pull / push / login through the Sampan engine against Debian's `docker-registry` (Distribution):
 * round trips with the real docker CLI, htpasswd auth, gzip (skopeo) and zstd layers, image indexes,
 * mirrors with fallback, Docker's error statuses, and the `sampan` client commands.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import tar from 'tar-stream';
import { TestEngine, freePort, runCmd, SAMPAN, sleep } from '../harness.js';

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;


/** A Distribution registry on a free loopback port, storage in a temp dir; optional htpasswd auth. */
class Distribution {
  proc?: ChildProcess;
  log = '';
  constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  static async start(dir: string, opts: { htpasswd?: string } = {}): Promise<Distribution> {
    await fs.mkdir(dir, { recursive: true });
    const port = await freePort();
    const d = new Distribution(dir, port);
    let cfg = `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n`;
    if (opts.htpasswd) {
      await fs.writeFile(path.join(dir, 'htpasswd'), opts.htpasswd);
      cfg += `auth:\n  htpasswd:\n    realm: sampan-test\n    path: ${dir}/htpasswd\n`;
    }
    await fs.writeFile(path.join(dir, 'config.yml'), cfg);
    d.proc = spawn('docker-registry', ['serve', path.join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] });
    d.proc.stdout!.on('data', (b: Buffer) => (d.log += b.toString()));
    d.proc.stderr!.on('data', (b: Buffer) => (d.log += b.toString()));
    for (let i = 0; i < 100; i++) {
      const ok = await fetch(`http://${d.host}/v2/`).then((r) => r.status === 200 || r.status === 401, () => false);
      if (ok) return d;
      if (d.proc.exitCode !== null) break;
      await sleep(100);
    }
    throw new Error(`docker-registry did not start:\n${d.log}`);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    await gone;
  }

  /** Push a blob (monolithic POST + PUT); returns its descriptor parts. */
  async pushBlob(repo: string, data: Buffer, headers: Record<string, string> = {}): Promise<{ digest: string; size: number }> {
    const digest = sha256(data);
    const start = await fetch(`http://${this.host}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers });
    assert.equal(start.status, 202, `start upload: ${start.status}`);
    const loc = new URL(start.headers.get('location')!, `http://${this.host}`);
    loc.searchParams.set('digest', digest);
    const put = await fetch(loc, { method: 'PUT', body: new Uint8Array(data), headers: { ...headers, 'Content-Type': 'application/octet-stream' } });
    assert.equal(put.status, 201, `put blob: ${put.status} ${await put.text()}`);
    return { digest, size: data.length };
  }

  async pushManifest(repo: string, ref: string, body: unknown, mediaType: string): Promise<{ digest: string; size: number }> {
    const bytes = Buffer.from(JSON.stringify(body));
    const r = await fetch(`http://${this.host}/v2/${repo}/manifests/${ref}`, { method: 'PUT', body: new Uint8Array(bytes), headers: { 'Content-Type': mediaType } });
    assert.equal(r.status, 201, `put manifest: ${r.status} ${await r.text()}`);
    return { digest: sha256(bytes), size: bytes.length };
  }

  async getJson<T>(p: string, accept: string): Promise<T> {
    const r = await fetch(`http://${this.host}${p}`, { headers: { Accept: accept } });
    assert.equal(r.status, 200, `GET ${p}: ${r.status}`);
    return (await r.json()) as T;
  }
}

/** One tar in memory. */
async function packTar(entries: Array<{ name: string; body: string }>): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const en of entries) pack.entry({ name: en.name, mode: 0o644, mtime: new Date(0) }, Buffer.from(en.body));
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

/**
 * A registry behind the Docker registry token spec: a bearer challenge on every registry request without a
 * good token, a token endpoint (realm) that takes Basic credentials and grants the scopes asked for, and
 * everything else proxied to a registry without auth. Counts token requests.
 */
async function tokenProxy(upstream: string, user: string, pass: string): Promise<{ host: string; tokenRequests: () => number; close: () => Promise<void> }> {
  const grants = new Map<string, string[]>();
  let tokenRequests = 0;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const host = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    if (url.pathname === '/token') {
      tokenRequests++;
      if (req.headers.authorization !== `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`) {
        res.writeHead(401, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ details: 'incorrect username or password' }));
        return;
      }
      const token = randomBytes(16).toString('hex');
      grants.set(token, url.searchParams.getAll('scope'));
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ token, expires_in: 300, issued_at: new Date().toISOString() }));
      return;
    }
    const repo = /^\/v2\/(.+?)\/(?:manifests|blobs|tags)\//.exec(url.pathname)?.[1];
    const action = req.method === 'GET' || req.method === 'HEAD' ? 'pull' : 'push';
    const granted = grants.get(/^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '');
    const ok = granted && (!repo || granted.some((sc) => sc.startsWith(`repository:${repo}:`) && sc.slice(`repository:${repo}:`.length).split(',').includes(action)));
    if (!ok) {
      const scope = repo ? `,scope="repository:${repo}:${action}"` : '';
      res.writeHead(401, { 'Content-Type': 'application/json', 'WWW-Authenticate': `Bearer realm="http://${host}/token",service="sampan-test"${scope}` });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
      return;
    }
    const up = http.request(`http://${upstream}${req.url}`, { method: req.method, headers: { ...req.headers, host } }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    host: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    tokenRequests: () => tokenRequests,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

let e: TestEngine;
let reg: Distribution;
let work: string;
let busyboxId: string;

before(async () => {
  e = await TestEngine.start();
  work = path.join(e.dir, 'work');
  await fs.mkdir(path.join(work, 'docker-config'), { recursive: true });
  e.env.DOCKER_CONFIG = path.join(work, 'docker-config'); // never the machine's ~/.docker
  reg = await Distribution.start(path.join(work, 'dist'));
  busyboxId = (await e.docker(['image', 'inspect', '-f', '{{.Id}}', 'busybox'])).stdout.trim();
  assert.match(busyboxId, /^sha256:/);
});
after(async () => {
  await reg?.stop();
  await e?.cleanup();
});

test('docker push to Distribution, rmi, docker pull back: same image, progress, RepoDigests, runs', async () => {
  const ref = `${reg.host}/x/busybox:1`;
  assert.equal((await e.docker(['tag', 'busybox', ref])).code, 0);
  const pushed = await e.docker(['push', ref], { timeoutMs: 60_000 });
  assert.equal(pushed.code, 0, pushed.stderr);
  assert.match(pushed.stdout, new RegExp(`The push refers to repository \\[${reg.host}/x/busybox\\]`));
  assert.match(pushed.stdout, /: Pushed/);
  const m = /1: digest: (sha256:[a-f0-9]{64}) size: (\d+)/.exec(pushed.stdout);
  assert.ok(m, pushed.stdout);
  const digest = m[1]!;
  // the registry holds exactly what the engine said it pushed
  const r = await fetch(`http://${reg.host}/v2/x/busybox/manifests/1`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' } });
  assert.equal(r.status, 200);
  assert.equal(sha256(Buffer.from(await r.arrayBuffer())), digest);
  // pushing again: every layer is already there
  const again = await e.docker(['push', ref], { timeoutMs: 60_000 });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /Layer already exists/);

  // remove every name of the image so the pull has to fetch everything
  const rmi = await e.docker(['rmi', ref, 'busybox']);
  assert.equal(rmi.code, 0, rmi.stderr);
  assert.notEqual((await e.docker(['image', 'inspect', busyboxId])).code, 0);

  // the raw progress stream, as the CLI reads it
  const res = await e.api('POST', `/v1.44/images/create?fromImage=${encodeURIComponent(`${reg.host}/x/busybox`)}&tag=1`);
  assert.equal(res.status, 200, res.body.toString());
  const lines = res.body.toString().trim().split('\n').map((l) => JSON.parse(l) as { status: string; id?: string; progressDetail?: { current?: number; total?: number } });
  assert.deepEqual(lines[0], { status: 'Pulling from x/busybox', progressDetail: {}, id: '1' });
  const statuses = lines.map((l) => l.status);
  for (const s of ['Pulling fs layer', 'Downloading', 'Verifying Checksum', 'Download complete', 'Pull complete']) assert.ok(statuses.includes(s), `no ${s} in ${statuses.join(', ')}`);
  const dl = lines.filter((l) => l.status === 'Downloading');
  assert.ok(dl.every((l) => typeof l.progressDetail?.total === 'number' && l.progressDetail.total > 0));
  assert.equal(dl[dl.length - 1]!.progressDetail!.current, dl[dl.length - 1]!.progressDetail!.total);
  assert.equal(statuses[statuses.length - 2], `Digest: ${digest}`);
  assert.equal(statuses[statuses.length - 1], `Status: Downloaded newer image for ${ref}`);

  const id = (await e.docker(['image', 'inspect', '-f', '{{.Id}} {{index .RepoDigests 0}}', ref])).stdout.trim();
  assert.equal(id, `${busyboxId} ${reg.host}/x/busybox@${digest}`);
  const run = await e.docker(['run', '--rm', ref, 'echo', 'pulled-and-running']);
  assert.equal(run.stdout.trim(), 'pulled-and-running', run.stderr);

  // a second pull changes nothing
  const second = await e.docker(['pull', ref], { timeoutMs: 60_000 });
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, new RegExp(`Status: Image is up to date for ${ref.replace(/\./g, '\\.')}`));
  // by digest too
  const byDigest = await e.docker(['pull', `${reg.host}/x/busybox@${digest}`], { timeoutMs: 60_000 });
  assert.equal(byDigest.code, 0, byDigest.stderr);
  assert.match(byDigest.stdout, new RegExp(`Digest: ${digest}`));
  // put busybox back for the other tests
  assert.equal((await e.docker(['tag', ref, 'busybox'])).code, 0);
});

test('pull errors: a missing tag is 404 manifest unknown, a dead registry is 500, a bad reference is 400', async () => {
  const cli = await e.docker(['pull', `${reg.host}/x/busybox:nosuch`], { timeoutMs: 30_000 });
  assert.equal(cli.code, 1);
  assert.match(cli.stderr, /manifest for 127\.0\.0\.1:\d+\/x\/busybox:nosuch not found: manifest unknown/);
  const api = await e.api('POST', `/images/create?fromImage=${encodeURIComponent(`${reg.host}/x/nosuchrepo`)}&tag=1`);
  assert.equal(api.status, 404);
  const dead = await freePort();
  const down = await e.api('POST', `/images/create?fromImage=${encodeURIComponent(`127.0.0.1:${dead}/x/busybox`)}&tag=1`);
  assert.equal(down.status, 500);
  assert.match(down.json<{ message: string }>().message, /connection refused/);
  const bad = await e.api('POST', `/images/create?fromImage=${encodeURIComponent(`${reg.host}/X/Busybox`)}&tag=1`);
  assert.equal(bad.status, 400);
});

test('htpasswd auth on Distribution: login checks, push and pull with credentials, none without', async () => {
  const hash = execFileSync('htpasswd', ['-Bbn', 'alice', 'wonder-land']).toString();
  const sec = await Distribution.start(path.join(work, 'dist-auth'), { htpasswd: hash });
  try {
    const cfg = { DOCKER_CONFIG: path.join(work, 'docker-config-auth') };
    await fs.mkdir(cfg.DOCKER_CONFIG, { recursive: true });
    const ref = `${sec.host}/team/busybox:1`;
    assert.equal((await e.docker(['tag', 'busybox', ref])).code, 0);
    // no credentials: refused (and the CLI does not stop to prompt for a login)
    const anonPush = await e.docker(['push', ref], { env: cfg, timeoutMs: 30_000 });
    assert.equal(anonPush.code, 1);
    assert.match(anonPush.stderr + anonPush.stdout, /unauthorized|authentication required/i);
    const anonPull = await e.docker(['pull', ref], { env: cfg, timeoutMs: 30_000 });
    assert.equal(anonPull.code, 1);
    assert.match(anonPull.stderr, /pull access denied|authentication required/i);

    const wrong = await e.docker(['login', '-u', 'alice', '--password-stdin', sec.host], { env: cfg, input: 'not-it\n', timeoutMs: 30_000 });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /401|unauthorized/i);
    const api = await e.api('POST', '/auth', { username: 'alice', password: 'not-it', serveraddress: sec.host });
    assert.equal(api.status, 401);

    const ok = await e.docker(['login', '-u', 'alice', '--password-stdin', sec.host], { env: cfg, input: 'wonder-land\n', timeoutMs: 30_000 });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /Login Succeeded/);
    const pushed = await e.docker(['push', ref], { env: cfg, timeoutMs: 60_000 });
    assert.equal(pushed.code, 0, pushed.stderr + pushed.stdout);
    assert.equal((await e.docker(['rmi', ref])).code, 0);
    const pulled = await e.docker(['pull', ref], { env: cfg, timeoutMs: 60_000 });
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.equal((await e.docker(['image', 'inspect', '-f', '{{.Id}}', ref])).stdout.trim(), busyboxId);

    // logged out: refused again
    assert.equal((await e.docker(['logout', sec.host], { env: cfg })).code, 0);
    assert.equal((await e.docker(['rmi', ref])).code, 0);
    const after = await e.docker(['pull', ref], { env: cfg, timeoutMs: 30_000 });
    assert.equal(after.code, 1);
  } finally {
    await sec.stop();
  }
});

test('bearer tokens (Docker registry token spec): login, push and pull with scoped, cached tokens', async () => {
  const proxy = await tokenProxy(reg.host, 'carol', 'token-pass');
  try {
    const cfg = { DOCKER_CONFIG: path.join(work, 'docker-config-token') };
    await fs.mkdir(cfg.DOCKER_CONFIG, { recursive: true });
    const ref = `${proxy.host}/tok/busybox:1`;
    assert.equal((await e.docker(['tag', 'busybox', ref])).code, 0);
    const wrong = await e.docker(['login', '-u', 'carol', '--password-stdin', proxy.host], { env: cfg, input: 'nope\n', timeoutMs: 30_000 });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /incorrect username or password/);
    const ok = await e.docker(['login', '-u', 'carol', '--password-stdin', proxy.host], { env: cfg, input: 'token-pass\n', timeoutMs: 30_000 });
    assert.equal(ok.code, 0, ok.stderr);
    const pushed = await e.docker(['push', ref], { env: cfg, timeoutMs: 60_000 });
    assert.equal(pushed.code, 0, pushed.stderr + pushed.stdout);
    assert.match(pushed.stdout, /1: digest: sha256:/);
    assert.equal((await e.docker(['rmi', ref])).code, 0);
    const before = proxy.tokenRequests();
    const pulled = await e.docker(['pull', ref], { env: cfg, timeoutMs: 60_000 });
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.equal((await e.docker(['image', 'inspect', '-f', '{{.Id}}', ref])).stdout.trim(), busyboxId);
    // one token for the pull scope, reused for the manifest, config and layer requests
    assert.ok(proxy.tokenRequests() - before <= 1, `${proxy.tokenRequests() - before} token requests for one pull`);
    // without credentials the token server refuses: the pull fails with Docker's message, without a login prompt
    const anon = await e.docker(['pull', `${proxy.host}/tok/busybox:1`], { env: { DOCKER_CONFIG: path.join(work, 'docker-config') }, timeoutMs: 30_000 });
    assert.equal(anon.code, 1);
    assert.match(anon.stderr, /pull access denied|unauthorized/i);
  } finally {
    await proxy.close();
  }
});

test('a gzip-layer image pushed by skopeo pulls and runs', async () => {
  const archive = path.join(work, 'bb.tar');
  const saved = await e.docker(['save', '-o', archive, 'busybox']);
  assert.equal(saved.code, 0, saved.stderr);
  const sk = await runCmd('skopeo', ['copy', '-q', '--dest-tls-verify=false', `docker-archive:${archive}`, `docker://${reg.host}/skopeo/busybox:gz`], { timeoutMs: 120_000 });
  assert.equal(sk.code, 0, sk.stderr);
  const m = await reg.getJson<{ layers: Array<{ mediaType: string }> }>('/v2/skopeo/busybox/manifests/gz', 'application/vnd.docker.distribution.manifest.v2+json');
  assert.match(m.layers[0]!.mediaType, /gzip/);
  const ref = `${reg.host}/skopeo/busybox:gz`;
  const pulled = await e.docker(['pull', ref], { timeoutMs: 60_000 });
  assert.equal(pulled.code, 0, pulled.stderr);
  assert.equal((await e.docker(['image', 'inspect', '-f', '{{.Id}}', ref])).stdout.trim(), busyboxId);
  const run = await e.docker(['run', '--rm', ref, 'echo', 'gzip-ok']);
  assert.equal(run.stdout.trim(), 'gzip-ok', run.stderr);
});

test('an image index with a zstd layer: linux/amd64 is chosen, both layers unpack, RepoDigest is the index', async () => {
  // base: busybox's layer and config as the registry has them (pushed by the first test)
  const base = await reg.getJson<{ config: { digest: string }; layers: Array<{ mediaType: string; digest: string; size: number }> }>(
    '/v2/x/busybox/manifests/1',
    'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json',
  );
  const baseCfg = await reg.getJson<{ rootfs: { diff_ids: string[] }; config?: object }>(`/v2/x/busybox/blobs/${base.config.digest}`, '*/*');
  // a second layer, zstd-compressed by the zstd tool
  const layerTar = await packTar([{ name: 'hello.txt', body: 'from-a-zstd-layer\n' }]);
  const zst = execFileSync('zstd', ['-q', '-c'], { input: layerTar });
  assert.deepEqual([...zst.subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd]);
  const repo = 'multi/app';
  const baseLayer = base.layers[0]!;
  const blob = await fs.readFile(path.join(reg.dir, 'data/docker/registry/v2/blobs/sha256', baseLayer.digest.slice(7, 9), baseLayer.digest.slice(7), 'data'));
  await reg.pushBlob(repo, blob);
  const zl = await reg.pushBlob(repo, zst);
  const config = { architecture: 'amd64', os: 'linux', config: { ...(baseCfg.config ?? {}), Cmd: ['cat', '/hello.txt'] }, rootfs: { type: 'layers', diff_ids: [...baseCfg.rootfs.diff_ids, sha256(layerTar)] }, history: [] };
  const cfgBytes = Buffer.from(JSON.stringify(config));
  const cfg = await reg.pushBlob(repo, cfgBytes);
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg },
    layers: [
      { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: baseLayer.digest, size: baseLayer.size },
      { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', ...zl },
    ],
  };
  const man = await reg.pushManifest(repo, sha256(Buffer.from(JSON.stringify(manifest))), manifest, manifest.mediaType);
  // an arm64 image listed first: choosing it would give another image ID (and no /hello.txt)
  const armCfg = await reg.pushBlob(repo, Buffer.from(JSON.stringify({ ...config, architecture: 'arm64', rootfs: { type: 'layers', diff_ids: baseCfg.rootfs.diff_ids } })));
  const armManifest = { ...manifest, config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...armCfg }, layers: [manifest.layers[0]!] };
  const arm = await reg.pushManifest(repo, sha256(Buffer.from(JSON.stringify(armManifest))), armManifest, manifest.mediaType);
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      { mediaType: manifest.mediaType, ...arm, platform: { architecture: 'arm64', os: 'linux' } },
      { mediaType: manifest.mediaType, ...man, platform: { architecture: 'amd64', os: 'linux' } },
    ],
  };
  const idx = await reg.pushManifest(repo, 'v1', index, index.mediaType);

  const ref = `${reg.host}/${repo}:v1`;
  const pulled = await e.docker(['pull', ref], { timeoutMs: 60_000 });
  assert.equal(pulled.code, 0, pulled.stderr);
  assert.match(pulled.stdout, new RegExp(`Digest: ${idx.digest}`));
  const info = (await e.docker(['image', 'inspect', '-f', '{{.Id}} {{json .RepoDigests}}', ref])).stdout.trim();
  assert.equal(info, `${cfg.digest} ["${reg.host}/${repo}@${idx.digest}"]`);
  const run = await e.docker(['run', '--rm', ref]);
  assert.equal(run.stdout.trim(), 'from-a-zstd-layer', run.stderr);
  const run2 = await e.docker(['run', '--rm', ref, 'sh', '-c', 'echo base-too']);
  assert.equal(run2.stdout.trim(), 'base-too');

  // GET /distribution/{name}/json (docker-py's get_registry_data): the index and its platforms; a lone manifest's from its config
  const dist = await e.api('GET', `/distribution/${ref}/json`);
  assert.equal(dist.status, 200, dist.body.toString());
  assert.deepEqual(dist.json(), { Descriptor: { mediaType: index.mediaType, digest: idx.digest, size: idx.size }, Platforms: [{ architecture: 'arm64', os: 'linux' }, { architecture: 'amd64', os: 'linux' }] });
  const single = (await e.api('GET', `/distribution/${reg.host}/${repo}@${man.digest}/json`)).json<{ Descriptor: { digest: string }; Platforms: unknown[] }>();
  assert.equal(single.Descriptor.digest, man.digest);
  assert.deepEqual(single.Platforms, [{ architecture: 'amd64', os: 'linux' }]);
  assert.equal((await e.api('GET', `/distribution/${reg.host}/${repo}:nosuch/json`)).status, 404);
});

test('layers that do not match their diff ID or their digest fail the pull and leave nothing behind', async () => {
  const repo = 'bad/layer';
  const layerTar = await packTar([{ name: 'a.txt', body: 'a\n' }]);
  const real = await reg.pushBlob(repo, layerTar);
  const other = await packTar([{ name: 'b.txt', body: 'b\n' }]);
  await reg.pushBlob(repo, other);
  const blobsDir = path.join(e.dir, 'root/content/blobs/sha256');
  const layersDir = path.join(e.dir, 'root/layers');
  const layersBefore = (await fs.readdir(layersDir)).sort();
  // the config names the diff ID of other content than the layer has
  const config = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(other)] } };
  const cfg = await reg.pushBlob(repo, Buffer.from(JSON.stringify(config)));
  const manifest = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...real }] };
  await reg.pushManifest(repo, '1', manifest, manifest.mediaType);
  const pulled = await e.docker(['pull', `${reg.host}/${repo}:1`], { timeoutMs: 60_000 });
  assert.equal(pulled.code, 1);
  assert.match(pulled.stderr + pulled.stdout, /diff ID mismatch/);
  assert.notEqual((await e.docker(['image', 'inspect', `${reg.host}/${repo}:1`])).code, 0);
  assert.ok(!(await fs.readdir(blobsDir)).includes(real.digest.slice(7)), 'the failed layer blob was kept');

  // the registry's stored bytes of a blob changed behind its back (same size): the digest check catches it
  const good = await packTar([{ name: 'c.txt', body: 'c\n' }]);
  const gd = await reg.pushBlob(repo, good);
  const cfg2 = await reg.pushBlob(repo, Buffer.from(JSON.stringify({ ...config, rootfs: { type: 'layers', diff_ids: [sha256(good)] } })));
  await reg.pushManifest(repo, '2', { ...manifest, config: { ...manifest.config, ...cfg2 }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...gd }] }, manifest.mediaType);
  const stored = path.join(reg.dir, 'data/docker/registry/v2/blobs/sha256', gd.digest.slice(7, 9), gd.digest.slice(7), 'data');
  const forged = await packTar([{ name: 'c.txt', body: 'X\n' }]);
  assert.equal(forged.length, good.length);
  await fs.writeFile(stored, forged);
  const tampered = await e.docker(['pull', `${reg.host}/${repo}:2`], { timeoutMs: 60_000 });
  assert.equal(tampered.code, 1);
  assert.match(tampered.stderr + tampered.stdout, /digest mismatch|diff ID mismatch/);
  assert.notEqual((await e.docker(['image', 'inspect', `${reg.host}/${repo}:2`])).code, 0);
  assert.ok(!(await fs.readdir(blobsDir)).includes(gd.digest.slice(7)), 'the tampered blob was kept');
  assert.deepEqual((await fs.readdir(layersDir)).filter((f) => !f.startsWith('tmp-')).sort(), layersBefore);
});

test('mirrors: a dead mirror falls back to the origin; a live mirror serves a dead origin and docker.io', async () => {
  const dead = await freePort();
  const m = await TestEngine.start({
    seed: false,
    args: [
      '--registry-mirror', `${reg.host}=http://127.0.0.1:${dead}`,
      '--registry-mirror', `127.0.0.1:${dead}=http://${reg.host}`,
      '--registry-mirror', `http://${reg.host}`,
    ],
  });
  try {
    const viaOrigin = await m.docker(['pull', `${reg.host}/x/busybox:1`], { timeoutMs: 60_000 });
    assert.equal(viaOrigin.code, 0, viaOrigin.stderr + m.log);
    const viaMirror = await m.docker(['pull', `127.0.0.1:${dead}/x/busybox:1`], { timeoutMs: 60_000 });
    assert.equal(viaMirror.code, 0, viaMirror.stderr);
    assert.match(viaMirror.stdout, /Status: (Downloaded newer image|Image is up to date) for 127\.0\.0\.1:\d+\/x\/busybox:1/);
    // docker.io names go to the docker.io mirror (no network needed): x/busybox is docker.io/x/busybox
    const hub = await m.docker(['pull', 'x/busybox:1'], { timeoutMs: 60_000 });
    assert.equal(hub.code, 0, hub.stderr);
    const ids = await m.docker(['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}']);
    assert.match(ids.stdout, /^x\/busybox:1 [a-f0-9]{12}$/m);
    const run = await m.docker(['run', '--rm', 'x/busybox:1', 'echo', 'from-mirror']);
    assert.equal(run.stdout.trim(), 'from-mirror', run.stderr);
  } finally {
    await m.cleanup();
  }
});

test('sampan pull, push, login and logout', async () => {
  const hash = execFileSync('htpasswd', ['-Bbn', 'bob', 'builder']).toString();
  const sec = await Distribution.start(path.join(work, 'dist-sampan'), { htpasswd: hash });
  const env = { SAMPAN_HOST: `unix://${e.sock}`, SAMPAN_CONFIG_DIR: path.join(work, 'sampan-config') };
  const sampan = (args: string[], input?: string) => runCmd(SAMPAN, args, { env, input, timeoutMs: 60_000 });
  try {
    const ref = `${sec.host}/s/busybox:2`;
    assert.equal((await e.docker(['tag', 'busybox', ref])).code, 0);
    const denied = await sampan(['push', ref]);
    assert.equal(denied.code, 1);
    const bad = await sampan(['login', '-u', 'bob', '--password-stdin', sec.host], 'nope\n');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /401|unauthorized/i);
    const ok = await sampan(['login', '-u', 'bob', '--password-stdin', sec.host], 'builder\n');
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /Login Succeeded/);
    const file = path.join(env.SAMPAN_CONFIG_DIR, 'config.json');
    assert.equal((await fs.stat(file)).mode & 0o777, 0o600);
    const stored = JSON.parse(await fs.readFile(file, 'utf8')) as { auths: Record<string, { auth: string }> };
    assert.equal(Buffer.from(stored.auths[sec.host]!.auth, 'base64').toString(), 'bob:builder');
    const pushed = await sampan(['push', ref]);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.match(pushed.stdout, /2: digest: sha256:[a-f0-9]{64} size: \d+/);
    assert.equal((await e.docker(['rmi', ref])).code, 0);
    const pulled = await sampan(['pull', ref]);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.match(pulled.stdout, /Pulling from s\/busybox/);
    assert.match(pulled.stdout, /Status: Downloaded newer image for/);
    assert.equal((await e.docker(['image', 'inspect', '-f', '{{.Id}}', ref])).stdout.trim(), busyboxId);
    const out = await sampan(['logout', sec.host]);
    assert.equal(out.code, 0);
    assert.deepEqual(JSON.parse(await fs.readFile(file, 'utf8')).auths, {});
    const missing = await sampan(['pull', `${reg.host}/x/busybox:nosuch`]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not found: manifest unknown/);
  } finally {
    await sec.stop();
  }
});

/** `sampan registry` on a free loopback port (extra flags appended); stopped by the returned function. */
async function startSampanRegistry(root: string, extra: string[] = []): Promise<{ host: string; stop: () => Promise<void> }> {
  const port = await freePort();
  const proc = spawn(SAMPAN, ['registry', '--root', root, '--addr', `127.0.0.1:${port}`, ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr!.on('data', (b: Buffer) => (log += b.toString()));
  const stop = async () => {
    if (proc.exitCode !== null) return;
    const gone = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill('SIGTERM');
    await gone;
  };
  // a generous wait: on a loaded machine starting node alone can take seconds
  for (let i = 0; i < 600; i++) {
    if (await fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.status === 200 || r.status === 401, () => false)) return { host: `127.0.0.1:${port}`, stop };
    if (proc.exitCode !== null) break;
    await sleep(100);
  }
  await stop();
  throw new Error(`sampan registry did not start:\n${log}`);
}

test('push to and pull from `sampan registry`', async () => {
  const sreg = await startSampanRegistry(path.join(work, 'sampan-registry'));
  try {
    const ref = `${sreg.host}/own/busybox:1`;
    assert.equal((await e.docker(['tag', 'busybox', ref])).code, 0);
    const pushed = await e.docker(['push', ref], { timeoutMs: 60_000 });
    assert.equal(pushed.code, 0, pushed.stderr + pushed.stdout);
    const digest = /1: digest: (sha256:[a-f0-9]{64})/.exec(pushed.stdout)?.[1];
    assert.ok(digest, pushed.stdout);
    assert.equal((await e.docker(['rmi', ref])).code, 0);
    const pulled = await e.docker(['pull', ref], { timeoutMs: 60_000 });
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.match(pulled.stdout, new RegExp(`Digest: ${digest}`));
    assert.equal((await e.docker(['image', 'inspect', '-f', '{{.Id}}', ref])).stdout.trim(), busyboxId);
    const run = await e.docker(['run', '--rm', ref, 'echo', 'from-sampan-registry']);
    assert.equal(run.stdout.trim(), 'from-sampan-registry', run.stderr);
    const missing = await e.docker(['pull', `${sreg.host}/own/busybox:nosuch`], { timeoutMs: 30_000 });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not found: manifest unknown/);
  } finally {
    await sreg.stop();
  }
});

test('`sampan registry` with its token service and with htpasswd: login, push, pull; refused without', async () => {
  const htpasswd = path.join(work, 'sreg-htpasswd');
  await fs.writeFile(htpasswd, execFileSync('htpasswd', ['-Bbn', 'erin', 'sesame']));
  for (const mode of ['token', 'htpasswd']) {
    const sreg = await startSampanRegistry(path.join(work, `sampan-registry-${mode}`), ['--auth', mode, '--htpasswd', htpasswd]);
    try {
      const cfg = { DOCKER_CONFIG: path.join(work, `docker-config-sreg-${mode}`) };
      await fs.mkdir(cfg.DOCKER_CONFIG, { recursive: true });
      const ref = `${sreg.host}/secure/busybox:1`;
      assert.equal((await e.docker(['tag', 'busybox', ref])).code, 0);
      const anon = await e.docker(['push', ref], { env: cfg, timeoutMs: 30_000 });
      assert.equal(anon.code, 1, `${mode}: anonymous push was accepted`);
      const bad = await e.docker(['login', '-u', 'erin', '--password-stdin', sreg.host], { env: cfg, input: 'wrong\n', timeoutMs: 30_000 });
      assert.equal(bad.code, 1, `${mode}: a wrong password logged in`);
      const ok = await e.docker(['login', '-u', 'erin', '--password-stdin', sreg.host], { env: cfg, input: 'sesame\n', timeoutMs: 30_000 });
      assert.equal(ok.code, 0, `${mode}: ${ok.stderr}`);
      const pushed = await e.docker(['push', ref], { env: cfg, timeoutMs: 60_000 });
      assert.equal(pushed.code, 0, `${mode}: ${pushed.stderr}${pushed.stdout}`);
      assert.equal((await e.docker(['rmi', ref])).code, 0);
      const anonPull = await e.docker(['pull', ref], { env: { DOCKER_CONFIG: path.join(work, 'docker-config') }, timeoutMs: 30_000 });
      assert.equal(anonPull.code, 1, `${mode}: anonymous pull was accepted`);
      const pulled = await e.docker(['pull', ref], { env: cfg, timeoutMs: 60_000 });
      assert.equal(pulled.code, 0, `${mode}: ${pulled.stderr}`);
      assert.equal((await e.docker(['image', 'inspect', '-f', '{{.Id}}', ref])).stdout.trim(), busyboxId);
      assert.equal((await e.docker(['rmi', ref])).code, 0);
    } finally {
      await sreg.stop();
    }
  }
});
