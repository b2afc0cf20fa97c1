import { test } from 'node:test';
import assert from 'node:assert/strict';
import { humanSize, progressBar } from './progress.js';
import { pullReference } from './pull.js';

test('pull references: tag param, digest as tag, latest by default', () => {
  assert.deepEqual(pullReference('busybox', ''), { domain: 'docker.io', path: 'library/busybox', tag: 'latest', digest: undefined });
  assert.equal(pullReference('r:5000/a/b', '1').tag, '1');
  const d = `sha256:${'a'.repeat(64)}`;
  assert.equal(pullReference('a/b', d).digest, d);
  assert.equal(pullReference(`a/b:1@${d}`).tag, undefined);
  assert.throws(() => pullReference('a/UPPER', '1'));
});

test('progress: Docker-style sizes and bars', () => {
  assert.equal(humanSize(512), '512B');
  assert.equal(humanSize(2_130_944), '2.131MB');
  assert.equal(progressBar(0, 100), `[>${' '.repeat(49)}]       0B/100B`);
  assert.equal(progressBar(50, 100), `[${'='.repeat(25)}>${' '.repeat(24)}]      50B/100B`);
  assert.equal(progressBar(100, 100), `[${'='.repeat(50)}>]     100B/100B`);
});
