import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pickVictims, type EvictionCandidate } from './lru.js';
import { PieceSet } from './bitmap.js';

const c = (id: string, size: number, complete: boolean, lastUsed: number, active = false): EvictionCandidate => ({
  id: `sha256:${id}`,
  size,
  complete,
  lastUsed,
  active,
});

test('pickVictims: complete before incomplete, LRU within each, active never, nothing when it cannot fit', () => {
  const all = [c('a', 10, false, 1), c('b', 10, true, 5), c('c', 10, true, 3), c('d', 10, true, 0, true), c('e', 10, false, 2)];
  const ids = (need: number) => pickVictims(all, need)?.map((x) => x.id.slice(7));
  assert.deepEqual(ids(0), []);
  assert.deepEqual(ids(1), ['c']);
  assert.deepEqual(ids(20), ['c', 'b']);
  assert.deepEqual(ids(25), ['c', 'b', 'a']);
  assert.deepEqual(ids(40), ['c', 'b', 'a', 'e']);
  assert.equal(ids(41), undefined);
});

test('PieceSet: add/delete/count, base64 round trip, out-of-range bits ignored', () => {
  const s = new PieceSet(13);
  for (const n of [0, 7, 8, 12, 12]) s.add(n);
  s.delete(7);
  s.delete(3);
  assert.equal(s.count(), 3);
  assert.deepEqual(s.list(), [0, 8, 12]);
  assert.equal(s.has(13), false);
  assert.deepEqual(PieceSet.fromBase64(13, s.toBase64()).list(), [0, 8, 12]);
  assert.deepEqual(PieceSet.fromBase64(5, Buffer.from([0xff, 0xff]).toString('base64')).list(), [0, 1, 2, 3, 4]);
  assert.equal(new PieceSet(0).full(), true);
});
