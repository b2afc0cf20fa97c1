import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { contentRange, parseRange } from './range.js';

const size = fc.oneof(fc.constant(0), fc.constant(1), fc.nat(1 << 20), fc.maxSafeNat());
/** Byte positions as written: digits, some past what a double holds exactly. */
const pos = fc.oneof(fc.nat(2 << 20).map(String), fc.maxSafeNat().map(String), fc.stringMatching(/^[0-9]{1,40}$/));
/** One byte range as clients write it: a-b, a-, -n (including a > b, n = 0, and beyond the blob). */
const oneRange = fc.oneof(
  fc.tuple(pos, pos).map(([a, b]) => `${a}-${b}`),
  pos.map((a) => `${a}-`),
  pos.map((n) => `-${n}`),
);
const header = fc.oneof(
  oneRange.map((r) => `bytes=${r}`),
  fc.array(oneRange, { minLength: 2, maxLength: 4 }).map((rs) => `bytes=${rs.join(',')}`),
  fc.string({ unit: fc.constantFrom('b', 'y', 't', 'e', 's', '=', '-', ',', ' ', '0', '1', '9', 'x') }),
  fc.string(),
);

test('property: a Range is never empty and always within the blob; parsing never throws', () => {
  fc.assert(
    fc.property(header, size, (h, n) => {
      const r = parseRange(h, n);
      if (r === undefined || r === 'unsatisfiable') return;
      assert.ok(Number.isSafeInteger(r.start) && Number.isSafeInteger(r.end), JSON.stringify(r));
      assert.ok(r.start >= 0 && r.start < r.end && r.end <= n, `${h} of ${n} bytes → ${JSON.stringify(r)}`);
    }),
    { numRuns: 5000 },
  );
});

test('property: one byte range means what RFC 9110 says; what it lets a server ignore is the whole blob', () => {
  fc.assert(
    fc.property(fc.tuple(fc.option(pos), fc.option(pos)), size, ([as, bs], n) => {
      const [a, b] = [as === null ? null : Number(as), bs === null ? null : Number(bs)];
      const r = parseRange(`bytes=${as ?? ''}-${bs ?? ''}`, n);
      if (a === null && b === null) return assert.equal(r, undefined);
      if (a === null) {
        // the last b bytes
        if (b === 0 || n === 0) return assert.equal(r, 'unsatisfiable');
        return assert.deepEqual(r, { start: Math.max(0, n - b!), end: n });
      }
      if (b !== null && b < a) return assert.equal(r, undefined); // invalid: ignored
      if (a >= n) return assert.equal(r, 'unsatisfiable');
      assert.deepEqual(r, { start: a, end: b === null ? n : Math.min(b + 1, n) });
    }),
    { numRuns: 5000 },
  );
  assert.equal(parseRange('bytes=0-1,3-4', 10), undefined);
  assert.equal(parseRange('items=0-1', 10), undefined);
  assert.equal(parseRange('bytes=5-2', 10), undefined);
  assert.equal(parseRange(undefined, 10), undefined);
});

test('Content-Range: inclusive bytes of a 206, the size alone on a 416', () => {
  assert.equal(contentRange({ start: 0, end: 10 }, 10), 'bytes 0-9/10');
  assert.equal(contentRange(parseRange('bytes=-3', 10)!, 10), 'bytes 7-9/10');
  assert.equal(contentRange('unsatisfiable', 10), 'bytes */10');
});
