import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import os from 'node:os';
import path from 'node:path';
import { isCode } from '../../lib/errors.js';
import { pieceCount, type TaskId, type TaskMeta } from '../protocol.js';
import { EMPTY_BLOB_DIGEST, PieceStore, type EvictedTask, type StoredTask } from './index.js';

const hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Blob {
  buf: Buffer;
  id: TaskId;
  meta: TaskMeta;
  piece(n: number): Buffer;
}

function blob(size: number, pieceSize: number, buf = randomBytes(size)): Blob {
  const piece = (n: number) => buf.subarray(n * pieceSize, Math.min(size, (n + 1) * pieceSize));
  const digests = Array.from({ length: pieceCount(size, pieceSize) }, (_, n) => hex(piece(n)));
  return { buf, id: `sha256:${hex(buf)}`, meta: { size, pieceSize, pieceDigests: digests }, piece };
}

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true }))));

async function tmp(): Promise<string> {
  const d = await fs.mkdtemp(path.join(os.tmpdir(), 'piecestore-'));
  dirs.push(d);
  return d;
}

async function store(dir: string, maxBytes = 1 << 30, writeGraceMs?: number): Promise<PieceStore> {
  const s = new PieceStore({ dir, maxBytes, writeGraceMs });
  await s.init();
  return s;
}

