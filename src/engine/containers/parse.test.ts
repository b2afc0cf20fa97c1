import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeEnv, overlayEnv } from './parse.js';

test('overlayEnv: Docker\'s merge of a create request\'s Env with its image\'s keeps a "KEY" alone', () => {
  const image = ['PATH=/bin', 'A=image', 'B=image'];
  assert.deepEqual(overlayEnv(['Foo', 'A=1', 'PATH'], image), ['Foo', 'A=1', 'PATH', 'B=image']);
  assert.deepEqual(overlayEnv(null, image), image);
  assert.deepEqual(overlayEnv([], undefined), []);
  assert.throws(() => overlayEnv(['=x'], image), /invalid environment variable: =x/);
});

test('mergeEnv: a later list wins, and a "KEY" alone unsets KEY', () => {
  assert.deepEqual(mergeEnv(['PATH=/bin', 'HOSTNAME=h'], ['A=1'], ['Foo', 'HOSTNAME', 'A=2']), ['PATH=/bin', 'A=2']);
});
