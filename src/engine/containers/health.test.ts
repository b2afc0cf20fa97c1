import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatGoDuration, parseGoDuration } from '../../lib/goduration.js';
import { parseHealthcheck } from '../images/changes.js';
import { mergeHealthcheck } from './healthcheck.js';

test('Go durations: parse and format as time.Duration does', () => {
  assert.equal(parseGoDuration('1m30s'), 90e9);
  assert.equal(parseGoDuration('1.5s'), 1.5e9);
  assert.equal(parseGoDuration('500ms'), 5e8);
  assert.equal(parseGoDuration('0'), 0);
  assert.equal(parseGoDuration('10'), undefined);
  assert.equal(parseGoDuration('1x'), undefined);
  assert.deepEqual([1e9, 1.5e9, 5e8, 90e9, 3600e9, 1500, 7].map(formatGoDuration), ['1s', '1.5s', '500ms', '1m30s', '1h0m0s', '1.5µs', '7ns']);
});

test('HEALTHCHECK as --change parses it; merge with the image; Docker\'s limits', () => {
  assert.deepEqual(parseHealthcheck('--interval=5s --retries=2 CMD curl -f http://x/'), { Test: ['CMD-SHELL', 'curl -f http://x/'], Interval: 5e9, Retries: 2 });
  assert.deepEqual(parseHealthcheck('CMD ["true", "x"]'), { Test: ['CMD', 'true', 'x'] });
  assert.deepEqual(parseHealthcheck('none'), { Test: ['NONE'] });
  assert.throws(() => parseHealthcheck('NONE x'), /takes no arguments/);
  assert.throws(() => parseHealthcheck('RUN x'), /Unknown type "RUN" in HEALTHCHECK/);
  assert.throws(() => parseHealthcheck('--retries=-1 CMD x'), /cannot be negative/);
  assert.throws(() => parseHealthcheck('CMD'), /Missing command/);
  const image = { Test: ['CMD-SHELL', 'x'], Interval: 1e9, Retries: 4 };
  assert.equal(mergeHealthcheck(undefined, image), image);
  assert.deepEqual(mergeHealthcheck({ Timeout: 2e9 }, image), { Test: ['CMD-SHELL', 'x'], Interval: 1e9, Timeout: 2e9, Retries: 4 });
  assert.deepEqual(mergeHealthcheck({ Test: ['NONE'] }, image)?.Test, ['NONE']);
  assert.throws(() => mergeHealthcheck({ Test: ['CMD', 'x'], StartInterval: 10 }, undefined), /StartInterval in Healthcheck cannot be less than 1ms/);
});
