import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { ContentStore } from './content.js';
import { ImageStore } from './store.js';
import { LayerStore } from '../snapshots/layers.js';
import { loadArchive } from './load.js';
import { prepareSave, saveArchive } from './save.js';
import { importRootfs } from './import.js';
import { buildBusyboxArchive, packTar } from './seed.js';
import { SampanError } from '../../lib/errors.js';
import { hexOf, sha256, type Digest } from '../../lib/digest.js';
import { MediaType, type ImageConfig, type ImageIndex, type ImageManifest } from '../../lib/oci.js';

const root = await fs.mkdtemp(join(tmpdir(), 'sampan-archive-test-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
let n = 0;

async function newStore(): Promise<ImageStore> {
  const dir = join(root, `s${n++}`);
  const content = new ContentStore(join(dir, 'content'));
  await content.init();
  const layers = new LayerStore(join(dir, 'layers'));
  await layers.init();
  const store = new ImageStore(join(dir, 'images'), content, layers);
  await store.init();
  return store;
}

let seedCache: Buffer | undefined;
async function seed(): Promise<Buffer> {
  seedCache ??= await buildBusyboxArchive();
  return seedCache;
}

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Entries of an in-memory tar: name → body (links as "-> target"). */
async function untar(buf: Buffer): Promise<Map<string, Buffer>> {
  const ex = tar.extract();
  const out = new Map<string, Buffer>();
  const done = (async () => {
    for await (const e of ex) {
      const chunks: Buffer[] = [];
      for await (const c of e) chunks.push(c as Buffer);
      out.set(e.header.name, e.header.type === 'symlink' ? Buffer.from(`-> ${e.header.linkname}`) : Buffer.concat(chunks));
    }
  })();
  ex.end(buf);
  await done;
  return out;
}

type E = { name: string; body?: Buffer | string; type?: 'file' | 'directory' | 'symlink'; linkname?: string; mode?: number };
function layerTar(entries: E[]): Promise<Buffer> {
  return packTar(
    entries.map((e) => ({
      header: { name: e.name, type: e.type ?? (e.body !== undefined ? 'file' : 'directory'), linkname: e.linkname, mode: e.mode ?? (e.type === 'symlink' ? 0o777 : 0o755) },
      body: e.body === undefined ? undefined : Buffer.from(e.body),
    })),
  );
}

function configFor(diffIds: Digest[]): ImageConfig {
  return {
    architecture: 'amd64',
    os: 'linux',
    created: '2024-02-03T04:05:06Z',
    config: { Cmd: ['sh'] },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: diffIds.map(() => ({ created: '2024-02-03T04:05:06Z', created_by: 'test' })),
  };
}

/** A legacy docker-archive from layer tars; hooks let tests corrupt it. */
async function dockerArchive(
  layers: Buffer[],
  opts: { tag?: string; diffIds?: Digest[]; configName?: (hex: string) => string; mutateConfig?: (c: ImageConfig) => void } = {},
): Promise<Buffer> {
  const diffIds = opts.diffIds ?? layers.map((l) => sha256(l));
  const cfg = configFor(diffIds);
  opts.mutateConfig?.(cfg);
  const cfgBytes = Buffer.from(JSON.stringify(cfg));
  const hex = hexOf(sha256(cfgBytes));
  const cfgName = opts.configName ? opts.configName(hex) : `${hex}.json`;
  const dirs = layers.map((l, i) => `${hexOf(sha256(l))}${i}`);
  return packTar([
    ...layers.map((l, i) => ({ header: { name: `${dirs[i]}/layer.tar`, type: 'file' as const, mode: 0o644 }, body: l })),
    { header: { name: cfgName, type: 'file', mode: 0o644 }, body: cfgBytes },
    {
      header: { name: 'manifest.json', type: 'file', mode: 0o644 },
      body: Buffer.from(JSON.stringify([{ Config: cfgName, RepoTags: [opts.tag ?? 'evil:latest'], Layers: dirs.map((d) => `${d}/layer.tar`) }])),
    },
  ]);
}

async function snapshot(store: ImageStore) {
  const contentRoot = join(store.content.blobsDir, '..', '..');
  return {
    images: store
      .list()
      .map((i) => `${i.id} ${i.repoTags.join(',')} ${i.layers.map((l) => l.chainId).join(',')}`)
      .sort(),
    blobs: (await fs.readdir(store.content.blobsDir)).sort(),
    layers: (await fs.readdir(store.layers.dir)).sort(),
    contentRoot: (await fs.readdir(contentRoot)).sort(),
  };
}

async function expectRejectedUnchanged(store: ImageStore, archive: Buffer, msg: RegExp): Promise<void> {
  const before = await snapshot(store);
  await assert.rejects(loadArchive(Readable.from([archive]), store), (err: unknown) => {
    assert.ok(err instanceof SampanError, `not a SampanError: ${String(err)}`);
    assert.equal(err.code, 'INVALID_ARGUMENT');
    assert.match(err.message, msg);
    return true;
  });
  assert.deepEqual(await snapshot(store), before);
}

async function seeded(): Promise<ImageStore> {
  const store = await newStore();
  await loadArchive(Readable.from([await seed()]), store);
  return store;
}

test('load the seed archive: busybox:latest with one unpacked layer', async () => {
  const store = await newStore();
  const lines = await loadArchive(Readable.from([await seed()]), store);
  assert.deepEqual(lines, ['Loaded image: busybox:latest']);
  const img = store.resolve('busybox:latest');
  assert.equal(img.layers.length, 1);
  assert.deepEqual(img.repoTags, ['busybox:latest']);
  assert.deepEqual(img.config.config?.Cmd, ['sh']);
  const diff = store.layers.diffDir(img.layers[0]!.chainId);
  const st = await fs.stat(join(diff, 'bin', 'busybox'));
  assert.ok(st.isFile() && (st.mode & 0o777) === 0o755);
  assert.equal(await fs.readlink(join(diff, 'bin', 'sh')), '/bin/busybox');
  assert.equal((await fs.stat(join(diff, 'tmp'))).mode & 0o7777, 0o1777);
  assert.equal((await fs.stat(join(diff, 'root'))).mode & 0o7777, 0o700);
  assert.match(await fs.readFile(join(diff, 'etc', 'passwd'), 'utf8'), /^root:x:0:0:root:\/root:\/bin\/sh$/m);
  assert.equal(img.layers[0]!.blob.mediaType, MediaType.OciLayer);
  assert.ok(await store.content.has(img.layers[0]!.blob.digest));
  // the image ID is the digest of the config in the archive, and the seed is deterministic
  const entries = await untar(await seed());
  assert.ok(entries.has(`${hexOf(img.id)}.json`));
  assert.equal(sha256(await buildBusyboxArchive()), sha256(await seed()));
  // loading again is a no-op
  const before = await snapshot(store);
  assert.deepEqual(await loadArchive(Readable.from([gzipSync(await seed())]), store), ['Loaded image: busybox:latest']);
  assert.deepEqual(await snapshot(store), before);
});

test('save then load into a fresh store gives the same image', async () => {
  const store = await seeded();
  const id = store.resolve('busybox').id;
  await store.tag(id, 'example.com/team/bb:v1');
  const tarBuf = await readAll(await prepareSave(store, ['busybox', 'example.com/team/bb:v1']));
  const entries = await untar(tarBuf);
  assert.ok(entries.has('oci-layout') && entries.has('index.json') && entries.has('manifest.json') && entries.has('repositories'));
  const manifest = JSON.parse(entries.get('manifest.json')!.toString()) as Array<{ Config: string; RepoTags: string[]; Layers: string[] }>;
  assert.equal(manifest.length, 1);
  assert.equal(manifest[0]!.Config, `blobs/sha256/${hexOf(id)}`);
  assert.deepEqual(manifest[0]!.RepoTags.sort(), ['busybox:latest', 'example.com/team/bb:v1']);
  const index = JSON.parse(entries.get('index.json')!.toString()) as ImageIndex;
  const names = index.manifests.map((m) => m.annotations?.['io.containerd.image.name']).sort();
  assert.deepEqual(names, ['docker.io/library/busybox:latest', 'example.com/team/bb:v1']);
  assert.ok(index.manifests.every((m) => m.annotations?.['org.opencontainers.image.ref.name'] === (m.annotations?.['io.containerd.image.name']?.endsWith(':v1') ? 'v1' : 'latest')));
  for (const [name, body] of entries) {
    const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(name);
    if (m) assert.equal(sha256(body), `sha256:${m[1]}`, name);
  }

  const other = await newStore();
  const lines = await loadArchive(Readable.from([tarBuf]), other);
  assert.deepEqual(lines.sort(), ['Loaded image: busybox:latest', 'Loaded image: example.com/team/bb:v1']);
  const copy = other.resolve('busybox:latest');
  assert.equal(copy.id, id);
  assert.equal(copy.manifest, store.resolve('busybox').manifest);
  assert.deepEqual(copy.layers.map((l) => l.chainId), store.resolve('busybox').layers.map((l) => l.chainId));

  // saving by ID gives an untagged image
  const byId = await readAll(saveArchive(store, [hexOf(id).slice(0, 12)]));
  const third = await newStore();
  assert.deepEqual(await loadArchive(Readable.from([byId]), third), [`Loaded image ID: ${id}`]);
  assert.deepEqual(third.byId(id)?.repoTags, []);
});

test('save of an unknown image fails before streaming', async () => {
  const store = await seeded();
  await assert.rejects(prepareSave(store, ['busybox', 'nosuch:1']), /No such image: nosuch:1/);
  assert.throws(() => saveArchive(store, ['nosuch']), /No such image: nosuch/);
});

test('load an OCI layout (save output without manifest.json)', async () => {
  const store = await seeded();
  const entries = await untar(await readAll(saveArchive(store, ['busybox:latest'])));
  entries.delete('manifest.json');
  entries.delete('repositories');
  const oci = await packTar(
    [...entries].filter(([name]) => !name.endsWith('/')).map(([name, body]) => ({ header: { name, type: 'file' as const, mode: 0o644 }, body })),
  );
  const other = await newStore();
  assert.deepEqual(await loadArchive(Readable.from([oci]), other), ['Loaded image: busybox:latest']);
  assert.equal(other.resolve('busybox').id, store.resolve('busybox').id);
});

test('load a hand-made OCI layout: nested index, gzip layers, untagged ref name', async () => {
  const l1 = await layerTar([{ name: 'etc/' }, { name: 'etc/hello', body: 'hi\n', mode: 0o644 }]);
  const l2 = await layerTar([{ name: 'etc/.wh.hello', body: '' }, { name: 'data/' }, { name: 'data/x', body: 'x', mode: 0o600 }]);
  const g1 = gzipSync(l1);
  const cfg = configFor([sha256(l1), sha256(l2)]);
  const cfgBytes = Buffer.from(JSON.stringify(cfg));
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: sha256(cfgBytes), size: cfgBytes.length },
    layers: [
      { mediaType: MediaType.OciLayerGzip, digest: sha256(g1), size: g1.length },
      { mediaType: MediaType.OciLayer, digest: sha256(l2), size: l2.length },
    ],
  };
  const mBytes = Buffer.from(JSON.stringify(manifest));
  const armManifest = Buffer.from('{"schemaVersion":2,"config":{},"layers":[]}');
  const inner: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: [
      { mediaType: MediaType.OciManifest, digest: sha256(armManifest), size: armManifest.length, platform: { os: 'linux', architecture: 'arm64' } },
      { mediaType: MediaType.OciManifest, digest: sha256(mBytes), size: mBytes.length, platform: { os: 'linux', architecture: 'amd64' } },
    ],
  };
  const innerBytes = Buffer.from(JSON.stringify(inner));
  const index: ImageIndex = {
    schemaVersion: 2,
    manifests: [{ mediaType: MediaType.OciIndex, digest: sha256(innerBytes), size: innerBytes.length, annotations: { 'org.opencontainers.image.ref.name': '1' } }],
  };
  const blobs = [g1, l2, cfgBytes, mBytes, armManifest, innerBytes];
  const layout = await packTar([
    { header: { name: 'oci-layout', type: 'file', mode: 0o644 }, body: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
    { header: { name: 'index.json', type: 'file', mode: 0o644 }, body: Buffer.from(JSON.stringify(index)) },
    ...blobs.map((b) => ({ header: { name: `blobs/sha256/${hexOf(sha256(b))}`, type: 'file' as const, mode: 0o644 }, body: b })),
  ]);
  const store = await newStore();
  const id = sha256(cfgBytes);
  assert.deepEqual(await loadArchive(Readable.from([gzipSync(layout)]), store), [`Loaded image ID: ${id}`]);
  const img = store.byId(id)!;
  assert.equal(img.manifest, sha256(mBytes));
  assert.deepEqual(img.layers.map((l) => l.blob.mediaType), [MediaType.OciLayerGzip, MediaType.OciLayer]);
  const top = store.layers.diffDir(img.layers[1]!.chainId);
  assert.ok((await fs.stat(join(top, 'etc', 'hello'))).isCharacterDevice()); // overlay whiteout
  assert.equal(await fs.readFile(join(top, 'data', 'x'), 'utf8'), 'x');

  // the same layout with a full name is tagged; a blob that does not match its name is refused
  index.manifests[0]!.annotations = { 'org.opencontainers.image.ref.name': 'example.com/x/y:2' };
  const named = await packTar([
    { header: { name: 'index.json', type: 'file', mode: 0o644 }, body: Buffer.from(JSON.stringify(index)) },
    ...blobs.map((b) => ({ header: { name: `blobs/sha256/${hexOf(sha256(b))}`, type: 'file' as const, mode: 0o644 }, body: b })),
  ]);
  assert.deepEqual(await loadArchive(Readable.from([named]), store), ['Loaded image: example.com/x/y:2']);
  const corrupt = await packTar([
    { header: { name: 'index.json', type: 'file', mode: 0o644 }, body: Buffer.from(JSON.stringify(index)) },
    ...blobs.map((b, i) => ({ header: { name: `blobs/sha256/${hexOf(sha256(b))}`, type: 'file' as const, mode: 0o644 }, body: i === 1 ? Buffer.concat([b, Buffer.alloc(512)]) : b })),
  ]);
  await expectRejectedUnchanged(await newStore(), corrupt, /does not match its digest/);
});

