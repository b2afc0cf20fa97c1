/**
 * OCI Distribution Spec v1.1 conformance, sha256, against `sampan registry` on loopback: the spec's
 * four workflows (pull, push, content discovery, content management) plus the registry's own extras
 * (catalog, cache invalidation, metrics, deletes disabled, GC).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runCmd } from '../harness.js';
import { BIN, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, TestRegistry, errCode, sha256, verifyBlobStore } from './harness.js';

let reg: TestRegistry;

before(async () => {
  reg = await TestRegistry.start();
});
after(async () => {
  await reg?.cleanup();
});

const EMPTY_CONFIG = Buffer.from('{}');
const EMPTY_CONFIG_TYPE = 'application/vnd.oci.empty.v1+json';

describe('pull', () => {
  let img: Awaited<ReturnType<TestRegistry['pushImage']>>;
  before(async () => {
    img = await reg.pushImage('conf/pull', 'v1');
  });

  it('GET /v2/ answers 200 with the API version header', async () => {
    const r = await reg.req('GET', '/v2/');
    assert.equal(r.status, 200);
    assert.equal(r.headers['docker-distribution-api-version'], 'registry/2.0');
  });

  it('HEAD and GET a manifest by tag and by digest', async () => {
    for (const ref of ['v1', img.digest]) {
      const h = await reg.req('HEAD', `/v2/conf/pull/manifests/${ref}`, { headers: { Accept: OCI_MANIFEST } });
      assert.equal(h.status, 200);
      assert.equal(h.headers['docker-content-digest'], img.digest);
      assert.equal(Number(h.headers['content-length']), img.manifest.length);
      assert.equal(h.body.length, 0);
      const g = await reg.req('GET', `/v2/conf/pull/manifests/${ref}`, { headers: { Accept: OCI_MANIFEST } });
      assert.equal(g.status, 200);
      assert.equal(g.headers['content-type'], OCI_MANIFEST);
      assert.equal(g.headers['docker-content-digest'], img.digest);
      assert.deepEqual(g.body, img.manifest, 'the exact pushed bytes');
    }
  });

  it('HEAD and GET a blob', async () => {
    const h = await reg.req('HEAD', `/v2/conf/pull/blobs/${img.layer}`);
    assert.equal(h.status, 200);
    assert.equal(Number(h.headers['content-length']), img.layerBytes.length);
    assert.equal(h.headers['docker-content-digest'], img.layer);
    const g = await reg.req('GET', `/v2/conf/pull/blobs/${img.layer}`);
    assert.equal(g.status, 200);
    assert.deepEqual(g.body, img.layerBytes);
  });

  it('GET a blob with Range: 206, suffix ranges, 416 outside', async () => {
    const b = img.layerBytes;
    const r = await reg.req('GET', `/v2/conf/pull/blobs/${img.layer}`, { headers: { Range: 'bytes=10-19' } });
    assert.equal(r.status, 206);
    assert.equal(r.headers['content-range'], `bytes 10-19/${b.length}`);
    assert.deepEqual(r.body, b.subarray(10, 20));
    const open = await reg.req('GET', `/v2/conf/pull/blobs/${img.layer}`, { headers: { Range: `bytes=${b.length - 5}-` } });
    assert.equal(open.status, 206);
    assert.deepEqual(open.body, b.subarray(b.length - 5));
    const suffix = await reg.req('GET', `/v2/conf/pull/blobs/${img.layer}`, { headers: { Range: 'bytes=-7' } });
    assert.equal(suffix.status, 206);
    assert.deepEqual(suffix.body, b.subarray(b.length - 7));
    const beyond = await reg.req('GET', `/v2/conf/pull/blobs/${img.layer}`, { headers: { Range: `bytes=${b.length}-` } });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers['content-range'], `bytes */${b.length}`);
  });

  it('unknown manifests and blobs are 404 with the spec codes', async () => {
    const m = await reg.req('GET', '/v2/conf/pull/manifests/nope');
    assert.equal(m.status, 404);
    assert.equal(errCode(m), 'MANIFEST_UNKNOWN');
    const missing = sha256('not stored anywhere');
    const md = await reg.req('GET', `/v2/conf/pull/manifests/${missing}`);
    assert.equal(md.status, 404);
    assert.equal(errCode(md), 'MANIFEST_UNKNOWN');
    const b = await reg.req('GET', `/v2/conf/pull/blobs/${missing}`);
    assert.equal(b.status, 404);
    assert.equal(errCode(b), 'BLOB_UNKNOWN');
    assert.equal((await reg.req('HEAD', `/v2/conf/pull/blobs/${missing}`)).status, 404);
  });

  it('a blob is readable only in repositories that link it', async () => {
    const r = await reg.req('HEAD', `/v2/conf/other/blobs/${img.layer}`);
    assert.equal(r.status, 404);
  });
});

describe('push', () => {
  it('monolithic: POST then PUT with the body', async () => {
    const data = Buffer.from('monolithic blob');
    const d = sha256(data);
    const p = await reg.req('POST', '/v2/conf/push/blobs/uploads/');
    assert.equal(p.status, 202);
    const loc = p.headers.location!;
    assert.match(loc, /^\/v2\/conf\/push\/blobs\/uploads\/[0-9a-f-]{36}$/);
    assert.equal(p.headers.range, '0-0');
    const put = await reg.req('PUT', `${loc}?digest=${d}`, { body: data, headers: { 'Content-Type': 'application/octet-stream' } });
    assert.equal(put.status, 201, put.text());
    assert.equal(put.headers.location, `/v2/conf/push/blobs/${d}`);
    assert.equal(put.headers['docker-content-digest'], d);
    const g = await reg.req('GET', `/v2/conf/push/blobs/${d}`);
    assert.deepEqual(g.body, data);
  });

  it('monolithic: a single POST with ?digest=', async () => {
    const data = Buffer.from('single post blob');
    const d = sha256(data);
    const r = await reg.req('POST', `/v2/conf/push/blobs/uploads/?digest=${d}`, { body: data, headers: { 'Content-Type': 'application/octet-stream' } });
    assert.equal(r.status, 201);
    assert.equal(r.headers.location, `/v2/conf/push/blobs/${d}`);
    assert.equal((await reg.req('HEAD', `/v2/conf/push/blobs/${d}`)).status, 200);
  });

  it('chunked: PATCH with Content-Range in order, 416 out of order, status, final PUT with the last chunk', async () => {
    const data = Buffer.from('0123456789'.repeat(100));
    const d = sha256(data);
    const p = await reg.req('POST', '/v2/conf/push/blobs/uploads/');
    let loc = p.headers.location!;
    const c1 = await reg.req('PATCH', loc, { body: data.subarray(0, 400), headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': '0-399' } });
    assert.equal(c1.status, 202, c1.text());
    assert.equal(c1.headers.range, '0-399');
    loc = c1.headers.location!;
    // out of order: a gap
    const bad = await reg.req('PATCH', loc, { body: data.subarray(500, 600), headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': '500-599' } });
    assert.equal(bad.status, 416);
    assert.equal(bad.headers.range, '0-399');
    assert.equal(bad.headers.location, loc);
    // out of order: overlapping
    const overlap = await reg.req('PATCH', loc, { body: data.subarray(100, 200), headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': '100-199' } });
    assert.equal(overlap.status, 416);
    const st = await reg.req('GET', loc);
    assert.equal(st.status, 204);
    assert.equal(st.headers.range, '0-399');
    assert.equal(st.headers.location, loc);
    const c2 = await reg.req('PATCH', loc, { body: data.subarray(400, 900), headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': '400-899' } });
    assert.equal(c2.status, 202);
    assert.equal(c2.headers.range, '0-899');
    const fin = await reg.req('PUT', `${c2.headers.location}?digest=${d}`, { body: data.subarray(900), headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': '900-999' } });
    assert.equal(fin.status, 201, fin.text());
    const g = await reg.req('GET', `/v2/conf/push/blobs/${d}`);
    assert.deepEqual(g.body, data);
  });

  it('chunked: all chunks by PATCH, then a PUT with no body', async () => {
    const data = Buffer.from('abcdefghij'.repeat(30));
    const d = sha256(data);
    let loc = (await reg.req('POST', '/v2/conf/push/blobs/uploads/')).headers.location!;
    for (let i = 0; i < data.length; i += 100) {
      const r = await reg.req('PATCH', loc, { body: data.subarray(i, i + 100), headers: { 'Content-Range': `${i}-${i + 99}`, 'Content-Type': 'application/octet-stream' } });
      assert.equal(r.status, 202);
      loc = r.headers.location!;
    }
    const fin = await reg.req('PUT', `${loc}?digest=${d}`);
    assert.equal(fin.status, 201, fin.text());
  });

  it('streamed: PATCH without Content-Range (chunked transfer encoding), then PUT', async () => {
    const data = Buffer.alloc(300_000, 7);
    for (let i = 0; i < data.length; i += 997) data[i] = i & 0xff;
    const d = sha256(data);
    const p = await reg.req('POST', '/v2/conf/push/blobs/uploads/');
    const s = await reg.req('PATCH', p.headers.location!, { body: data, chunked: true, headers: { 'Content-Type': 'application/octet-stream' } });
    assert.equal(s.status, 202, s.text());
    assert.equal(s.headers.range, `0-${data.length - 1}`);
    const fin = await reg.req('PUT', `${s.headers.location}?digest=${d}`);
    assert.equal(fin.status, 201, fin.text());
    assert.equal(Number((await reg.req('HEAD', `/v2/conf/push/blobs/${d}`)).headers['content-length']), data.length);
  });

  it('an upload can be cancelled', async () => {
    const p = await reg.req('POST', '/v2/conf/push/blobs/uploads/');
    const loc = p.headers.location!;
    await reg.req('PATCH', loc, { body: 'partial', headers: { 'Content-Range': '0-6' } });
    const del = await reg.req('DELETE', loc);
    assert.equal(del.status, 204);
    const st = await reg.req('GET', loc);
    assert.equal(st.status, 404);
    assert.equal(errCode(st), 'BLOB_UPLOAD_UNKNOWN');
  });

  it('cross-repository mount: 201 when the source has the blob, 202 (an upload) otherwise', async () => {
    const d = await reg.pushBlob('conf/mount-src', 'mount me');
    const m = await reg.req('POST', `/v2/conf/mount-dst/blobs/uploads/?mount=${d}&from=conf/mount-src`);
    assert.equal(m.status, 201);
    assert.equal(m.headers.location, `/v2/conf/mount-dst/blobs/${d}`);
    assert.equal(m.headers['docker-content-digest'], d);
    assert.equal((await reg.req('HEAD', `/v2/conf/mount-dst/blobs/${d}`)).status, 200);
    // the source does not have it: start an upload instead
    const other = sha256('never pushed');
    const n = await reg.req('POST', `/v2/conf/mount-dst2/blobs/uploads/?mount=${other}&from=conf/mount-src`);
    assert.equal(n.status, 202);
    assert.match(n.headers.location!, /\/blobs\/uploads\//);
    // the source exists but is not allowed to read it (no link): upload
    const notLinked = await reg.req('POST', `/v2/conf/mount-dst3/blobs/uploads/?mount=${d}&from=conf/pull`);
    assert.equal(notLinked.status, 202);
  });

  it('anonymous mount (no from): links a blob the registry has anywhere', async () => {
    const d = await reg.pushBlob('conf/anon-src', 'anonymous mount');
    const m = await reg.req('POST', `/v2/conf/anon-dst/blobs/uploads/?mount=${d}`);
    assert.equal(m.status, 201);
    assert.equal((await reg.req('GET', `/v2/conf/anon-dst/blobs/${d}`)).text(), 'anonymous mount');
    const none = await reg.req('POST', `/v2/conf/anon-dst/blobs/uploads/?mount=${sha256('nowhere')}`);
    assert.equal(none.status, 202);
  });

  it('manifests by tag and by digest, OCI and Docker types, index and manifest list', async () => {
    const oci = await reg.pushImage('conf/manifests', 'oci');
    const docker = await reg.pushImage('conf/manifests', 'docker', 'docker', DOCKER_MANIFEST);
    const g = await reg.req('GET', '/v2/conf/manifests/manifests/docker');
    assert.equal(g.headers['content-type'], DOCKER_MANIFEST);
    assert.deepEqual(g.body, docker.manifest);
    // PUT by digest
    const byDigest = await reg.req('PUT', `/v2/conf/manifests/manifests/${oci.digest}`, { body: oci.manifest, headers: { 'Content-Type': OCI_MANIFEST } });
    assert.equal(byDigest.status, 201);
    assert.equal(byDigest.headers.location, `/v2/conf/manifests/manifests/${oci.digest}`);
    assert.equal(byDigest.headers['docker-content-digest'], oci.digest);
    // an OCI index and a Docker manifest list over them
    const children = [
      { mediaType: OCI_MANIFEST, digest: oci.digest, size: oci.manifest.length, platform: { architecture: 'amd64', os: 'linux' } },
      { mediaType: DOCKER_MANIFEST, digest: docker.digest, size: docker.manifest.length, platform: { architecture: 'arm64', os: 'linux' } },
    ];
    const idx = await reg.pushManifest('conf/manifests', 'index', { schemaVersion: 2, mediaType: OCI_INDEX, manifests: children }, OCI_INDEX);
    const list = await reg.pushManifest('conf/manifests', 'list', { schemaVersion: 2, mediaType: DOCKER_LIST, manifests: children }, DOCKER_LIST);
    assert.equal((await reg.req('GET', '/v2/conf/manifests/manifests/index')).headers['content-type'], OCI_INDEX);
    assert.equal((await reg.req('GET', `/v2/conf/manifests/manifests/${list.digest}`)).headers['content-type'], DOCKER_LIST);
    assert.notEqual(idx.digest, list.digest);
    // an index naming a manifest this repository does not have
    const bad = await reg.req('PUT', '/v2/conf/manifests/manifests/badindex', {
      body: { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: sha256('no such manifest'), size: 10 }] },
      headers: { 'Content-Type': OCI_INDEX },
    });
    assert.equal(bad.status, 400);
    assert.equal(errCode(bad), 'MANIFEST_BLOB_UNKNOWN');
  });

  it('a manifest with a subject answers OCI-Subject', async () => {
    const base = await reg.pushImage('conf/subject', 'base');
    const cfg = await reg.pushBlob('conf/subject', EMPTY_CONFIG);
    const r = await reg.pushManifest('conf/subject', 'sig', {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/vnd.example.signature',
      config: { mediaType: EMPTY_CONFIG_TYPE, digest: cfg, size: 2 },
      layers: [{ mediaType: EMPTY_CONFIG_TYPE, digest: cfg, size: 2 }],
      subject: { mediaType: OCI_MANIFEST, digest: base.digest, size: base.manifest.length },
    });
    assert.equal(r.res.headers['oci-subject'], base.digest);
  });

  it('re-pushing a tag serves the new manifest at once (cache invalidation)', async () => {
    const a = await reg.pushImage('conf/retag', 'latest', 'one');
    assert.equal((await reg.req('GET', '/v2/conf/retag/manifests/latest')).headers['docker-content-digest'], a.digest);
    const b = await reg.pushImage('conf/retag', 'latest', 'two');
    assert.notEqual(a.digest, b.digest);
    const g = await reg.req('GET', '/v2/conf/retag/manifests/latest');
    assert.equal(g.headers['docker-content-digest'], b.digest);
    assert.deepEqual(g.body, b.manifest);
  });
});

describe('content discovery', () => {
  it('tags list with n, last and Link', async () => {
    const tags = ['a', 'b', 'c', 'd', 'e'];
    const img = await reg.pushImage('conf/tags', 'a');
    for (const t of tags.slice(1)) await reg.pushManifest('conf/tags', t, img.manifest);
    const all = await reg.req('GET', '/v2/conf/tags/tags/list');
    assert.equal(all.status, 200);
    assert.deepEqual(all.json(), { name: 'conf/tags', tags });
    assert.equal(all.headers.link, undefined);
    const p1 = await reg.req('GET', '/v2/conf/tags/tags/list?n=2');
    assert.deepEqual(p1.json().tags, ['a', 'b']);
    assert.equal(p1.headers.link, '</v2/conf/tags/tags/list?n=2&last=b>; rel="next"');
    const next = /<([^>]+)>/.exec(p1.headers.link as string)![1]!;
    const p2 = await reg.req('GET', next);
    assert.deepEqual(p2.json().tags, ['c', 'd']);
    const p3 = await reg.req('GET', '/v2/conf/tags/tags/list?n=2&last=d');
    assert.deepEqual(p3.json().tags, ['e']);
    assert.equal(p3.headers.link, undefined);
    assert.deepEqual((await reg.req('GET', '/v2/conf/tags/tags/list?last=b')).json().tags, ['c', 'd', 'e']);
    assert.deepEqual((await reg.req('GET', '/v2/conf/tags/tags/list?n=0')).json().tags, []);
    const unknown = await reg.req('GET', '/v2/conf/nosuchrepo/tags/list');
    assert.equal(unknown.status, 404);
    assert.equal(errCode(unknown), 'NAME_UNKNOWN');
  });

  it('referrers, with and without the artifactType filter', async () => {
    const base = await reg.pushImage('conf/referrers', 'base');
    const cfg = await reg.pushBlob('conf/referrers', EMPTY_CONFIG);
    const layer = await reg.pushBlob('conf/referrers', 'sbom contents');
    const subject = { mediaType: OCI_MANIFEST, digest: base.digest, size: base.manifest.length };
    const sigBytes = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/vnd.example.signature',
      config: { mediaType: EMPTY_CONFIG_TYPE, digest: cfg, size: 2 },
      layers: [{ mediaType: EMPTY_CONFIG_TYPE, digest: cfg, size: 2 }],
      subject,
      annotations: { 'org.example.kind': 'signature' },
    }));
    const sig = await reg.pushManifest('conf/referrers', 'sig', sigBytes);
    // no artifactType: the config's media type stands for it; pushed by digest
    const sbomBytes = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.example.sbom.config', digest: cfg, size: 2 },
      layers: [{ mediaType: 'text/plain', digest: layer, size: 13 }],
      subject,
    }));
    const sbom = await reg.pushManifest('conf/referrers', sha256(sbomBytes), sbomBytes);
    const all = await reg.req('GET', `/v2/conf/referrers/referrers/${base.digest}`);
    assert.equal(all.status, 200);
    assert.equal(all.headers['content-type'], OCI_INDEX);
    assert.equal(all.headers['oci-filters-applied'], undefined);
    const idx = all.json();
    assert.equal(idx.schemaVersion, 2);
    assert.equal(idx.mediaType, OCI_INDEX);
    const byDigest = new Map((idx.manifests as { digest: string; size: number; artifactType?: string }[]).map((m) => [m.digest, m]));
    assert.equal(byDigest.size, 2);
    assert.deepEqual(byDigest.get(sig.digest), { mediaType: OCI_MANIFEST, digest: sig.digest, size: sigBytes.length, artifactType: 'application/vnd.example.signature', annotations: { 'org.example.kind': 'signature' } });
    assert.equal(byDigest.get(sbom.digest)?.artifactType, 'application/vnd.example.sbom.config');
    assert.equal(byDigest.get(sbom.digest)?.size, sbomBytes.length);
    const filtered = await reg.req('GET', `/v2/conf/referrers/referrers/${base.digest}?artifactType=${encodeURIComponent('application/vnd.example.signature')}`);
    assert.equal(filtered.status, 200);
    assert.equal(filtered.headers['oci-filters-applied'], 'artifactType');
    assert.deepEqual(filtered.json().manifests.map((m: { digest: string }) => m.digest), [sig.digest]);
    // a subject nobody refers to: an empty index
    const none = await reg.req('GET', `/v2/conf/referrers/referrers/${sha256('lonely')}`);
    assert.equal(none.status, 200);
    assert.deepEqual(none.json().manifests, []);
    const badDigest = await reg.req('GET', '/v2/conf/referrers/referrers/sha256:xyz');
    assert.equal(badDigest.status, 400);
    assert.equal(errCode(badDigest), 'DIGEST_INVALID');
  });

  it('catalog with n, last and Link', async () => {
    await reg.pushImage('conf/cat/a', 't');
    await reg.pushImage('conf/cat/b', 't');
    await reg.pushImage('conf/cat/c', 't');
    const all = (await reg.req('GET', '/v2/_catalog')).json().repositories as string[];
    assert.ok(['conf/cat/a', 'conf/cat/b', 'conf/cat/c'].every((r) => all.includes(r)));
    assert.deepEqual([...all].sort(), all, 'lexical order');
    const p = await reg.req('GET', '/v2/_catalog?n=2&last=conf/cat/a');
    assert.deepEqual(p.json().repositories, ['conf/cat/b', 'conf/cat/c']);
    assert.equal(p.headers.link, '</v2/_catalog?n=2&last=conf%2Fcat%2Fc>; rel="next"');
  });
});

describe('content management', () => {
  it('delete a tag: the manifest stays reachable by digest', async () => {
    const img = await reg.pushImage('conf/del-tag', 'keep');
    await reg.pushManifest('conf/del-tag', 'drop', img.manifest);
    const d = await reg.req('DELETE', '/v2/conf/del-tag/manifests/drop');
    assert.equal(d.status, 202);
    assert.equal((await reg.req('GET', '/v2/conf/del-tag/manifests/drop')).status, 404);
    assert.equal((await reg.req('GET', `/v2/conf/del-tag/manifests/${img.digest}`)).status, 200);
    assert.deepEqual((await reg.req('GET', '/v2/conf/del-tag/tags/list')).json().tags, ['keep']);
  });

  it('delete a manifest by digest: it and its tags are gone', async () => {
    const img = await reg.pushImage('conf/del-manifest', 'one');
    await reg.pushManifest('conf/del-manifest', 'two', img.manifest);
    assert.equal((await reg.req('GET', '/v2/conf/del-manifest/manifests/one')).status, 200); // cached now
    const d = await reg.req('DELETE', `/v2/conf/del-manifest/manifests/${img.digest}`);
    assert.equal(d.status, 202);
    for (const ref of ['one', 'two', img.digest]) {
      const g = await reg.req('GET', `/v2/conf/del-manifest/manifests/${ref}`);
      assert.equal(g.status, 404, ref);
      assert.equal(errCode(g), 'MANIFEST_UNKNOWN');
    }
    assert.deepEqual((await reg.req('GET', '/v2/conf/del-manifest/tags/list')).json().tags, []);
    assert.equal((await reg.req('DELETE', `/v2/conf/del-manifest/manifests/${img.digest}`)).status, 404);
  });

  it('deleting a referrer removes it from the referrers list', async () => {
    const base = await reg.pushImage('conf/del-ref', 'base');
    const cfg = await reg.pushBlob('conf/del-ref', EMPTY_CONFIG);
    const ref = await reg.pushManifest('conf/del-ref', 'r', {
      schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: 'application/x-test',
      config: { mediaType: EMPTY_CONFIG_TYPE, digest: cfg, size: 2 }, layers: [{ mediaType: EMPTY_CONFIG_TYPE, digest: cfg, size: 2 }],
      subject: { mediaType: OCI_MANIFEST, digest: base.digest, size: base.manifest.length },
    });
    assert.equal((await reg.req('GET', `/v2/conf/del-ref/referrers/${base.digest}`)).json().manifests.length, 1);
    assert.equal((await reg.req('DELETE', `/v2/conf/del-ref/manifests/${ref.digest}`)).status, 202);
    assert.equal((await reg.req('GET', `/v2/conf/del-ref/referrers/${base.digest}`)).json().manifests.length, 0);
  });

  it('delete a blob', async () => {
    const d = await reg.pushBlob('conf/del-blob', 'delete me');
    const r = await reg.req('DELETE', `/v2/conf/del-blob/blobs/${d}`);
    assert.equal(r.status, 202);
    const h = await reg.req('HEAD', `/v2/conf/del-blob/blobs/${d}`);
    assert.equal(h.status, 404);
    const again = await reg.req('DELETE', `/v2/conf/del-blob/blobs/${d}`);
    assert.equal(again.status, 404);
    assert.equal(errCode(again), 'BLOB_UNKNOWN');
  });

  it('with --no-enable-delete, deletes are 405 UNSUPPORTED', async () => {
    const ro = await TestRegistry.start({ args: ['--no-enable-delete'] });
    try {
      const img = await ro.pushImage('conf/nodelete', 't');
      for (const p of ['/v2/conf/nodelete/manifests/t', `/v2/conf/nodelete/manifests/${img.digest}`, `/v2/conf/nodelete/blobs/${img.layer}`]) {
        const r = await ro.req('DELETE', p);
        assert.equal(r.status, 405, p);
        assert.equal(errCode(r), 'UNSUPPORTED');
      }
      assert.equal((await ro.req('GET', '/v2/conf/nodelete/manifests/t')).status, 200);
    } finally {
      await ro.cleanup();
    }
  });
});

describe('operations', () => {
  it('/metrics counts requests by route and status, bytes, cache hits', async () => {
    await reg.pushImage('conf/metrics', 'm');
    for (let i = 0; i < 3; i++) await reg.req('GET', '/v2/conf/metrics/manifests/m');
    const m = (await reg.req('GET', '/metrics')).text();
    assert.match(m, /sampan_registry_http_requests_total\{route="manifest",method="GET",status="200"\} \d+/);
    assert.match(m, /sampan_registry_http_requests_total\{route="manifest",method="PUT",status="201"\} \d+/);
    assert.match(m, /sampan_registry_cache_hits_total\{cache="manifest"\} [1-9]/);
    assert.match(m, /sampan_registry_cache_misses_total\{cache="manifest"\} \d+/);
    assert.match(m, /sampan_registry_http_sent_bytes_total [1-9]/);
    assert.match(m, /sampan_registry_http_received_bytes_total [1-9]/);
  });

  it('SIGTERM stops it gracefully (exit 0)', async () => {
    const r = await TestRegistry.start();
    try {
      assert.equal(await r.terminate(), 0);
      assert.match(r.log, /registry stopped/);
    } finally {
      await r.cleanup();
    }
  });

  it('gc --dry-run lists unreferenced blobs; gc deletes them and keeps referenced ones', async () => {
    const g = await TestRegistry.start();
    try {
      const keep = await g.pushImage('gc/app', 'keep');
      const drop = await g.pushImage('gc/app', 'drop');
      const stray = await g.pushBlob('gc/app', 'never referenced');
      assert.equal((await g.req('DELETE', `/v2/gc/app/manifests/${drop.digest}`)).status, 202);
      // with the default grace period nothing is old enough
      const young = await runCmd(BIN, ['registry', 'gc', '--root', g.root, '--dry-run']);
      assert.equal(young.code, 0, young.stderr);
      assert.doesNotMatch(young.stdout, /would delete blob/);
      const dry = await runCmd(BIN, ['registry', 'gc', '--root', g.root, '--dry-run', '--grace', '0s']);
      assert.equal(dry.code, 0, dry.stderr);
      const listed = [...dry.stdout.matchAll(/would delete blob (sha256:[0-9a-f]{64})/g)].map((m) => m[1]).sort();
      assert.deepEqual(listed, [drop.digest, drop.config, drop.layer, stray].sort());
      assert.equal((await g.req('HEAD', `/v2/gc/app/blobs/${stray}`)).status, 200, 'dry run deletes nothing');
      const real = await runCmd(BIN, ['registry', 'gc', '--root', g.root, '--grace', '0s']);
      assert.equal(real.code, 0, real.stderr);
      assert.equal([...real.stdout.matchAll(/deleted blob/g)].length, 4);
      for (const d of [stray, drop.layer, drop.config]) await assertGone(path.join(g.root, 'blobs', 'sha256', d.slice(7, 9), d.slice(7), 'data'));
      // the kept image still pulls, completely
      const m = await g.req('GET', '/v2/gc/app/manifests/keep');
      assert.equal(m.headers['docker-content-digest'], keep.digest);
      assert.deepEqual((await g.req('GET', `/v2/gc/app/blobs/${keep.layer}`)).body, keep.layerBytes);
      assert.equal((await g.req('GET', `/v2/gc/app/blobs/${keep.config}`)).status, 200);
      assert.ok((await verifyBlobStore(g.root)) >= 3);
    } finally {
      await g.cleanup();
    }
  });
});

async function assertGone(p: string): Promise<void> {
  await assert.rejects(fs.stat(p), { code: 'ENOENT' }, `${p} should be gone`);
}
