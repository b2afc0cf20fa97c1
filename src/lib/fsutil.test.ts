import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { mountedAt } from './fsutil.js';

test('mountedAt sees a mount through a symlinked path, and not its parent', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sp-mnt-'));
  const target = path.join(dir, 'm');
  const link = path.join(dir, 'via');
  await fs.mkdir(target);
  await fs.symlink(dir, link);
  execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', target]);
  try {
    assert.equal(await mountedAt(target), true);
    // a caller that names it through a symlink must not conclude it is a plain directory (and delete through it)
    assert.equal(await mountedAt(path.join(link, 'm')), true);
    assert.equal(await mountedAt(dir), false);
  } finally {
    execFileSync('umount', [target]);
    await fs.rm(dir, { recursive: true, force: true });
  }
  assert.equal(await mountedAt(target), false);
});
