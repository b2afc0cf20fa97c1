/**
 * Running the registry: TLS, configuration precedence through the CLI, online garbage collection,
 * stale upload expiry, and a graceful stop that lets an upload in flight finish.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { runCmd } from '../harness.js';
import { BIN, TestRegistry, errCode, sha256 } from './harness.js';

async function until(what: string, fn: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const blobFile = (root: string, d: string) => path.join(root, 'blobs', 'sha256', d.slice(7, 9), d.slice(7), 'data');
const exists = (p: string) => fs.stat(p).then(() => true, () => false);

describe('registry operations', () => {
  it('serves HTTPS with --tls-cert/--tls-key', async () => {
    const dir = await fs.mkdtemp('/tmp/sregtls-');
    try {
      const key = path.join(dir, 'key.pem');
      const cert = path.join(dir, 'cert.pem');
      const gen = await runCmd('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
      assert.equal(gen.code, 0, gen.stderr);
      const reg = await TestRegistry.start({ args: ['--tls-cert', cert, '--tls-key', key] });
      try {
        assert.match(reg.base, /^https:/);
        const img = await reg.pushImage('tls/app', 'v1');
        const m = await reg.req('GET', '/v2/tls/app/manifests/v1');
        assert.equal(m.headers['docker-content-digest'], img.digest);
        // plain HTTP on the TLS port is refused
        const plain = await new Promise<number>((resolve) => {
          http.get(`http://127.0.0.1:${reg.port}/v2/`, (res) => resolve(res.statusCode ?? 0)).on('error', () => resolve(0));
        });
        assert.notEqual(plain, 200);
        const sk = await runCmd('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://127.0.0.1:${reg.port}/tls/app:v1`]);
        assert.equal(sk.code, 0, sk.stderr);
        assert.equal(sha256(sk.stdout), img.digest);
      } finally {
        await reg.cleanup();
      }
      // one without the other is a configuration error
      const bad = await runCmd(BIN, ['registry', '--root', path.join(dir, 'r'), '--addr', '127.0.0.1:0', '--tls-cert', cert], { timeoutMs: 20_000 });
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /tls/i);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('configuration: flags > SAMPAN_REGISTRY_* > --config file > defaults', async () => {
    const dir = await fs.mkdtemp('/tmp/sregcfg-');
    try {
      const cfg = path.join(dir, 'registry.json');
      await fs.writeFile(cfg, JSON.stringify({ enableDelete: false, maxManifestBytes: 200 }));
      // file: deletes off, small manifests
      const a = await TestRegistry.start({ args: ['--config', cfg] });
      try {
        const img = await a.pushBlob('cfg/a', 'x');
        assert.equal(errCode(await a.req('DELETE', `/v2/cfg/a/blobs/${img}`)), 'UNSUPPORTED');
        const big = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: img, size: 1 }, layers: [], annotations: { pad: 'p'.repeat(300) } };
        assert.equal((await a.req('PUT', '/v2/cfg/a/manifests/t', { body: big, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } })).status, 413);
      } finally {
        await a.cleanup();
      }
      // env over file: deletes on
      const b = await TestRegistry.start({ args: ['--config', cfg], env: { SAMPAN_REGISTRY_ENABLE_DELETE: 'true' } });
      try {
        const d = await b.pushBlob('cfg/b', 'x');
        assert.equal((await b.req('DELETE', `/v2/cfg/b/blobs/${d}`)).status, 202);
      } finally {
        await b.cleanup();
      }
      // flag over env
      const c = await TestRegistry.start({ args: ['--config', cfg, '--no-enable-delete'], env: { SAMPAN_REGISTRY_ENABLE_DELETE: 'true' } });
      try {
        const d = await c.pushBlob('cfg/c', 'x');
        assert.equal((await c.req('DELETE', `/v2/cfg/c/blobs/${d}`)).status, 405);
      } finally {
        await c.cleanup();
      }
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('online GC sweeps unreferenced blobs while the registry serves', async () => {
    const reg = await TestRegistry.start();
    try {
      const keep = await reg.pushImage('ogc/app', 'keep');
      const drop = await reg.pushImage('ogc/app', 'drop');
      assert.equal((await reg.req('DELETE', `/v2/ogc/app/manifests/${drop.digest}`)).status, 202);
      await reg.terminate();
      const cfg = path.join(reg.dir, 'gc.json');
      await fs.writeFile(cfg, JSON.stringify({ gcIntervalSeconds: 1, gcGraceSeconds: 0 }));
      reg.args.push('--config', cfg);
      await reg.launch();
      await until('the dropped layer to be swept', async () => !(await exists(blobFile(reg.root, drop.layer))));
      assert.equal(await exists(blobFile(reg.root, drop.config)), false);
      assert.equal((await reg.req('HEAD', `/v2/ogc/app/blobs/${drop.layer}`)).status, 404);
      assert.deepEqual((await reg.req('GET', `/v2/ogc/app/blobs/${keep.layer}`)).body, keep.layerBytes);
      assert.deepEqual((await reg.req('GET', '/v2/ogc/app/manifests/keep')).body, keep.manifest);
      // the sweep deletes files before it logs its summary (and the log is written asynchronously)
      await until('the collection to report', async () => /garbage collection done/.test(reg.log));
    } finally {
      await reg.cleanup();
    }
  });

  it('stale upload sessions expire', async () => {
    const dir = await fs.mkdtemp('/tmp/sregexp-');
    const cfg = path.join(dir, 'r.json');
    await fs.writeFile(cfg, JSON.stringify({ uploadExpirySeconds: 1, uploadPurgeIntervalSeconds: 1 }));
    const reg = await TestRegistry.start({ args: ['--config', cfg] });
    try {
      const loc = (await reg.req('POST', '/v2/exp/app/blobs/uploads/')).headers.location!;
      await reg.req('PATCH', loc, { body: 'some bytes', headers: { 'Content-Range': '0-9' } });
      await until('the session to expire', async () => (await reg.req('GET', loc)).status === 404);
      assert.equal(errCode(await reg.req('GET', loc)), 'BLOB_UPLOAD_UNKNOWN');
      assert.deepEqual(await fs.readdir(path.join(reg.root, 'repositories', 'exp', 'app', '_uploads')), []);
    } finally {
      await reg.cleanup();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('SIGTERM lets an upload in flight finish, then exits 0', async () => {
    const reg = await TestRegistry.start();
    try {
      const data = Buffer.alloc(3 << 20, 9);
      const loc = (await reg.req('POST', '/v2/term/app/blobs/uploads/')).headers.location!;
      const u = new URL(reg.base + loc);
      let sent = 0;
      const status = new Promise<number>((resolve, reject) => {
        const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'PATCH', headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': data.length }, agent: false }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        const step = () => {
          if (sent >= data.length) return void req.end();
          req.write(data.subarray(sent, sent + (256 << 10)));
          sent += 256 << 10;
          setTimeout(step, 100);
        };
        step();
      });
      await new Promise((r) => setTimeout(r, 300));
      const exited = reg.terminate();
      assert.equal(await status, 202, 'the upload finished after SIGTERM');
      assert.equal(await exited, 0);
      assert.match(reg.log, /registry stopped/);
      // the bytes are durable: the session resumes and completes after a restart
      await reg.launch();
      const st = await reg.req('GET', loc);
      assert.equal(st.headers.range, `0-${data.length - 1}`);
      assert.equal((await reg.req('PUT', `${loc}?digest=${sha256(data)}`)).status, 201);
    } finally {
      await reg.cleanup();
    }
  });
});
