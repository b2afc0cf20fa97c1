/**
 * Bad input gets the spec's error codes and never touches anything outside the storage root; and a
 * registry killed with `kill -9` in the middle of uploads comes back with every stored blob hashing to
 * its digest, resumable upload sessions, and what was pushed before still pulling.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { OCI_MANIFEST, TestRegistry, errCode, rawRequest, sha256, verifyBlobStore, type Res } from './harness.js';

let reg: TestRegistry;

before(async () => {
  reg = await TestRegistry.start();
});
after(async () => {
  await reg?.cleanup();
});

const ZERO = `sha256:${'0'.repeat(64)}`;

async function newUpload(repo: string): Promise<string> {
  const r = await reg.req('POST', `/v2/${repo}/blobs/uploads/`);
  assert.equal(r.status, 202);
  return r.headers.location!;
}

function assertError(r: Res, status: number, code: string, what = ''): void {
  assert.equal(r.status, status, `${what}: ${r.status} ${r.text()}`);
  assert.equal(errCode(r), code, what);
}

describe('digests', () => {
  it('an upload whose bytes do not match the digest: DIGEST_INVALID 400, and no blob stored', async () => {
    const loc = await newUpload('bad/digest');
    const r = await reg.req('PUT', `${loc}?digest=${ZERO}`, { body: 'not-the-content' });
    assertError(r, 400, 'DIGEST_INVALID', 'PUT');
    assertError(await reg.req('GET', loc), 404, 'BLOB_UPLOAD_UNKNOWN', 'the failed session is gone');
    const one = await reg.req('POST', `/v2/bad/digest/blobs/uploads/?digest=${ZERO}`, { body: 'nope' });
    assertError(one, 400, 'DIGEST_INVALID', 'single POST');
    assert.equal((await reg.req('HEAD', `/v2/bad/digest/blobs/${ZERO}`)).status, 404);
    await assert.rejects(fs.stat(path.join(reg.root, 'blobs', 'sha256', '00')), { code: 'ENOENT' });
  });

  it('malformed or missing digests: DIGEST_INVALID 400', async () => {
    const loc = await newUpload('bad/digest');
    assertError(await reg.req('PUT', loc, { body: 'x' }), 400, 'DIGEST_INVALID', 'no digest');
    const loc2 = await newUpload('bad/digest');
    assertError(await reg.req('PUT', `${loc2}?digest=sha256:abc`, { body: 'x' }), 400, 'DIGEST_INVALID', 'short');
    assertError(await reg.req('PUT', `${loc2}?digest=md5:${'a'.repeat(32)}`, { body: 'x' }), 400, 'DIGEST_INVALID', 'algorithm');
    assertError(await reg.req('GET', '/v2/bad/digest/blobs/sha256:XYZ'), 400, 'DIGEST_INVALID', 'blob GET');
    assertError(await reg.req('GET', `/v2/bad/digest/blobs/sha256:${'A'.repeat(64)}`), 400, 'DIGEST_INVALID', 'upper-case hex');
  });

  it('a manifest PUT by a digest it does not hash to: DIGEST_INVALID', async () => {
    const img = await reg.pushImage('bad/mdigest', 't');
    const r = await reg.req('PUT', `/v2/bad/mdigest/manifests/${ZERO}`, { body: img.manifest, headers: { 'Content-Type': OCI_MANIFEST } });
    assertError(r, 400, 'DIGEST_INVALID');
  });
});

describe('manifests', () => {
  it('naming a missing blob: MANIFEST_BLOB_UNKNOWN', async () => {
    const cfg = await reg.pushBlob('bad/manifest', '{"architecture":"amd64","os":"linux"}');
    const missing = sha256('missing layer');
    const r = await reg.req('PUT', '/v2/bad/manifest/manifests/t', {
      body: { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfg, size: 37 }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: missing, size: 5 }] },
      headers: { 'Content-Type': OCI_MANIFEST },
    });
    assertError(r, 400, 'MANIFEST_BLOB_UNKNOWN');
    assert.equal(r.json().errors[0].detail.digest, missing);
    // a blob that exists, but in another repository only
    const elsewhere = await reg.pushBlob('bad/other', 'elsewhere');
    const r2 = await reg.req('PUT', '/v2/bad/manifest/manifests/t', {
      body: { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfg, size: 37 }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: elsewhere, size: 9 }] },
      headers: { 'Content-Type': OCI_MANIFEST },
    });
    assertError(r2, 400, 'MANIFEST_BLOB_UNKNOWN', 'not linked in this repository');
    assertError(await reg.req('GET', '/v2/bad/manifest/manifests/t'), 404, 'MANIFEST_UNKNOWN', 'nothing was tagged');
  });

  it('invalid manifests: MANIFEST_INVALID', async () => {
    const cfg = await reg.pushBlob('bad/manifest', '{}');
    const put = (body: string | object, ct = OCI_MANIFEST) => reg.req('PUT', '/v2/bad/manifest/manifests/bad', { body, headers: { 'Content-Type': ct } });
    assertError(await put('{not json'), 400, 'MANIFEST_INVALID', 'not JSON');
    assertError(await put('[]'), 400, 'MANIFEST_INVALID', 'not an object');
    assertError(await put({ schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [] }, 'application/vnd.docker.distribution.manifest.v1+json'), 400, 'MANIFEST_INVALID', 'schema 1');
    assertError(await put({ schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v2+json', config: { digest: cfg, size: 2 }, layers: [] }), 400, 'MANIFEST_INVALID', 'mediaType vs Content-Type');
    assertError(await put({ schemaVersion: 2, config: { digest: 'nope', size: 2 }, layers: [] }), 400, 'MANIFEST_INVALID', 'bad descriptor digest');
    assertError(await put({ schemaVersion: 2, config: { digest: cfg, size: -1 }, layers: [] }), 400, 'MANIFEST_INVALID', 'negative size');
    assertError(await put({ schemaVersion: 2, config: { digest: cfg, size: 3 }, layers: [] }), 400, 'MANIFEST_INVALID', 'size does not match the blob');
    assertError(await put({ schemaVersion: 2, layers: [] }), 400, 'MANIFEST_INVALID', 'no config');
  });

  it('oversized manifests: 413, with Content-Length and chunked', async () => {
    const big = Buffer.alloc((4 << 20) + 1, 0x20);
    const r = await reg.req('PUT', '/v2/bad/size/manifests/big', { body: big, headers: { 'Content-Type': OCI_MANIFEST } });
    assert.equal(r.status, 413);
    assert.equal(errCode(r), 'MANIFEST_INVALID');
    const c = await reg.req('PUT', '/v2/bad/size/manifests/big', { body: big, chunked: true, headers: { 'Content-Type': OCI_MANIFEST } });
    assert.equal(c.status, 413);
    const small = await TestRegistry.start({ args: ['--max-manifest-bytes', '100'] });
    try {
      const img = await small.pushBlob('bad/size', 'x');
      const m = { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: img, size: 1 }, layers: [] };
      assert.equal((await small.req('PUT', '/v2/bad/size/manifests/t', { body: m, headers: { 'Content-Type': OCI_MANIFEST } })).status, 413);
    } finally {
      await small.cleanup();
    }
  });
});

describe('names and references', () => {
  const badNames = ['Upper/case', 'a//b', 'a/./b', 'a/../b', '-lead', 'trail-', 'a..b', 'a/', '_under', 'a___b', 'x'.repeat(256), 'a%2Fb', '%2e%2e/x', '..%2F..%2Fescape', 'a%00b', 'sp%20ace'];

  it('bad repository names: NAME_INVALID (or 404), on every route', async () => {
    const d = sha256('x');
    for (const name of badNames) {
      for (const [method, p] of [['GET', `/v2/${name}/manifests/latest`], ['PUT', `/v2/${name}/manifests/latest`], ['HEAD', `/v2/${name}/blobs/${d}`], ['POST', `/v2/${name}/blobs/uploads/`], ['GET', `/v2/${name}/tags/list`], ['GET', `/v2/${name}/referrers/${d}`]] as const) {
        const r = await reg.req(method, p, method === 'PUT' ? { body: '{}', headers: { 'Content-Type': OCI_MANIFEST } } : {});
        assert.ok(r.status === 400 || r.status === 404, `${method} ${p}: ${r.status}`);
        if (r.status === 400 && method !== 'HEAD') assert.equal(errCode(r), 'NAME_INVALID', `${method} ${p}`);
      }
    }
  });

  it('path traversal sent raw never reaches the filesystem', async () => {
    for (const line of ['GET /v2/../../etc/passwd/manifests/x HTTP/1.1', 'PUT /v2/../escape/manifests/x HTTP/1.1', 'POST /v2/../../escape/blobs/uploads/ HTTP/1.1', 'GET /v2/a/%2e%2e/%2e%2e/%2e%2e/etc/passwd/manifests/x HTTP/1.1', 'GET /v2/..%2f..%2fetc/manifests/x HTTP/1.1', 'GET /v2//etc/manifests/x HTTP/1.1']) {
      const r = await rawRequest(reg.port, line);
      assert.ok(r.status === 400 || r.status === 404, `${line}: ${r.status}`);
      assert.doesNotMatch(r.text, /root:/);
    }
    await assert.rejects(fs.stat(path.join(reg.root, '..', 'escape')), { code: 'ENOENT' });
    await assert.rejects(fs.stat(path.join(reg.root, 'escape')), { code: 'ENOENT' });
    const entries = await fs.readdir(path.join(reg.root, 'repositories'));
    assert.ok(entries.every((e) => /^[a-z0-9]/.test(e)), `unexpected entries: ${entries.join(', ')}`);
  });

  it('bad references: 404 on reads, MANIFEST_INVALID on push', async () => {
    const img = await reg.pushImage('bad/ref', 'ok');
    for (const ref of ['t'.repeat(129), '.dot', '-dash', 'a%2Fb', '%2e%2e', 'sha256:short', 'bad@ref']) {
      const g = await reg.req('GET', `/v2/bad/ref/manifests/${ref}`);
      assert.ok(g.status === 404 || g.status === 400, `GET ${ref}: ${g.status}`);
      const p = await reg.req('PUT', `/v2/bad/ref/manifests/${ref}`, { body: img.manifest, headers: { 'Content-Type': OCI_MANIFEST } });
      assert.ok(p.status === 400 || p.status === 404, `PUT ${ref}: ${p.status}`);
      assert.ok(['MANIFEST_INVALID', 'DIGEST_INVALID', 'NAME_INVALID'].includes(errCode(p) ?? ''), `PUT ${ref}: ${p.text()}`);
    }
    const tags = (await reg.req('GET', '/v2/bad/ref/tags/list')).json().tags;
    assert.deepEqual(tags, ['ok']);
  });

  it('unknown upload sessions, and sessions of another repository: BLOB_UPLOAD_UNKNOWN', async () => {
    assertError(await reg.req('GET', '/v2/bad/up/blobs/uploads/00000000-0000-0000-0000-000000000000'), 404, 'BLOB_UPLOAD_UNKNOWN');
    assertError(await reg.req('PATCH', '/v2/bad/up/blobs/uploads/not-a-uuid', { body: 'x' }), 404, 'BLOB_UPLOAD_UNKNOWN');
    const loc = await newUpload('bad/up');
    const id = loc.split('/').pop();
    assertError(await reg.req('GET', `/v2/bad/other/blobs/uploads/${id}`), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('bad pagination, unknown routes and methods', async () => {
    await reg.pushImage('bad/page', 't');
    for (const n of ['-1', 'abc', '1.5']) assertError(await reg.req('GET', `/v2/bad/page/tags/list?n=${n}`), 400, 'PAGINATION_NUMBER_INVALID', n);
    assertError(await reg.req('GET', '/v2/_catalog?n=x'), 400, 'PAGINATION_NUMBER_INVALID');
    assert.equal((await reg.req('GET', '/v2/bad/page/nothing/here')).status, 404);
    assert.equal((await reg.req('GET', '/nope')).status, 404);
    assertError(await reg.req('POST', '/v2/bad/page/manifests/t'), 405, 'UNSUPPORTED');
    assertError(await reg.req('PATCH', '/v2/bad/page/tags/list'), 405, 'UNSUPPORTED');
  });
});

describe('Content-Range', () => {
  it('malformed, inconsistent or out-of-order ranges: 416 with the current Range', async () => {
    const loc = await newUpload('bad/range');
    const first = await reg.req('PATCH', loc, { body: 'abcde', headers: { 'Content-Range': '0-4' } });
    assert.equal(first.status, 202);
    for (const cr of ['bogus', '0-x', 'bytes=5-9', '9-5', '5-', '-5', '6-10', '0-4', '3-7']) {
      const r = await reg.req('PATCH', loc, { body: 'fghij', headers: { 'Content-Range': cr } });
      assert.equal(r.status, 416, `Content-Range ${cr}: ${r.status} ${r.text()}`);
      assert.equal(r.headers.range, '0-4', cr);
      assert.equal(r.headers.location, loc, cr);
    }
    // the range says 5 bytes, the body has 3
    const mismatch = await reg.req('PATCH', loc, { body: 'fgh', headers: { 'Content-Range': '5-9' } });
    assert.equal(mismatch.status, 416);
    // nothing of that went in: the upload continues where it was
    const ok = await reg.req('PATCH', loc, { body: 'fghij', headers: { 'Content-Range': '5-9' } });
    assert.equal(ok.status, 202);
    assert.equal(ok.headers.range, '0-9');
    const fin = await reg.req('PUT', `${loc}?digest=${sha256('abcdefghij')}`);
    assert.equal(fin.status, 201, fin.text());
    // a final PUT whose Content-Range is out of order
    const loc2 = await newUpload('bad/range');
    await reg.req('PATCH', loc2, { body: 'abc', headers: { 'Content-Range': '0-2' } });
    const badPut = await reg.req('PUT', `${loc2}?digest=${sha256('abcdef')}`, { body: 'def', headers: { 'Content-Range': '4-6' } });
    assert.equal(badPut.status, 416);
  });
});

// ---------------------------------------------------------------- kill -9 during uploads

/** Send `data` as a chunked request body slowly; resolves with the status, or rejects when the connection dies. */
function slowRequest(method: string, url: string, data: Buffer, opts: { chunk: number; delayMs: number; headers?: Record<string, string> }): { done: Promise<number> } {
  const u = new URL(url);
  const done = new Promise<number>((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: { 'Content-Type': 'application/octet-stream', ...opts.headers }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    let off = 0;
    const step = () => {
      if (req.destroyed) return;
      if (off >= data.length) return void req.end();
      req.write(data.subarray(off, off + opts.chunk));
      off += opts.chunk;
      setTimeout(step, opts.delayMs);
    };
    step();
  });
  done.catch(() => undefined);
  return { done };
}

