import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { execFileSync } from 'node:child_process';
import { ContentStore } from './content.js';
import { ImageStore } from './store.js';
import { LayerStore } from '../snapshots/layers.js';
import { packTar } from './seed.js';
import { deriveImage, mergeRuntimeConfig } from './commit.js';

const root = await fs.mkdtemp(join(tmpdir(), 'sampan-commit-test-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
let n = 0;

async function openStore(dir: string): Promise<ImageStore> {
  const content = new ContentStore(join(dir, 'content'));
  await content.init();
  const layers = new LayerStore(join(dir, 'layers'));
  await layers.init();
  const store = new ImageStore(join(dir, 'images'), content, layers);
  await store.init();
  return store;
}

const listing = (dir: string) => execFileSync('find', [dir]).toString().split('\n').filter((l) => !/\/tmp-|\/ingest\//.test(l)).sort();

test('deriveImage: a layer, no layer, an empty tar; parents recorded and kept across a reopen', async () => {
  const dir = join(root, `s${n++}`);
  const store = await openStore(dir);
  const base = await deriveImage(store, undefined, {
    layer: Readable.from([await packTar([{ header: { name: 'hello', type: 'file', mode: 0o644 }, body: Buffer.from('hi') }])]),
    config: { Cmd: ['sh'] },
    history: { created_by: 'base' },
    ref: 'base:1',
  });
  assert.equal(base.layers.length, 1);
  assert.equal(base.layers[0]!.blob.mediaType, 'application/vnd.oci.image.layer.v1.tar');
  assert.equal(base.layers[0]!.blob.digest, base.layers[0]!.diffId); // kept uncompressed
  assert.equal(base.parent, undefined);
  assert.deepEqual(base.repoTags, ['base:1']);

  const meta = await deriveImage(store, base, { config: { Cmd: ['echo'] }, history: { created_by: 'CMD ["echo"]' }, author: 'me' });
  assert.equal(meta.parent, base.id);
  assert.deepEqual(meta.config.rootfs.diff_ids, base.config.rootfs.diff_ids);
  assert.deepEqual(meta.config.history?.map((h) => [h.created_by, !!h.empty_layer]), [['base', false], ['CMD ["echo"]', true]]);
  assert.equal(meta.config.author, 'me');

  // a tar with no entries adds no layer either (as Docker drops empty commit layers); so does an empty stream
  const empty = await deriveImage(store, meta, { layer: Readable.from([await packTar([])]), config: {}, history: { created_by: 'RUN true' } });
  assert.equal(empty.layers.length, 1);
  assert.equal(empty.config.history?.at(-1)?.empty_layer, true);
  const none = await deriveImage(store, meta, { layer: Readable.from([]), config: {}, history: { created_by: 'RUN :' } });
  assert.equal(none.layers.length, 1);

  const child = await deriveImage(store, meta, {
    layer: Readable.from([await packTar([{ header: { name: '.wh.hello', type: 'file', mode: 0o600 }, body: Buffer.alloc(0) }])]),
    config: meta.config.config!,
    history: { created_by: 'RUN rm /hello', comment: 'c' },
    comment: 'c',
  });
  assert.equal(child.layers.length, 2);
  assert.equal(child.layers[1]!.chainId !== child.layers[1]!.diffId, true);
  assert.equal(child.config.comment, 'c');
  assert.equal((await fs.lstat(join(store.layers.diffDir(child.layers[1]!.chainId), 'hello'))).isCharacterDevice(), true);

  const again = await openStore(dir);
  assert.equal(again.byId(child.id)?.parent, meta.id);
  assert.deepEqual(again.children(meta.id).map((i) => i.id).sort(), [empty.id, none.id, child.id].sort());
});

test('deriveImage leaves nothing behind when it fails', async () => {
  const dir = join(root, `s${n++}`);
  const store = await openStore(dir);
  const base = await deriveImage(store, undefined, {
    layer: Readable.from([await packTar([{ header: { name: 'a', type: 'file', mode: 0o644 }, body: Buffer.from('a') }])]),
    config: {},
    history: { created_by: 'base' },
    ref: 'keep:1',
  });
  const before = listing(dir);
  const tags = JSON.parse(await fs.readFile(join(dir, 'images/tags.json'), 'utf8')) as Record<string, string>;
  // a layer the store refuses (a symlink out of the root), with a tag that would move keep:1
  const bad = await packTar([
    { header: { name: 'ok', type: 'file', mode: 0o644 }, body: Buffer.from('fine') },
    { header: { name: 'esc', type: 'symlink', linkname: '../../../etc' } },
  ]);
  await assert.rejects(deriveImage(store, base, { layer: Readable.from([bad]), config: {}, history: { created_by: 'bad' }, ref: 'keep:1' }), /escapes the root/);
  assert.deepEqual(listing(dir), before);
  assert.deepEqual(JSON.parse(await fs.readFile(join(dir, 'images/tags.json'), 'utf8')), tags);
  assert.equal(store.find('keep:1')?.id, base.id);
  // a digest reference is refused before anything is read
  await assert.rejects(deriveImage(store, base, { config: {}, history: { created_by: 'x' }, ref: `x@sha256:${'0'.repeat(64)}` }), /digest/);
  assert.deepEqual(listing(dir), before);
});

test("mergeRuntimeConfig fills what the user's config leaves unset from the container's, as Docker's commit", () => {
  const base = { Env: ['PATH=/bin', 'A=1'], Cmd: ['sh'], Labels: { a: '1', b: '2' }, ExposedPorts: { '80/tcp': {} }, WorkingDir: '/w', User: 'u' };
  assert.deepEqual(mergeRuntimeConfig({ Env: ['A=2'], Labels: { b: '3' } }, base), {
    Env: ['A=2', 'PATH=/bin'],
    Labels: { a: '1', b: '3' },
    Cmd: ['sh'],
    ExposedPorts: { '80/tcp': {} },
    WorkingDir: '/w',
    User: 'u',
  });
  // an entrypoint of the user's own keeps the container's command out
  assert.deepEqual(mergeRuntimeConfig({ Entrypoint: ['/run'] }, base).Cmd, undefined);
});
