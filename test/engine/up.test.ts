import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SAMPAN, engineCleanup, runCmd, until } from '../harness.js';

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

interface Up {
  out: () => string;
  log: () => string;
  /** SIGTERM; resolves to the exit code. */
  stop: () => Promise<number | null>;
}

async function startUp(dir: string): Promise<Up> {
  const up = spawn(SAMPAN, ['up', '--root', path.join(dir, 'root'), '--exec-root', path.join(dir, 'run'), '--socket', path.join(dir, 'e.sock')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let log = '';
  up.stdout.on('data', (d: Buffer) => (out += d.toString()));
  up.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((r) => up.once('exit', r));
  const stop = () => {
    up.kill('SIGTERM');
    return exited;
  };
  await until(async () => {
    if (up.exitCode !== null) throw new Error(`sampan up exited with ${up.exitCode}:\n${out}\n${log}`);
    return out.includes('sampan node ls');
  }, 30_000).catch(async (err: unknown) => {
    await stop();
    throw err;
  });
  return { out: () => out, log: () => log, stop };
}

test('sampan up starts the engine joined to a one-node cluster, seeds busybox, prints how to use both; SIGTERM leaves nothing running', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'su-'));
  const sock = path.join(dir, 'e.sock');
  const cluster = path.join(dir, 'cluster.sock');
  const sampanNode = (args: string[]) => runCmd(SAMPAN, ['node', ...args, '--host', `unix://${cluster}`]);
  const nodes = async () => {
    const ls = await sampanNode(['ls', '--format', 'json']);
    assert.equal(ls.code, 0, ls.stderr);
    return ls.stdout.trim().split('\n').map((l) => JSON.parse(l) as { name: string; state: string; availability: string; labels: Record<string, string> });
  };
  let up = await startUp(dir);
  try {
    assert.match(up.out(), new RegExp(`DOCKER_HOST=unix://${sock}`));
    const r = await runCmd('docker', ['run', '--rm', 'busybox', 'echo', 'hello from sampan'], { env: { DOCKER_HOST: `unix://${sock}` } });
    assert.equal(r.stdout, 'hello from sampan\n');
    assert.match(up.out(), new RegExp(`DOCKER_HOST=unix://${cluster}`));
    assert.equal((await fs.stat(cluster)).mode & 0o777, 0o660);
    // the engine joins on its own schedule after it answers
    await until(async () => {
      const info = await runCmd('docker', ['info', '--format', '{{json .SystemStatus}}'], { env: { DOCKER_HOST: `unix://${cluster}` } });
      return info.stdout.includes('["Nodes","1"]');
    }, 30_000);
    assert.deepEqual((await nodes()).map((n) => [n.name, n.state]), [[os.hostname(), 'up']]);
    assert.ok((await processesUnder(dir)).some((c) => c.startsWith('/usr/bin/etcd ')));

    // what `node update` set lives in etcd under the root: the next `up` (a new manager, the engine rejoining) keeps it
    assert.equal((await sampanNode(['update', '--label-add', 'zone=lab', '--availability', 'drain', os.hostname()])).code, 0);
    assert.equal(await up.stop(), 0);
    assert.deepEqual(await processesUnder(dir), []);
    up = await startUp(dir);
    await until(async () => /"msg":"node joined"/.test(up.log()), 30_000);
    assert.deepEqual((await nodes()).map((n) => [n.availability, n.labels]), [['drain', { zone: 'lab' }]]);
  } finally {
    assert.equal(await up.stop(), 0);
    assert.deepEqual(await processesUnder(dir), []);
    await engineCleanup(path.join(dir, 'root'), path.join(dir, 'run'));
    await fs.rm(dir, { recursive: true, force: true });
  }
});