describe('kill -9 during uploads', () => {
  it('every stored blob still hashes to its digest; sessions resume; earlier pushes still pull', async () => {
    const crash = await TestRegistry.start();
    try {
      const before = await crash.pushImage('crash/app', 'v1');
      const size = 6 << 20;
      const blobs = Array.from({ length: 4 }, () => randomBytes(size));
      // (a) chunked sessions with a durable first chunk and a second chunk streaming slowly
      const resumable: { loc: string; data: Buffer }[] = [];
      for (const data of blobs.slice(0, 2)) {
        const loc = (await crash.req('POST', '/v2/crash/app/blobs/uploads/')).headers.location!;
        const first = await crash.req('PATCH', loc, { body: data.subarray(0, 1 << 20), headers: { 'Content-Range': `0-${(1 << 20) - 1}` } });
        assert.equal(first.status, 202);
        resumable.push({ loc: first.headers.location!, data });
      }
      const inflight = [
        ...resumable.map((r) => slowRequest('PATCH', `${crash.base}${r.loc}`, r.data.subarray(1 << 20), { chunk: 64 << 10, delayMs: 15 })),
        // (b) a streamed PATCH of a whole blob, and (c) a monolithic POST ?digest=, both slow
        slowRequest('PATCH', `${crash.base}${(await crash.req('POST', '/v2/crash/app/blobs/uploads/')).headers.location!}`, blobs[2]!, { chunk: 64 << 10, delayMs: 15 }),
        slowRequest('POST', `${crash.base}/v2/crash/app/blobs/uploads/?digest=${sha256(blobs[3]!)}`, blobs[3]!, { chunk: 64 << 10, delayMs: 15 }),
      ];
      // (d) many small uploads finishing right as the process dies
      const small = Array.from({ length: 40 }, (_, i) => randomBytes(20_000 + i));
      const smallReqs = small.map((b) => crash.req('POST', `/v2/crash/small/blobs/uploads/?digest=${sha256(b)}`, { body: b }).then((r) => r.status, () => 0));
      await new Promise((r) => setTimeout(r, 700));
      await crash.kill9();
      const results = await Promise.allSettled(inflight.map((x) => x.done));
      assert.ok(results.every((r) => r.status === 'rejected'), 'the slow uploads were cut off by the kill');
      const smallDone = await Promise.all(smallReqs);

      // the cut-off PATCHes left bytes past the durable offset: exactly the case resumption must cut
      let partial = 0;
      for (const r of resumable) {
        const dir = path.join(crash.root, 'repositories', 'crash', 'app', '_uploads', r.loc.split('/').pop()!);
        const state = JSON.parse(await fs.readFile(path.join(dir, 'state'), 'utf8')) as { offset: number };
        if ((await fs.stat(path.join(dir, 'data'))).size > state.offset) partial++;
      }
      assert.ok(partial > 0, 'no session had undurable bytes past its offset at the kill');

      // nothing wrong under any digest, even before the registry runs again
      const checked = await verifyBlobStore(crash.root);
      assert.ok(checked >= 3, `only ${checked} blobs`);
      assert.equal(await fs.stat(path.join(crash.root, 'blobs', 'sha256', sha256(blobs[3]!).slice(7, 9), sha256(blobs[3]!).slice(7), 'data')).then(() => true, () => false), false, 'the cut-off monolithic upload left no blob');

      await crash.launch();
      // the chunked sessions resume from their durable offset
      for (const r of resumable) {
        const st = await crash.req('GET', r.loc);
        assert.equal(st.status, 204);
        const [, end] = /^0-(\d+)$/.exec(st.headers.range as string)!;
        const offset = Number(end) + 1;
        assert.ok(offset >= 1 << 20 && offset <= r.data.length, `offset ${offset}`);
        const rest = await crash.req('PATCH', r.loc, { body: r.data.subarray(offset), headers: { 'Content-Range': `${offset}-${r.data.length - 1}` } });
        assert.equal(rest.status, 202, rest.text());
        const fin = await crash.req('PUT', `${rest.headers.location}?digest=${sha256(r.data)}`);
        assert.equal(fin.status, 201, fin.text());
        assert.deepEqual((await crash.req('GET', `/v2/crash/app/blobs/${sha256(r.data)}`)).body, r.data);
      }
      // the others are simply uploaded again
      for (const b of blobs.slice(2)) assert.equal(await crash.pushBlob('crash/app', b), sha256(b));
      // small uploads that got their 201 are there, whole
      for (let i = 0; i < small.length; i++) {
        if (smallDone[i] !== 201) continue;
        assert.deepEqual((await crash.req('GET', `/v2/crash/small/blobs/${sha256(small[i]!)}`)).body, small[i], `small blob ${i}`);
      }
      // what was pushed before the crash still pulls
      const m = await crash.req('GET', '/v2/crash/app/manifests/v1');
      assert.equal(m.status, 200);
      assert.deepEqual(m.body, before.manifest);
      assert.deepEqual((await crash.req('GET', `/v2/crash/app/blobs/${before.layer}`)).body, before.layerBytes);
      assert.equal((await crash.req('GET', `/v2/crash/app/blobs/${before.config}`)).status, 200);
      assert.ok((await verifyBlobStore(crash.root)) >= checked + 4);
    } finally {
      await crash.cleanup();
    }
  });
});
