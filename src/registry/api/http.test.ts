import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseContentRange, uploadRange } from './http.js';

test('property: an upload\'s Range header reads back as the bytes received', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 1e15 }), (offset) => {
      assert.deepEqual(parseContentRange(uploadRange(offset)), { start: 0, end: offset - 1 });
    }),
  );
  fc.assert(
    fc.property(fc.string(), (v) => {
      const r = parseContentRange(v);
      if (r) assert.ok(Number.isSafeInteger(r.start) && Number.isSafeInteger(r.end) && r.start >= 0 && r.start <= r.end);
    }),
  );
});