test('bad archives are rejected and leave the store unchanged', async (t) => {
  const store = await seeded();
  const good = await layerTar([{ name: 'good/' }, { name: 'good/file', body: 'ok\n', mode: 0o644 }]);

  await t.test('layer entry escaping the root', async () => {
    const evil = await layerTar([{ name: 'x/' }, { name: '../evil', body: 'boom', mode: 0o644 }]);
    await expectRejectedUnchanged(store, await dockerArchive([good, evil]), /escapes the root/);
    await fs.access(join(store.layers.dir, '..', 'evil')).then(
      () => assert.fail('evil written'),
      () => undefined,
    );
  });

  await t.test('write through a symlink', async () => {
    const evil = await layerTar([
      { name: 'link', type: 'symlink', linkname: '/etc' },
      { name: 'link/passwd', body: 'root::0:0::/:/bin/sh\n', mode: 0o644 },
    ]);
    await expectRejectedUnchanged(store, await dockerArchive([good, evil]), /symlink/);
  });

  await t.test('truncated archive', async () => {
    const full = await dockerArchive([good, await layerTar([{ name: 'big', body: Buffer.alloc(100_000, 7) }])]);
    await expectRejectedUnchanged(store, full.subarray(0, 60_000), /Unexpected end of data|not found|bad archive/);
    const gz = gzipSync(full);
    await expectRejectedUnchanged(store, gz.subarray(0, Math.floor(gz.length / 2)), /unexpected end of file|bad archive/i);
  });

  await t.test('config digest does not match its name', async () => {
    const arch = await dockerArchive([good], { configName: (hex) => `${hex.replace(/^./, (c) => (c === 'a' ? 'b' : 'a'))}.json` });
    await expectRejectedUnchanged(store, arch, /does not match its digest/);
  });

  await t.test('layer does not match its diff ID', async () => {
    const other = await layerTar([{ name: 'other', body: 'different' }]);
    const arch = await dockerArchive([good, other], { diffIds: [sha256(good), sha256(good)] });
    await expectRejectedUnchanged(store, arch, /does not match its diff ID/);
  });

  await t.test('outer entry escaping the root, and garbage', async () => {
    const arch = await packTar([{ header: { name: '../manifest.json', type: 'file', mode: 0o644 }, body: Buffer.from('[]') }]);
    await expectRejectedUnchanged(store, arch, /escapes the root/);
    await expectRejectedUnchanged(store, Buffer.from('this is not a tar at all, not even close'.repeat(20)), /invalid image archive/);
    await expectRejectedUnchanged(store, await packTar([{ header: { name: 'x', type: 'file' }, body: Buffer.from('x') }]), /neither manifest.json nor index.json/);
  });

  await t.test('layer count differs from diff IDs', async () => {
    await expectRejectedUnchanged(store, await dockerArchive([good], { diffIds: [sha256(good), sha256(good)] }), /1 layers but the config lists 2/);
  });

  // and a good archive still loads afterwards
  assert.deepEqual(await loadArchive(Readable.from([await dockerArchive([good], { tag: 'fine:1' })]), store), ['Loaded image: fine:1']);
  assert.equal(store.resolve('fine:1').layers.length, 1);
});

