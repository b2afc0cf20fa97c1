import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LruCache } from './cache.js';
import { loadRegistryConfig } from './config.js';
import { ERROR_KINDS, RegistryError } from './errors.js';
import { isTag, isValidName, parseReference } from './names.js';
import { FakeClock } from '../lib/clock.js';
import { sha256 } from '../lib/digest.js';
import { silentLogger } from '../lib/log.js';
import { MediaType } from '../lib/oci.js';
import type { Upstream } from './hooks.js';
import { Registry, paginate, parseManifest } from './registry.js';
import { FilesystemDriver } from './storage/filesystem.js';
import { route } from './api/routes.js';
import { parseContentRange, uploadRange } from './api/http.js';
import { parseRange } from '../lib/http/range.js';

test('repository names follow the spec grammar', () => {
  for (const ok of ['a', 'library/busybox', 'a.b/c_d/e__f/g-h/i---j', 'x/y/z/w', '0', 'a'.repeat(255)]) assert.ok(isValidName(ok), ok);
  for (const bad of ['', 'A', 'a/', '/a', 'a//b', 'a/./b', 'a/../b', '..', '.a', 'a.', 'a..b', 'a___b', '_a', 'a-', 'a b', 'a%2fb', 'a'.repeat(256), 'a\\b']) assert.ok(!isValidName(bad), bad);
});

test('tags and references', () => {
  assert.ok(isTag('latest') && isTag('_x') && isTag('1.0-rc_1') && isTag('A'.repeat(128)));
  assert.ok(!isTag('.x') && !isTag('-x') && !isTag('A'.repeat(129)) && !isTag('a/b') && !isTag(''));
  assert.deepEqual(parseReference('v1'), { tag: 'v1' });
  const d = `sha256:${'a'.repeat(64)}`;
  assert.deepEqual(parseReference(d), { digest: d });
  assert.throws(() => parseReference('sha256:abc'), (e: RegistryError) => e.code === 'DIGEST_INVALID');
  assert.throws(() => parseReference('..'), (e: RegistryError) => e.code === 'MANIFEST_UNKNOWN');
  assert.throws(() => parseReference('..', 'MANIFEST_INVALID'), (e: RegistryError) => e.code === 'MANIFEST_INVALID');
});

test('routes are parsed from the right; names with route words still work', () => {
  assert.deepEqual(route('/v2/'), { kind: 'base' });
  assert.deepEqual(route('/v2/_catalog'), { kind: 'catalog' });
  assert.deepEqual(route('/v2/a/b/manifests/latest'), { kind: 'manifest', name: 'a/b', ref: 'latest' });
  assert.deepEqual(route('/v2/manifests/manifests/x'), { kind: 'manifest', name: 'manifests', ref: 'x' });
  assert.deepEqual(route('/v2/a/blobs/sha256:x'), { kind: 'blob', name: 'a', digest: 'sha256:x' });
  assert.deepEqual(route('/v2/a/blobs/uploads/'), { kind: 'uploads', name: 'a' });
  assert.deepEqual(route('/v2/a/blobs/uploads'), { kind: 'uploads', name: 'a' });
  assert.deepEqual(route('/v2/a/blobs/uploads/123'), { kind: 'upload', name: 'a', id: '123' });
  assert.deepEqual(route('/v2/blobs/uploads/blobs/uploads/'), { kind: 'uploads', name: 'blobs/uploads' });
  assert.deepEqual(route('/v2/a/tags/list'), { kind: 'tags', name: 'a' });
  assert.deepEqual(route('/v2/tags/list/tags/list'), { kind: 'tags', name: 'tags/list' });
  assert.deepEqual(route('/v2/a/referrers/sha256:x'), { kind: 'referrers', name: 'a', digest: 'sha256:x' });
  assert.deepEqual(route('/v2/a/manifests/sha256%3Aab'), { kind: 'manifest', name: 'a', ref: 'sha256:ab' });
  assert.equal(route('/v3/a/manifests/x'), undefined);
  assert.equal(route('/v2/a/b'), undefined);
  for (const bad of ['/v2/../x/manifests/y', '/v2/a//b/manifests/y', '/v2/a%2Fb/manifests/y', '/v2/%2e%2e/manifests/y', '/v2/a/%2e/manifests/y', '/v2/A/tags/list', '/v2/a%zz/tags/list']) {
    assert.throws(() => route(bad), (e: RegistryError) => e.code === 'NAME_INVALID', bad);
  }
});

