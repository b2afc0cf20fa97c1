import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SAMPAN, runCmd, until } from '../harness.js';

test('sampan up starts the engine, seeds busybox and prints how to use it', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'su-'));
  const sock = path.join(dir, 'e.sock');
  const up = spawn(SAMPAN, ['up', '--root', path.join(dir, 'root'), '--exec-root', path.join(dir, 'run'), '--socket', sock], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  up.stdout.on('data', (d: Buffer) => (out += d.toString()));
  up.stderr.resume();
  try {
    await until(async () => out.includes('docker run'), 30_000);
    assert.match(out, new RegExp(`DOCKER_HOST=unix://${sock}`));
    const r = await runCmd('docker', ['run', '--rm', 'busybox', 'echo', 'hello from sampan'], { env: { DOCKER_HOST: `unix://${sock}` } });
    assert.equal(r.stdout, 'hello from sampan\n');
  } finally {
    const gone = new Promise((r) => up.once('exit', r));
    up.kill('SIGTERM');
    await gone;
    await fs.rm(dir, { recursive: true, force: true });
  }
});