async function collect(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const shuffle = <T>(a: T[]): T[] => {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function writeAll(t: StoredTask, b: Blob, order = shuffle([...Array(t.total).keys()])): Promise<void> {
  for (const n of order) assert.equal(await t.writePiece(n, b.piece(n)), true);
}

test('pieces written out of order and concurrently stream in order; a stream started first gets every byte', async () => {
  const s = await store(await tmp());
  const b = blob(1000 * 37 + 11, 1000); // last piece shorter
  const t = await s.open(b.id, { ...b.meta, pieceDigests: [] }); // digests learnt later, as from a seed
  assert.equal(t.total, 38);
  const early = collect(t.stream());
  const ranged = collect(t.stream(2500, 7001));
  const seen: number[] = [];
  t.on('piece', (n) => seen.push(n));
  const order = shuffle([...Array(t.total).keys()]);
  // a few writers at a time, as from several parents, with digests arriving midway
  const lanes = [0, 1, 2, 3].map(async (lane) => {
    for (let i = lane; i < order.length; i += 4) {
      const n = order[i]!;
      if (i === 20) t.setMeta(b.meta);
      assert.equal(await t.writePiece(n, b.piece(n)), true);
      await sleep(Math.random() * 3);
    }
  });
  await Promise.all(lanes);
  assert.deepEqual((await early).equals(b.buf), true);
  assert.deepEqual(await ranged, b.buf.subarray(2500, 7001));
  assert.equal(await t.finish(), true);
  assert.equal(t.complete, true);
  assert.deepEqual(t.meta.pieceDigests, b.meta.pieceDigests);
  assert.deepEqual([...seen].sort((x, y) => x - y), [...Array(t.total).keys()]);
  assert.deepEqual(t.held(), [...Array(t.total).keys()]);
  assert.equal(await t.writePiece(3, b.piece(3)), true); // idempotent
  assert.deepEqual(await t.readPiece(37), b.piece(37));
  assert.ok((await fs.readFile(path.join(t.dir, 'complete'), 'utf8')).includes(b.id));
  await s.close();
});

test('range streams: boundaries, inside one piece, empty, the tail; bad ranges refused', async () => {
  const s = await store(await tmp());
  const b = blob(10_000, 1024);
  const t = await s.open(b.id, b.meta);
  // started before the pieces exist
  const ranges: Array<[number, number]> = [
    [0, 1024],
    [1023, 1025],
    [100, 200],
    [5000, 5000],
    [9999, 10_000],
    [3000, 10_000],
    [0, 10_000],
  ];
  const pending = ranges.map(([a, z]) => collect(t.stream(a, z)));
  await writeAll(t, b);
  for (const [i, [a, z]] of ranges.entries()) assert.deepEqual(await pending[i], b.buf.subarray(a, z), `[${a},${z})`);
  // and on a complete task
  assert.deepEqual(await collect(t.stream(4097)), b.buf.subarray(4097));
  assert.throws(() => t.stream(5, 4), (e) => isCode(e, 'INVALID_ARGUMENT'));
  assert.throws(() => t.stream(0, 10_001), (e) => isCode(e, 'INVALID_ARGUMENT'));
  await s.close();
});

test('ranges are served before completion; a read of the whole blob waits for the digest', async () => {
  const s = await store(await tmp());
  const b = blob(4096, 1024);
  const t = await s.open(b.id, b.meta);
  for (const n of [0, 1, 3]) await t.writePiece(n, b.piece(n));
  assert.deepEqual(await collect(t.stream(0, 2048)), b.buf.subarray(0, 2048));
  assert.deepEqual(await collect(t.stream(3072, 4096)), b.piece(3)); // the last piece, as served to a peer
  await t.writePiece(2, b.piece(2));
  const corrupt = blob(4096, 1024);
  const t2 = await s.open(corrupt.id, b.meta); // wrong digests: the blob will fail
  for (const n of [0, 1, 2]) await t2.writePiece(n, b.piece(n));
  let ended = false;
  const full = collect(t2.stream()).then((x) => ((ended = true), x));
  await sleep(30);
  assert.equal(ended, false);
  await t2.writePiece(3, b.piece(3));
  await assert.rejects(full, /assembled blob/);
  assert.deepEqual(await collect(t.stream()), b.buf);
  await s.close();
});

test('a full read started mid-download ends once the blob is verified', async () => {
  const s = await store(await tmp());
  const b = blob(4096, 1024);
  const t = await s.open(b.id, b.meta);
  for (const n of [0, 1, 2]) await t.writePiece(n, b.piece(n));
  let ended = false;
  const full = collect(t.stream()).then((x) => ((ended = true), x));
  await sleep(30);
  assert.equal(ended, false);
  await t.writePiece(3, b.piece(3));
  assert.deepEqual(await full, b.buf);
  await s.close();
});

test('digest and length mismatches are refused and write nothing; unknown digests are checked once learnt', async () => {
  const s = await store(await tmp());
  const b = blob(4000, 1000);
  const t = await s.open(b.id, { ...b.meta, pieceDigests: b.meta.pieceDigests.slice(0, 2) });
  const bad = Buffer.from(b.piece(0));
  bad[7] ^= 1;
  assert.equal(await t.writePiece(0, bad), false);
  assert.equal(await t.writePiece(0, b.piece(0).subarray(1)), false); // short
  assert.equal(t.has(0), false);
  assert.equal((await fs.readFile(path.join(t.dir, 'data'))).subarray(0, 1000).every((x) => x === 0), true);
  // no meta digest: the parent's claim is checked
  assert.equal(await t.writePiece(2, b.piece(2), `sha256:${hex(bad)}`), false);
  assert.equal(await t.writePiece(2, b.piece(2), hex(b.piece(2))), true);
  assert.equal(t.pieceDigest(2), b.meta.pieceDigests[2]);
  // neither: accepted on its own digest, dropped when the real digest disagrees
  const wrong3 = randomBytes(1000);
  assert.equal(await t.writePiece(3, wrong3), true);
  const dropped: number[][] = [];
  t.on('dropped', (ns) => dropped.push(ns));
  t.setMeta(b.meta);
  assert.deepEqual(dropped, [[3]]);
  assert.equal(t.has(3), false);
  assert.equal(t.has(2), true);
  await assert.rejects(t.readPiece(3), (e) => isCode(e, 'NOT_FOUND'));
  // known digests never change, the size never changes
  const forged = [...b.meta.pieceDigests];
  forged[1] = hex(bad);
  assert.throws(() => t.setMeta({ ...b.meta, pieceDigests: forged }), (e) => isCode(e, 'CONFLICT'));
  assert.throws(() => t.setMeta({ ...b.meta, size: 4001 }), (e) => isCode(e, 'CONFLICT'));
  await assert.rejects(t.writePiece(4, b.piece(0)), (e) => isCode(e, 'INVALID_ARGUMENT'));
  await s.close();
});

test('two parents racing on one piece: the good copy wins whichever comes first', async () => {
  const s = await store(await tmp());
  const b = blob(3000, 1000);
  const t = await s.open(b.id, b.meta);
  const bad = randomBytes(1000);
  const results = await Promise.all([t.writePiece(1, bad), t.writePiece(1, b.piece(1)), t.writePiece(1, b.piece(1))]);
  assert.deepEqual(results, [false, true, true]);
  assert.deepEqual(await t.readPiece(1), b.piece(1));
  await s.close();
});

test('finish() catches pieces that match lying digests but not the blob; the task can then be refilled', async () => {
  const s = await store(await tmp());
  const good = blob(5000, 1000);
  const corrupt = blob(5000, 1000);
  const t = await s.open(good.id, corrupt.meta); // a seed that published digests of bad data
  const full = collect(t.stream());
  const failed = new Promise<Error>((r) => t.once('failed', r));
  for (let n = 0; n < 5; n++) assert.equal(await t.writePiece(n, corrupt.piece(n)), true);
  assert.equal(await t.finish(), false);
  assert.match((await failed).message, /assembled blob/);
  await assert.rejects(full, /assembled blob/); // a full read never ends well on a bad blob
  assert.equal(t.complete, false);
  assert.deepEqual(t.held(), []);
  assert.deepEqual(t.meta.pieceDigests, []);
  assert.equal(await fs.stat(path.join(t.dir, 'complete')).catch(() => undefined), undefined);
  t.setMeta(good.meta);
  await writeAll(t, good);
  assert.equal(await t.finish(), true);
  assert.deepEqual(await collect(t.stream()), good.buf);
  await s.close();
});

test('the empty blob has no pieces and is complete at once; size 0 under another digest is refused', async () => {
  const s = await store(await tmp());
  const t = await s.open(EMPTY_BLOB_DIGEST, { size: 0, pieceSize: 1 << 20, pieceDigests: [] });
  assert.equal(t.complete, true);
  assert.equal(t.total, 0);
  assert.deepEqual(await collect(t.stream()), Buffer.alloc(0));
  const other = blob(10, 4).id;
  await assert.rejects(s.open(other, { size: 0, pieceSize: 4, pieceDigests: [] }), (e) => isCode(e, 'INVALID_ARGUMENT'));
  await assert.rejects(s.open('sha256:nope', { size: 1, pieceSize: 4, pieceDigests: [] }), (e) =>
    isCode(e, 'INVALID_ARGUMENT'),
  );
  await s.close();
  const again = await store(s.dir);
  assert.equal(again.task(EMPTY_BLOB_DIGEST)?.complete, true);
  await again.close();
});

test('restart: held pieces stay held, complete stays complete, torn pieces go, unflushed pieces come back', async () => {
  const dir = await tmp();
  const s = await store(dir);
  const done = blob(3000, 1000);
  const part = blob(8000, 1000);
  const mine = blob(3000, 1000); // pieces with no digest known yet: kept on the digest computed here
  const td = await s.open(done.id, done.meta);
  await writeAll(td, done);
  assert.equal(await td.finish(), true);
  const tp = await s.open(part.id, part.meta);
  for (const n of [0, 2, 5, 7]) await tp.writePiece(n, part.piece(n));
  const tm = await s.open(mine.id, { ...mine.meta, pieceDigests: [] });
  await tm.writePiece(1, mine.piece(1));
  await tp.flush();
  await tm.flush();
  // a crash right now: the copy has pieces 3 and 4 in data but not in meta.json
  await tp.writePiece(3, part.piece(3));
  await tp.writePiece(4, part.piece(4));
  const crashed = await tmp();
  await fs.cp(dir, crashed, { recursive: true });
  await s.close();

  const s2 = await store(dir);
  assert.equal(s2.task(done.id)?.complete, true);
  assert.deepEqual(await collect(s2.task(done.id)!.stream()), done.buf);
  assert.deepEqual(s2.task(part.id)?.held(), [0, 2, 3, 4, 5, 7]);
  assert.deepEqual(s2.task(mine.id)?.held(), [1]);
  assert.equal(s2.task(mine.id)?.pieceDigest(1), hex(mine.piece(1)));
  await s2.close();

  // corrupt piece 2 of the partial blob on disk, plant junk, then load the crash copy
  const hexPart = part.id.slice(7);
  const fh = await fs.open(path.join(crashed, hexPart, 'data'), 'r+');
  await fh.write(Buffer.from('garbage'), 0, 7, 2000 + 10);
  await fh.close();
  await fs.mkdir(path.join(crashed, 'a'.repeat(64)));
  await fs.writeFile(path.join(crashed, '.tmp-meta.json-123'), 'x');
  await fs.mkdir(path.join(crashed, 'not-a-task'));
  const s3 = await store(crashed);
  assert.deepEqual(s3.task(part.id)?.held(), [0, 3, 4, 5, 7]);
  assert.equal(s3.task(done.id)?.complete, true);
  const names = (await fs.readdir(crashed)).sort();
  assert.deepEqual(names, [done.id.slice(7), hexPart, mine.id.slice(7), 'not-a-task'].sort());
  // the rest arrives after the restart and the blob completes
  const tp3 = s3.task(part.id)!;
  for (const n of [1, 2, 6]) await tp3.writePiece(n, part.piece(n));
  assert.equal(await tp3.finish(), true);
  assert.deepEqual(await collect(tp3.stream()), part.buf);
  await s3.close();
});

test('LRU: idle complete tasks go first, least recently used first; read or recently written tasks stay', async () => {
  const dir = await tmp();
  const S = 4000;
  const s = await store(dir, 3 * S, 0);
  const evicted: EvictedTask[] = [];
  s.on('evict', (e) => evicted.push(e));
  const [a, b, c, d, e, f] = [1, 2, 3, 4, 5, 6].map(() => blob(S, 1000));
  const ta = await s.open(a!.id, a!.meta);
  await writeAll(ta, a!);
  await ta.finish();
  const tb = await s.open(b!.id, b!.meta);
  await tb.writePiece(0, b!.piece(0)); // incomplete, idle
  await sleep(5);
  const tc = await s.open(c!.id, c!.meta);
  await writeAll(tc, c!);
  await tc.finish();
  await sleep(5);
  ta.touch(); // a is now more recent than c
  // d needs room: the complete c (LRU among complete) goes before the older but incomplete b
  await s.open(d!.id, d!.meta);
  assert.deepEqual(
    evicted.map((x) => x.id),
    [c!.id],
  );
  assert.equal(evicted[0]!.complete, true);
  assert.equal(s.task(c!.id), undefined);
  await assert.rejects(tc.readPiece(0), (err) => isCode(err, 'NOT_FOUND'));
  // a is being read (a stream open, not even consumed): b then d go instead, oldest first
  const reading = ta.stream();
  await s.open(e!.id, e!.meta);
  await s.open(f!.id, f!.meta);
  assert.deepEqual(
    evicted.map((x) => x.id),
    [c!.id, b!.id, d!.id],
  );
  assert.ok(s.task(a!.id));
  assert.ok(s.stats().usedBytes <= 3 * S);
  assert.deepEqual(await collect(reading), a!.buf);
  await s.remove(f!.id);
  await s.close();
  // removal takes the files too
  assert.deepEqual((await fs.readdir(dir)).sort(), [a!.id.slice(7), e!.id.slice(7)].sort());
});

test('LRU: a task written recently is never evicted; a stream on an evicted task errors', async () => {
  const S = 4000;
  const s = await store(await tmp(), 2 * S, 60_000);
  const [a, b, c] = [1, 2, 3].map(() => blob(S, 1000));
  const ta = await s.open(a!.id, a!.meta);
  await ta.writePiece(0, a!.piece(0));
  await s.open(b!.id, b!.meta);
  await assert.rejects(s.open(c!.id, c!.meta), (err) => isCode(err, 'UNAVAILABLE'));
  const huge = blob(3 * S, 1000);
  await assert.rejects(s.open(huge.id, huge.meta), (err) => isCode(err, 'UNAVAILABLE'));
  assert.equal(s.stats().usedBytes, 2 * S);
  await s.close();

  const s2 = await store(s.dir, 2 * S, 0);
  const t2 = s2.task(a!.id)!;
  const waiting = assert.rejects(collect(t2.stream()), /removed/);
  await s2.remove(a!.id);
  await waiting;
  await s2.close();
});

test('a store over its bound after a restart with a smaller maxBytes trims idle tasks at init', async () => {
  const dir = await tmp();
  const s = await store(dir);
  for (let i = 0; i < 4; i++) {
    const b = blob(1000, 500);
    const t = await s.open(b.id, b.meta);
    await writeAll(t, b);
    await t.finish();
  }
  await s.close();
  const small = await store(dir, 2500);
  assert.ok(small.stats().usedBytes <= 2500);
  assert.equal(small.stats().tasks, 2);
  await small.close();
});

test('64 MiB in 4 MiB pieces: concurrent writes, a concurrent stream, finish (throughput printed, not asserted)', async () => {
  const s = await store(await tmp());
  const b = blob(64 * 1024 * 1024, 4 * 1024 * 1024);
  const t = await s.open(b.id, b.meta);
  const t0 = performance.now();
  const reader = collect(t.stream());
  const order = shuffle([...Array(t.total).keys()]);
  await Promise.all(
    [0, 1, 2, 3].map(async (lane) => {
      for (let i = lane; i < order.length; i += 4) assert.equal(await t.writePiece(order[i]!, b.piece(order[i]!)), true);
    }),
  );
  const t1 = performance.now();
  assert.equal(await t.finish(), true);
  const t2 = performance.now();
  const got = await reader;
  const t3 = performance.now();
  assert.equal(got.equals(b.buf), true);
  const mbps = (ms: number) => (64 / (ms / 1000)).toFixed(0);
  console.log(
    `piece store 64 MiB / 16 pieces: write ${mbps(t1 - t0)} MiB/s (${(t1 - t0).toFixed(0)} ms), ` +
      `finish ${(t2 - t1).toFixed(0)} ms, stream done at ${(t3 - t0).toFixed(0)} ms (${mbps(t3 - t0)} MiB/s end to end)`,
  );
  await s.close();
});