test('docker-archive layer.tar symlinks: to another layer dir and to blobs/, never outside', async () => {
  const l1 = await layerTar([{ name: 'one', body: '1' }]);
  const l2 = await layerTar([{ name: 'two', body: '2' }]);
  const cfgBytes = Buffer.from(JSON.stringify(configFor([sha256(l1), sha256(l2), sha256(l1)])));
  const cfgHex = hexOf(sha256(cfgBytes));
  const build = (thirdLink: string) =>
    packTar([
      { header: { name: `blobs/sha256/${hexOf(sha256(l2))}`, type: 'file', mode: 0o644 }, body: l2 },
      { header: { name: 'aaa/layer.tar', type: 'file', mode: 0o644 }, body: l1 },
      { header: { name: 'bbb/layer.tar', type: 'symlink', linkname: `../blobs/sha256/${hexOf(sha256(l2))}` } },
      { header: { name: 'ccc/layer.tar', type: 'symlink', linkname: thirdLink } },
      { header: { name: `${cfgHex}.json`, type: 'file', mode: 0o644 }, body: cfgBytes },
      {
        header: { name: 'manifest.json', type: 'file', mode: 0o644 },
        body: Buffer.from(JSON.stringify([{ Config: `${cfgHex}.json`, RepoTags: ['linked:1'], Layers: ['aaa/layer.tar', 'bbb/layer.tar', 'ccc/layer.tar'] }])),
      },
    ]);
  const store = await newStore();
  assert.deepEqual(await loadArchive(Readable.from([await build('../aaa/layer.tar')]), store), ['Loaded image: linked:1']);
  const img = store.resolve('linked:1');
  assert.equal(img.id, `sha256:${cfgHex}`);
  assert.equal(img.layers.length, 3);
  assert.equal(await fs.readFile(join(store.layers.diffDir(img.layers[1]!.chainId), 'two'), 'utf8'), '2');
  const fresh = await newStore();
  await expectRejectedUnchanged(fresh, await build('../../../etc/passwd'), /escapes the archive/);
  await expectRejectedUnchanged(fresh, await build('/etc/passwd'), /absolute symlink/);
});

