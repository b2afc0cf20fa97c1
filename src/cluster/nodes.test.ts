import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCode } from '../lib/errors.js';
import { validateNodeUpdate, withEdits } from './nodes.js';

test('node update edits apply over the labels an engine joins with: added, replaced, removed', () => {
  assert.deepEqual(withEdits({ zone: 'us', disk: 'ssd' }, { zone: 'eu', gpu: '1', disk: null }), { zone: 'eu', gpu: '1' });
  assert.deepEqual(withEdits({ a: '1' }, undefined), { a: '1' });
});

test('a node update body is checked field by field', () => {
  assert.deepEqual(validateNodeUpdate({ labelAdd: { a: '1' }, labelRm: ['b'], availability: 'drain' }), { labelAdd: { a: '1' }, labelRm: ['b'], availability: 'drain' });
  for (const bad of [{ availability: 'pause' }, { labelAdd: { a: 1 } }, { labelRm: 'b' }, { labels: {} }]) {
    assert.throws(() => validateNodeUpdate(bad), (e) => isCode(e, 'INVALID_ARGUMENT'), JSON.stringify(bad));
  }
});
