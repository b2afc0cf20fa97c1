import assert from 'node:assert/strict';
import { test } from 'node:test';
import { humanDuration, parseBytes, splitAddr } from './units.js';

test('humanDuration follows units.HumanDuration', () => {
  const s = 1000;
  const m = 60 * s;
  const h = 60 * m;
  const d = 24 * h;
  assert.equal(humanDuration(0), 'Less than a second');
  assert.equal(humanDuration(999), 'Less than a second');
  assert.equal(humanDuration(-5 * s), 'Less than a second');
  assert.equal(humanDuration(1 * s), '1 second');
  assert.equal(humanDuration(2 * s), '2 seconds');
  assert.equal(humanDuration(59 * s), '59 seconds');
  assert.equal(humanDuration(60 * s), 'About a minute');
  assert.equal(humanDuration(119 * s), 'About a minute');
  assert.equal(humanDuration(2 * m), '2 minutes');
  assert.equal(humanDuration(59 * m), '59 minutes');
  assert.equal(humanDuration(60 * m), 'About an hour');
  assert.equal(humanDuration(89 * m), 'About an hour');
  assert.equal(humanDuration(90 * m), '2 hours');
  assert.equal(humanDuration(47 * h), '47 hours');
  assert.equal(humanDuration(48 * h), '2 days');
  assert.equal(humanDuration(13 * d), '13 days');
  assert.equal(humanDuration(14 * d), '2 weeks');
  assert.equal(humanDuration(59 * d), '8 weeks');
  assert.equal(humanDuration(60 * d), '2 months');
  assert.equal(humanDuration(729 * d), '24 months');
  assert.equal(humanDuration(730 * d), '2 years');
  assert.equal(humanDuration(1100 * d), '3 years');
});

test('parseBytes reads Docker sizes', () => {
  assert.equal(parseBytes('100'), 100);
  assert.equal(parseBytes('512k'), 512 * 1024);
  assert.equal(parseBytes('64m'), 64 << 20);
  assert.equal(parseBytes('1.5g'), 1.5 * 1024 ** 3);
  assert.equal(parseBytes('2GiB'), 2 * 1024 ** 3);
  assert.throws(() => parseBytes('lots'), /invalid size/);
});

test('splitAddr takes HOST:PORT with IPv6 brackets and an empty host', () => {
  assert.deepEqual(splitAddr('127.0.0.1:5000'), { host: '127.0.0.1', port: 5000 });
  assert.deepEqual(splitAddr(':5000'), { host: undefined, port: 5000 });
  assert.deepEqual(splitAddr('[::1]:5000'), { host: '::1', port: 5000 });
  assert.throws(() => splitAddr('host:99999'), /invalid port/);
});
