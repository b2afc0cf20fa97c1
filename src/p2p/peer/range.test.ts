import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseRange } from './server.js';

const size = fc.oneof(fc.constant(0), fc.constant(1), fc.nat(1 << 20), fc.maxSafeNat());
/** Byte positions as written: digits, some past what a double holds exactly. */
const pos = fc.oneof(fc.nat(2 << 20).map(String), fc.maxSafeNat().map(String), fc.stringMatching(/^[0-9]{1,40}$/));
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

test('property: a piece server Range is never empty and always within the blob; parsing never throws', () => {
  fc.assert(
    fc.property(header, size, (h, n) => {
      const r = parseRange(h, n);
      if (r === undefined || r === 'bad') return;
      const [start, end] = r;
      assert.ok(Number.isSafeInteger(start) && Number.isSafeInteger(end), JSON.stringify(r));
      assert.ok(start >= 0 && start < end && end <= n, `${h} of ${n} bytes → ${JSON.stringify(r)}`);
    }),
    { numRuns: 5000 },
  );
});

test('property: one byte range means what RFC 9110 says; anything else is refused (416)', () => {
  fc.assert(
    fc.property(fc.tuple(fc.option(pos), fc.option(pos)), size, ([as, bs], n) => {
      const [a, b] = [as === null ? null : Number(as), bs === null ? null : Number(bs)];
      const r = parseRange(`bytes=${as ?? ''}-${bs ?? ''}`, n);
      let want: [number, number] | 'bad';
      if (a === null && b === null) want = 'bad';
      else if (a === null) want = b === 0 || n === 0 ? 'bad' : [Math.max(0, n - b!), n];
      else if ((b !== null && b < a) || a >= n) want = 'bad';
      else want = [a, b === null ? n : Math.min(b + 1, n)];
      assert.deepEqual(r, want);
    }),
    { numRuns: 5000 },
  );
  // unlike the registry's blob GET, which serves the whole blob then
  assert.equal(parseRange('bytes=0-1,3-4', 10), 'bad');
  assert.equal(parseRange('items=0-1', 10), 'bad');
  assert.equal(parseRange(undefined, 10), undefined);
});
