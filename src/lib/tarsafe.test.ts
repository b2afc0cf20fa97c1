import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { Readable } from 'node:stream';
import os from 'node:os';
import path from 'node:path';
import tar from 'tar-stream';
import { SampanError } from './errors.js';
import { extractLayer, safeEntryPath, symlinkEscapes } from './tarsafe.js';
import { ExtractPool } from '../engine/snapshots/extract-pool.js';

type Entry = Partial<tar.Header> & { name: string; body?: string };

async function packTar(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const { body, ...h } of entries) {
    if (body !== undefined) pack.entry({ mode: 0o644, mtime: new Date(1_600_000_000_000), ...h }, Buffer.from(body));
    else pack.entry({ mode: 0o755, mtime: new Date(1_600_000_000_000), type: 'directory', ...h });
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

async function tmp(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'tarsafe-'));
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

const entries: Entry[] = [
  { name: 'etc/deep/file.txt', body: 'first' },
  { name: 'etc/deep/file.txt', body: 'second wins' }, // a later entry replaces an earlier one
  { name: 'etc', mode: 0o750 }, // a directory entry after its children still sets its mode
  { name: 'bin/su', body: 'x', mode: 0o4755 },
  { name: 'tmp', mode: 0o1777 },
  { name: 'home/user/.profile', body: 'p', uid: 1000, gid: 1000 },
  { name: 'swap', body: 'file first' },
  { name: 'swap', mode: 0o700 }, // then a directory in its place
  { name: 'swap/inside', body: 'in' },
  { name: 'link', type: 'symlink', linkname: 'etc/deep/file.txt' },
  { name: 'hard', type: 'link', linkname: 'bin/su' },
];

async function check(dir: string): Promise<void> {
  assert.equal(await fs.readFile(path.join(dir, 'etc/deep/file.txt'), 'utf8'), 'second wins');
  assert.equal((await fs.stat(path.join(dir, 'etc'))).mode & 0o7777, 0o750);
  assert.equal((await fs.stat(path.join(dir, 'bin/su'))).mode & 0o7777, 0o4755);
  assert.equal((await fs.stat(path.join(dir, 'tmp'))).mode & 0o7777, 0o1777);
  const prof = await fs.stat(path.join(dir, 'home/user/.profile'));
  if (process.getuid?.() === 0) assert.deepEqual([prof.uid, prof.gid], [1000, 1000]);
  assert.equal(prof.mtimeMs, 1_600_000_000_000);
  assert.ok((await fs.stat(path.join(dir, 'swap'))).isDirectory());
  assert.equal(await fs.readFile(path.join(dir, 'swap/inside'), 'utf8'), 'in');
  assert.equal(await fs.readlink(path.join(dir, 'link')), 'etc/deep/file.txt');
  assert.equal((await fs.stat(path.join(dir, 'hard'))).ino, (await fs.stat(path.join(dir, 'bin/su'))).ino);
}

