import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import { changes, treeToTar, upperToLayer } from './diff.js';
import { extractLayer } from '../../lib/tarsafe.js';

const root = await fs.mkdtemp(join(tmpdir(), 'sampan-diff-test-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

/** An overlay upper dir with one of everything: file, hard link, opaque dir, whiteout, symlink, fifo, device. */
async function makeUpper(name: string): Promise<string> {
  const u = join(root, name);
  await fs.mkdir(join(u, 'd'), { recursive: true });
  await fs.writeFile(join(u, 'a.txt'), 'hello\n');
  await fs.link(join(u, 'a.txt'), join(u, 'b.txt'));
  await fs.writeFile(join(u, 'd/n.txt'), 'n');
  execFileSync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', join(u, 'd')]);
  execFileSync('mknod', [join(u, 'gone'), 'c', '0', '0']);
  execFileSync('mknod', [join(u, 'null2'), 'c', '1', '3']);
  execFileSync('mkfifo', [join(u, 'f')]);
  await fs.symlink('a.txt', join(u, 's'));
  await fs.writeFile(join(u, 'e'), '');
  await fs.mkdir(join(u, 'skip/deep'), { recursive: true });
  for (const [p, m] of [['a.txt', 0o644], ['d', 0o755], ['d/n.txt', 0o644], ['e', 0o644], ['f', 0o644], ['null2', 0o644], ['skip', 0o755], ['skip/deep', 0o755]] as const) await fs.chmod(join(u, p), m);
  const t = new Date('2020-01-02T03:04:05Z');
  for (const p of ['a.txt', 'd/n.txt', 'd', 'e', 'skip/deep', 'skip', '.']) await fs.utimes(join(u, p), t, t);
  return u;
}

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function entries(buf: Buffer): Promise<string[]> {
  const ex = tar.extract();
  const out: string[] = [];
  const done = (async () => {
    for await (const en of ex) {
      const h = en.header;
      let body = '';
      for await (const c of en) body += (c as Buffer).toString();
      const extra = h.type === 'link' || h.type === 'symlink' ? ` -> ${h.linkname}` : h.type === 'character-device' ? ` ${h.devmajor},${h.devminor}` : body ? ` ${JSON.stringify(body)}` : '';
      out.push(`${h.name} ${h.type} ${(h.mode ?? 0).toString(8)}${extra}`);
    }
  })();
  ex.end(buf);
  await done;
  return out;
}

test('upperToLayer writes an OCI layer: whiteouts, opaque markers, hard links, devices; same tree, same bytes', async () => {
  const u = await makeUpper('u1');
  const layer = await readAll(upperToLayer(u, { exclude: new Set(['skip']) }));
  const got = await entries(layer);
  assert.deepEqual(got, [
    'a.txt file 644 "hello\\n"',
    'b.txt link 644 -> a.txt',
    'd/ directory 755',
    'd/.wh..wh..opq file 755',
    'd/n.txt file 644 "n"',
    'e file 644',
    'f fifo 644',
    '.wh.gone file 600',
    'null2 character-device 644 1,3',
    's symlink 777 -> a.txt',
  ]);
  assert.deepEqual(await readAll(upperToLayer(u, { exclude: new Set(['skip']) })), layer);

  // and back: the layer store's extraction makes the same overlay upper again
  const dest = join(root, 'x1');
  await fs.mkdir(dest);
  const { Readable } = await import('node:stream');
  await extractLayer(Readable.from([layer]), dest, { overlayWhiteouts: true, devices: true });
  const gone = await fs.lstat(join(dest, 'gone'));
  assert.ok(gone.isCharacterDevice() && gone.rdev === 0);
  assert.equal((await fs.lstat(join(dest, 'a.txt'))).ino, (await fs.lstat(join(dest, 'b.txt'))).ino);
  assert.equal(execFileSync('getfattr', ['--absolute-names', '--only-values', '-n', 'trusted.overlay.opaque', join(dest, 'd')]).toString(), 'y');
  assert.ok((await fs.lstat(join(dest, 'null2'))).isCharacterDevice());
  // device nodes only when asked for
  await assert.rejects(extractLayer(Readable.from([layer]), await fs.mkdtemp(join(root, 'x2-')), { overlayWhiteouts: true }), /device nodes are not allowed/);
});

test('changes lists an upper dir as docker diff does', async () => {
  const u = await makeUpper('u2');
  const below = new Set(['a.txt', 'd', 'd/n.txt', 'null2']);
  const got = await changes(u, async (rel) => below.has(rel), { exclude: new Set(['skip', 'f']) });
  assert.deepEqual(got, [
    { Path: '/a.txt', Kind: 0 },
    { Path: '/b.txt', Kind: 1 },
    { Path: '/d', Kind: 2 }, // opaque and there before: replaced
    { Path: '/d/n.txt', Kind: 1 }, // nothing below an opaque dir shows
    { Path: '/e', Kind: 1 },
    { Path: '/gone', Kind: 2 },
    { Path: '/null2', Kind: 0 },
    { Path: '/s', Kind: 1 },
  ]);
});

test('treeToTar writes a plain tree: no whiteout conversion', async () => {
  const u = await makeUpper('u3');
  const got = await entries(await readAll(treeToTar(u)));
  assert.ok(got.includes('gone character-device 644 0,0'), got.join('\n'));
  assert.ok(!got.some((g) => g.includes('.wh.')));
  assert.ok(got.includes('skip/deep/ directory 755'));
});