test('import a rootfs tar with changes', async () => {
  const store = await newStore();
  const rootfs = gzipSync(await layerTar([{ name: 'bin/' }, { name: 'bin/app', body: '#!/bin/sh\necho hi\n', mode: 0o755 }]));
  const img = await importRootfs(Readable.from([rootfs]), store, {
    ref: 'imported:v1',
    message: 'from test',
    changes: ['CMD /bin/app --flag', 'ENTRYPOINT ["/bin/sh", "-c"]', 'ENV A=1 B="two words"', 'ENV C three words', 'EXPOSE 80 53/udp', 'LABEL a=b "c d"=e', 'USER 1000:1000', 'WORKDIR /srv', 'WORKDIR data', 'VOLUME ["/v1", "/v2"]', 'STOPSIGNAL SIGINT'],
  });
  assert.deepEqual(img.repoTags, ['imported:v1']);
  const c = img.config.config!;
  assert.deepEqual(c.Cmd, ['/bin/sh', '-c', '/bin/app --flag']);
  assert.deepEqual(c.Entrypoint, ['/bin/sh', '-c']);
  assert.deepEqual(c.Env, ['A=1', 'B=two words', 'C=three words']);
  assert.deepEqual(Object.keys(c.ExposedPorts!).sort(), ['53/udp', '80/tcp']);
  assert.deepEqual(c.Labels, { a: 'b', 'c d': 'e' });
  assert.equal(c.User, '1000:1000');
  assert.equal(c.WorkingDir, '/srv/data');
  assert.deepEqual(Object.keys(c.Volumes!).sort(), ['/v1', '/v2']);
  assert.equal(c.StopSignal, 'SIGINT');
  assert.equal(img.config.history?.[0]?.comment, 'from test');
  assert.equal(img.layers[0]!.blob.mediaType, MediaType.OciLayerGzip);
  assert.equal(img.layers[0]!.blob.digest, sha256(rootfs));
  assert.equal(await fs.readFile(join(store.layers.diffDir(img.layers[0]!.chainId), 'bin', 'app'), 'utf8'), '#!/bin/sh\necho hi\n');

  const before = await snapshot(store);
  await assert.rejects(importRootfs(Readable.from([rootfs]), store, { changes: ['RUN rm -rf /'] }), /RUN is not a valid change command/);
  await assert.rejects(importRootfs(Readable.from([rootfs]), store, { changes: ['EXPOSE 99999'] }), /invalid port/);
  const evil = await layerTar([{ name: 'ok', body: 'x' }, { name: '../../evil', body: 'x' }]);
  await assert.rejects(importRootfs(Readable.from([evil]), store, { ref: 'evil:1' }), (err: unknown) => err instanceof SampanError && err.code === 'INVALID_ARGUMENT' && /escapes the root/.test(err.message));
  assert.deepEqual(await snapshot(store), before);
  assert.equal(store.find('evil:1'), undefined);
});
