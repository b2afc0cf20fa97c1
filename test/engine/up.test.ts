import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SAMPAN, runCmd, until } from '../harness.js';

/** Processes whose command line names the directory: what `up` started there (etcd among them). */
async function processesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const pid of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmd = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(dir)) out.push(cmd.replace(/\0/g, ' '));
  }
  return out;
}

test('sampan up starts the engine joined to a one-node cluster, seeds busybox, prints how to use both; SIGTERM leaves nothing running', async () => {
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
    const cluster = path.join(dir, 'cluster.sock');
    assert.match(out, new RegExp(`DOCKER_HOST=unix://${cluster}`));
    assert.equal((await fs.stat(cluster)).mode & 0o777, 0o660);
    // the engine joins on its own schedule after it answers
    await until(async () => {
      const info = await runCmd('docker', ['info', '--format', '{{json .SystemStatus}}'], { env: { DOCKER_HOST: `unix://${cluster}` } });
      return info.stdout.includes('["Nodes","1"]');
    }, 30_000);
    const ls = await runCmd(SAMPAN, ['node', 'ls', '--format', 'json', '--host', `unix://${cluster}`]);
    assert.equal(ls.code, 0, ls.stderr);
    const nodes = ls.stdout.trim().split('\n').map((l) => JSON.parse(l) as { name: string; state: string });
    assert.deepEqual(nodes.map((n) => [n.name, n.state]), [[os.hostname(), 'up']]);
    assert.ok((await processesUnder(dir)).some((c) => c.startsWith('/usr/bin/etcd ')));
  } finally {
    const gone = new Promise<number | null>((r) => up.once('exit', r));
    up.kill('SIGTERM');
    assert.equal(await gone, 0);
    assert.deepEqual(await processesUnder(dir), []);
    await fs.rm(dir, { recursive: true, force: true });
  }
});
