import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Readable, Writable } from 'node:stream';
import { packEntry, packStream, sendStream } from './streams.js';

/** A source that never ends on its own: only destroying it stops it. */
function endless(): Readable {
  return new Readable({ read() { this.push(Buffer.alloc(64 << 10)); } });
}

/** A sink that takes `limit` bytes, then goes away as a client closing its connection does. */
function leavingAfter(limit: number): Writable {
  let n = 0;
  const w: Writable = new Writable({
    write(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      cb();
      if (n >= limit) w.destroy();
    },
  });
  return w;
}

test('sendStream: a sink that goes away is a normal end (false), and the source is destroyed', async () => {
  const src = endless();
  assert.equal(await sendStream(src, leavingAfter(1 << 20)), false);
  assert.equal(src.destroyed, true);
});

test('sendStream: everything sent is true; a failing source rejects with its error and ends the sink', async () => {
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  assert.equal(await sendStream(Readable.from([Buffer.from('all')]), sink), true);
  const broken = new Readable({ read() { this.destroy(Object.assign(new Error('disk gone'), { code: 'EIO' })); } });
  const sink2 = new Writable({ write: (_c, _e, cb) => cb() });
  await assert.rejects(sendStream(broken, sink2), /disk gone/);
  assert.equal(sink2.destroyed, true);
});

test('packStream: a reader that goes away mid-entry destroys the entry\'s body and ends the writer', async () => {
  const body = endless();
  let writer: Promise<void> | undefined;
  const tar = packStream((pack) => (writer = packEntry(pack, { name: 'big', size: 1 << 30 }, body)));
  assert.equal(await sendStream(tar, leavingAfter(1 << 20)), false);
  if (!body.destroyed) await once(body, 'close');
  await assert.rejects(writer!);
});

test('packEntry: an entry asked of a pack that is gone destroys its body instead of leaving it open', async () => {
  const body = endless();
  const tar = packStream(async (pack) => {
    pack.destroy();
    await packEntry(pack, { name: 'late', size: 10 }, body);
  });
  await sendStream(tar, new Writable({ write: (_c, _e, cb) => cb() })).catch(() => false);
  assert.equal(body.destroyed, true);
});