test('extractLayer: replaced entries, late directory modes, special bits, owners, times, links', async () => {
  const t = await packTar(entries);
  const dir = await tmp();
  try {
    const r = await extractLayer(Readable.from([t]), dir);
    assert.equal(r.diffId, sha(t));
    await check(dir);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('ExtractPool unpacks on worker threads with the same result, and reports errors with their code', async () => {
  const pool = new ExtractPool(2);
  const t = await packTar(entries);
  const dirs = [await tmp(), await tmp(), await tmp()];
  try {
    // more extractions than workers: the third waits for one
    const gz = gzipSync(t);
    const rs = await Promise.all(dirs.map((d, i) => pool.extract(Readable.from(i === 1 ? [gz.subarray(0, 10), gz.subarray(10)] : [t]), d)));
    for (const [i, r] of rs.entries()) {
      assert.equal(r.diffId, sha(t));
      await check(dirs[i]!);
    }
    const bad = await packTar([{ name: '../escape', body: 'x' }]);
    const out = await tmp();
    await assert.rejects(pool.extract(Readable.from([bad]), out), (err: Error & { code?: string }) => err.code === 'INVALID_ARGUMENT' && /escapes the root/.test(err.message));
    // a source that fails midway fails the extraction
    const failing = new Readable({ read() {} });
    failing.push(t.subarray(0, 1024));
    setTimeout(() => failing.destroy(new Error('connection reset')), 20);
    const cut = await tmp();
    dirs.push(cut);
    await assert.rejects(pool.extract(failing, cut));
    // and the pool still works afterwards
    const again = await tmp();
    assert.equal((await pool.extract(Readable.from([t]), again)).diffId, sha(t));
    dirs.push(out, again);
  } finally {
    pool.close();
    for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  }
});

// ---- properties

const segment = fc.constantFrom('a', 'b', '..', '.', '', 'c d', '.wh.a', '.wh..wh..opq');
const entryName = fc.tuple(fc.boolean(), fc.array(segment, { minLength: 1, maxLength: 4 })).map(([abs, parts]) => `${abs ? '/' : ''}${parts.join('/')}`);
const inside = (root: string, p: string) => p === root || p.startsWith(`${root}/`);

test('property: an entry name is refused (400) or a relative path that stays in the root', () => {
  fc.assert(
    fc.property(fc.oneof(entryName, fc.string()), (name) => {
      let rel: string;
      try {
        rel = safeEntryPath(name);
      } catch (err) {
        assert.ok(err instanceof SampanError && err.code === 'INVALID_ARGUMENT', String(err));
        return;
      }
      assert.ok(!rel.startsWith('/') && !rel.split('/').some((p) => p === '..' || p === '.' || (p === '' && rel !== '')), rel);
      assert.ok(inside('/root', path.posix.resolve('/root', rel)));
    }),
    { numRuns: 3000 },
  );
});

test('property: a relative symlink passed as safe resolves inside the root', () => {
  fc.assert(
    fc.property(entryName, fc.array(segment, { minLength: 1, maxLength: 5 }), (name, target) => {
      const rel = safeEntryPath(name.replace(/^\/+/, '').replace(/(^|\/)\.\.(?=\/|$)/g, '$1x'));
      if (rel === '' || target[0] === '' || symlinkEscapes(rel, target.join('/'))) return; // absolute targets are the container's
      assert.ok(inside('/root', path.posix.resolve('/root', path.posix.dirname(rel), target.join('/'))), `${rel} -> ${target.join('/')}`);
    }),
    { numRuns: 3000 },
  );
});

/** Every path under `dir`, without following symlinks (Node's recursive readdir does, and one to / walks the host). */
async function treeNoFollow(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    out.push(p);
    if (e.isDirectory()) out.push(...(await treeNoFollow(p)));
  }
  return out;
}

test('property: extracting any archive writes nothing outside its directory, and fails only with a 400', async () => {
  const entry = fc.oneof(
    fc.record({ name: entryName, body: fc.constantFrom('x', '') }),
    fc.record({ name: entryName, type: fc.constant('directory' as const) }),
    fc.record({ name: entryName, type: fc.constant('symlink' as const), linkname: fc.oneof(entryName, fc.constantFrom('/etc', '../../..', 'a/../..')) }),
    fc.record({ name: entryName, type: fc.constant('link' as const), linkname: entryName }),
  );
  const top = await tmp();
  try {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(entry, { minLength: 1, maxLength: 8 }), async (list) => {
        // the root four levels down: four ".." of a bad name would land in `top`
        const box = path.join(top, String(run++));
        const root = path.join(box, '1/2/3/root');
        await fs.mkdir(root, { recursive: true });
        try {
          await extractLayer(Readable.from([await packTar(list)]), root);
        } catch (err) {
          assert.ok(err instanceof SampanError && err.code === 'INVALID_ARGUMENT', String(err));
        }
        for (const p of await treeNoFollow(box)) assert.ok(inside(root, p) || inside(p, root), `${p} written outside ${root}`);
        await fs.rm(box, { recursive: true, force: true });
      }),
      { numRuns: 150 },
    );
  } finally {
    await fs.rm(top, { recursive: true, force: true });
  }
});