test('pagination', () => {
  const all = ['a', 'b', 'c', 'd', 'e'];
  assert.deepEqual(paginate(all, undefined, undefined), { items: all });
  assert.deepEqual(paginate(all, 2, undefined), { items: ['a', 'b'], next: 'b' });
  assert.deepEqual(paginate(all, 2, 'b'), { items: ['c', 'd'], next: 'd' });
  assert.deepEqual(paginate(all, 2, 'd'), { items: ['e'] });
  assert.deepEqual(paginate(all, 10, 'bb'), { items: ['c', 'd', 'e'] });
  assert.deepEqual(paginate(all, 0, undefined), { items: [] });
  assert.deepEqual(paginate(all, 2, 'z'), { items: [] });
  assert.deepEqual(paginate(all, 5, undefined), { items: all });
});

test('ranges', () => {
  assert.deepEqual(parseContentRange('0-99'), { start: 0, end: 99 });
  for (const bad of ['bytes=0-9', '9-0', 'x', '0-', '-1', '0-9/10', ' ']) assert.equal(parseContentRange(bad), undefined, bad);
  assert.deepEqual(parseRange('bytes=0-9', 100), { start: 0, end: 10 });
  assert.deepEqual(parseRange('bytes=90-200', 100), { start: 90, end: 100 });
  assert.deepEqual(parseRange('bytes=-10', 100), { start: 90, end: 100 });
  assert.deepEqual(parseRange('bytes=50-', 100), { start: 50, end: 100 });
  assert.equal(parseRange('bytes=100-', 100), 'unsatisfiable');
  assert.equal(parseRange('bytes=0-1,5-6', 100), undefined);
  assert.equal(parseRange(undefined, 100), undefined);
  assert.equal(uploadRange(0), '0-0');
  assert.equal(uploadRange(10), '0-9');
});

test('manifest validation picks the media type and refuses mismatches', () => {
  const d = `sha256:${'b'.repeat(64)}`;
  const m = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: 'x', digest: d, size: 1 }, layers: [] }));
  assert.equal(parseManifest(m, undefined).mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.equal(parseManifest(m, 'application/vnd.docker.distribution.manifest.v2+json').kind, 'manifest');
  const idx = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] }));
  assert.equal(parseManifest(idx, 'application/json').mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.throws(() => parseManifest(idx, 'application/vnd.oci.image.manifest.v1+json'), (e: RegistryError) => e.code === 'MANIFEST_INVALID');
  assert.throws(() => parseManifest(m, 'application/x-unknown'), (e: RegistryError) => e.code === 'MANIFEST_INVALID');
});

test('every error kind has a spec-compatible status', () => {
  for (const [kind, k] of Object.entries(ERROR_KINDS)) assert.ok(k.status >= 400 && k.status < 600, kind);
  assert.equal(new RegistryError('BLOB_UPLOAD_RANGE').status, 416);
  assert.equal(new RegistryError('MANIFEST_TOO_LARGE').status, 413);
  assert.equal(new RegistryError('UNSUPPORTED').status, 405);
});

test('LRU cache evicts the least recently used, by entries and by bytes', () => {
  const c = new LruCache<number>(3, 100);
  c.set('a', 1, 10);
  c.set('b', 2, 10);
  c.set('c', 3, 10);
  assert.equal(c.get('a'), 1); // a is now the newest
  c.set('d', 4, 10);
  assert.equal(c.peek('b'), undefined);
  assert.deepEqual(['a', 'c', 'd'].map((k) => c.peek(k)), [1, 3, 4]);
  c.set('big', 5, 90);
  assert.ok(c.totalBytes <= 100);
  assert.equal(c.peek('big'), 5);
  c.set('huge', 6, 1000); // larger than the cache: not kept
  assert.equal(c.peek('huge'), undefined);
  c.deletePrefix('b');
  assert.equal(c.size, 1);
  assert.equal(c.peek('d'), 4);
});

