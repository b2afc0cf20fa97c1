import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ago, ellipsis, formatG, goTime, humanSize, shortId, table } from './format.js';

test('formatG behaves like Go %g', () => {
  assert.equal(formatG(4.26, 3), '4.26');
  assert.equal(formatG(4.2, 3), '4.2');
  assert.equal(formatG(4, 3), '4');
  assert.equal(formatG(1.2346, 4), '1.235');
  assert.equal(formatG(1.2345, 4), '1.234'); // the double is just below 1.2345, as in Go
  assert.equal(formatG(512, 3), '512');
  assert.equal(formatG(999.9, 3), '1e+03');
  assert.equal(formatG(0, 3), '0');
  assert.equal(formatG(10, 3), '10');
});

test('humanSize uses decimal units like docker', () => {
  assert.equal(humanSize(0), '0B');
  assert.equal(humanSize(512), '512B');
  assert.equal(humanSize(999), '999B');
  assert.equal(humanSize(1000), '1kB');
  assert.equal(humanSize(1500), '1.5kB');
  assert.equal(humanSize(4_260_000), '4.26MB');
  assert.equal(humanSize(4_264_123), '4.26MB');
  assert.equal(humanSize(1_979_000), '1.98MB');
  assert.equal(humanSize(1_200_000_000), '1.2GB');
  assert.equal(humanSize(77_800_000), '77.8MB');
  assert.equal(humanSize(1_234_567, 4), '1.235MB');
  assert.equal(humanSize(3_000_000_000_000), '3TB');
});

test('ago appends "ago" to the duration since a unix time', () => {
  const now = Date.UTC(2024, 0, 10);
  assert.equal(ago(now / 1000 - 2 * 86400, now), '2 days ago');
  assert.equal(ago(now / 1000 - 3, now), '3 seconds ago');
  assert.equal(ago(now / 1000, now), 'Less than a second ago');
});

test('goTime prints Go default time format in UTC', () => {
  assert.equal(goTime(Date.UTC(2024, 4, 1, 10, 2, 3) / 1000), '2024-05-01 10:02:03 +0000 UTC');
});

test('ellipsis and shortId', () => {
  assert.equal(ellipsis('short', 20), 'short');
  assert.equal(ellipsis("sh -c 'i=0; while true; do echo; done'", 20), "sh -c 'i=0; while t…");
  assert.equal(Array.from(ellipsis('x'.repeat(30), 20)).length, 20);
  assert.equal(shortId('sha256:8f1b44a07bd1aaaaaaaaaaaa'), '8f1b44a07bd1');
  assert.equal(shortId('29019b920266ffffffff'), '29019b920266');
});

test('table is borderless with three spaces between columns and no trailing blanks', () => {
  const out = table(['REPOSITORY', 'TAG', 'IMAGE ID'], [
    ['busybox', 'latest', '8f1b44a07bd1'],
    ['registry.local/app', '1.0', 'abc'],
  ]);
  const lines = out.split('\n');
  assert.equal(lines.length, 3);
  assert.equal(lines[0], 'REPOSITORY           TAG      IMAGE ID');
  assert.equal(lines[1], 'busybox              latest   8f1b44a07bd1');
  assert.equal(lines[2], 'registry.local/app   1.0      abc');
  for (const l of lines) assert.equal(l, l.trimEnd());
  assert.ok(!/[│─┌┐└┘]/.test(out));
  // no rows: just the header
  assert.equal(table(['A', 'B'], []), 'A   B');
  // empty cells keep the columns aligned
  assert.equal(table(['A', 'PORTS', 'NAMES'], [['x', '', 'n']]).split('\n')[1], 'x   ' + ' '.repeat(5) + '   n');
});
