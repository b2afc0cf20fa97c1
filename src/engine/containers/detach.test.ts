import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EscapeProxy, parseDetachKeys } from './detach.js';

test('detach keys parse as Docker spells them', () => {
  assert.deepEqual([...parseDetachKeys('ctrl-p,ctrl-q')], [16, 17]);
  assert.deepEqual([...parseDetachKeys('ctrl-@,ctrl-[,ctrl-_,x')], [0, 27, 31, 120]);
  assert.deepEqual([...parseDetachKeys('CTRL-A')], [1]);
  assert.equal(parseDetachKeys('').length, 0);
  for (const bad of ['ctrl-1', 'ctrl-', 'ab', 'ctrl-p,', 'ctrl-pq']) assert.throws(() => parseDetachKeys(bad), /Invalid detach keys/);
});

test('the escape proxy swallows the sequence, even split across chunks, and passes false starts through', () => {
  const p = new EscapeProxy(parseDetachKeys('ctrl-p,ctrl-q'));
  assert.equal(p.filter(Buffer.from('ab\x10')).toString(), 'ab');
  assert.equal(p.filter(Buffer.from('c')).toString(), '\x10c');
  assert.equal(p.filter(Buffer.from('\x10\x10')).toString(), '\x10');
  assert.equal(p.detached, false);
  assert.equal(p.filter(Buffer.from('\x11after')).toString(), '');
  assert.equal(p.detached, true);
  assert.equal(p.filter(Buffer.from('more')).length, 0);
  const off = new EscapeProxy(parseDetachKeys(''));
  assert.equal(off.filter(Buffer.from('\x10\x11')).toString(), '\x10\x11');
  assert.equal(off.detached, false);
});