test('config: flags > env > file > defaults', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sregcfg-'));
  try {
    const file = path.join(dir, 'r.json');
    await fs.writeFile(file, JSON.stringify({ root: '/from/file', addr: ':6000', enableDelete: false, maxManifestBytes: 1000 }));
    const d = await loadRegistryConfig({}, {});
    assert.equal(d.root, '/var/lib/sampan/registry');
    assert.equal(d.addr, '127.0.0.1:5000');
    assert.equal(d.enableDelete, true);
    const f = await loadRegistryConfig({ config: file }, {});
    assert.deepEqual([f.root, f.addr, f.enableDelete, f.maxManifestBytes], ['/from/file', ':6000', false, 1000]);
    const e = await loadRegistryConfig({ config: file }, { SAMPAN_REGISTRY_ROOT: '/from/env', SAMPAN_REGISTRY_ENABLE_DELETE: 'true', SAMPAN_REGISTRY_MAX_MANIFEST_BYTES: '2000' });
    assert.deepEqual([e.root, e.enableDelete, e.maxManifestBytes], ['/from/env', true, 2000]);
    const fl = await loadRegistryConfig({ config: file, root: '/from/flag', enableDelete: false }, { SAMPAN_REGISTRY_ROOT: '/from/env', SAMPAN_REGISTRY_ENABLE_DELETE: 'true' });
    assert.deepEqual([fl.root, fl.enableDelete], ['/from/flag', false]);
    const viaEnvFile = await loadRegistryConfig({}, { SAMPAN_REGISTRY_CONFIG: file });
    assert.equal(viaEnvFile.root, '/from/file');
    await assert.rejects(loadRegistryConfig({ addr: 'nope' }, {}), /addr/);
    await assert.rejects(loadRegistryConfig({ tlsCert: '/x' }, {}), /tls/);
    await assert.rejects(loadRegistryConfig({}, { SAMPAN_REGISTRY_MAX_MANIFEST_BYTES: 'lots' }), /not a number/);
    await fs.writeFile(file, JSON.stringify({ bogus: 1 }));
    await assert.rejects(loadRegistryConfig({ config: file }, {}), /bogus|unrecognized/i);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('mirror: a tag is served from the cache for its TTL, then re-checked upstream (fake clock)', async () => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'sregttl-'));
  try {
    const storage = new FilesystemDriver(root);
    await storage.init();
    const clock = new FakeClock();
    const manifest = (config: string) => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: sha256(config), size: config.length }, layers: [] }));
    let upstreamTag = manifest('a');
    let checks = 0;
    const upstream: Upstream = {
      readOnly: true,
      tagTtlMs: 1500,
      getManifest: async () => {
        checks++;
        return { digest: sha256(upstreamTag), mediaType: MediaType.OciManifest, bytes: upstreamTag };
      },
      getBlob: async () => undefined,
    };
    const reg = new Registry(storage, { maxManifestBytes: 1 << 20, enableDelete: false, cacheMaxBytes: 1 << 20, cacheMaxEntries: 64, upstream, log: silentLogger, now: clock.now });
    const latest = { tag: 'latest' };
    const a = await reg.getManifest('m/moving', latest);
    upstreamTag = manifest('b');
    clock.advance(1500);
    assert.equal((await reg.getManifest('m/moving', latest)).digest, a.digest, 'the tag was re-checked before its TTL');
    assert.equal(checks, 1);
    clock.advance(1);
    assert.equal((await reg.getManifest('m/moving', latest)).digest, sha256(upstreamTag));
    assert.equal(checks, 2);
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
});
