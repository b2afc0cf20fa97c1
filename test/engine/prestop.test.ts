import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { TestEngine, until } from '../harness.js';

let e: TestEngine;
before(async () => {
  e = await TestEngine.start();
});
after(async () => {
  await e?.cleanup();
});

/** A main process that records its stop signal on the bind-mounted /data and exits 0 on it; /data/ready once the trap is set. */
const MAIN = 'trap "echo term >> /data/log; exit 0" TERM; touch /data/ready; while true; do sleep 0.1; done';

async function runWithHook(name: string, labels: string[]): Promise<string> {
  const data = path.join(e.dir, name);
  await fs.mkdir(data, { recursive: true });
  const r = await e.docker(['run', '-d', '--name', name, '-v', `${data}:/data`, ...labels.flatMap((l) => ['--label', l]), 'busybox', 'sh', '-c', MAIN]);
  assert.equal(r.code, 0, r.stderr);
  await until(() => fs.stat(path.join(data, 'ready')).then(() => true, () => false));
  return data;
}

const exitCode = async (name: string) => (await e.docker(['inspect', '-f', '{{.State.ExitCode}}', name])).stdout.trim();

test('docker stop runs the com.sampan.pre-stop hook in the container before the stop signal', async () => {
  const data = await runWithHook('hooked', ['com.sampan.pre-stop=echo hook >> /data/log; sleep 0.3; echo hook-done >> /data/log']);
  const r = await e.docker(['stop', '-t', '10', 'hooked']);
  assert.equal(r.code, 0, r.stderr);
  // the hook ran to its end before the signal reached the main process, which then exited on it (not killed)
  assert.equal(await fs.readFile(path.join(data, 'log'), 'utf8'), 'hook\nhook-done\nterm\n');
  assert.equal(await exitCode('hooked'), '0');
});

test('a hook that hangs is cut at its timeout label and the signal still comes within the grace period', async () => {
  const data = await runWithHook('hangs', ['com.sampan.pre-stop=echo hook >> /data/log; sleep 600; echo never >> /data/log', 'com.sampan.pre-stop.timeout=1s']);
  const r = await e.docker(['stop', '-t', '20', 'hangs']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await fs.readFile(path.join(data, 'log'), 'utf8'), 'hook\nterm\n');
  // exit 0 from its TERM trap: the signal came while grace was left, no SIGKILL (137)
  assert.equal(await exitCode('hangs'), '0');
});

test('without a timeout label a hanging hook gets half the grace period, and StopTimeout is the grace period', async () => {
  const data = path.join(e.dir, 'half');
  await fs.mkdir(data, { recursive: true });
  const r = await e.docker(['run', '-d', '--name', 'half', '--stop-timeout', '4', '-v', `${data}:/data`, '--label', 'com.sampan.pre-stop=echo hook >> /data/log; sleep 600', 'busybox', 'sh', '-c', MAIN]);
  assert.equal(r.code, 0, r.stderr);
  await until(() => fs.stat(path.join(data, 'ready')).then(() => true, () => false));
  assert.equal((await e.docker(['stop', 'half'])).code, 0);
  assert.equal(await fs.readFile(path.join(data, 'log'), 'utf8'), 'hook\nterm\n');
  assert.equal(await exitCode('half'), '0');
});

test('a failing hook does not keep the container from stopping; docker kill and stop -t 0 skip the hook', async () => {
  const data = await runWithHook('fails', ['com.sampan.pre-stop=echo hook >> /data/log; exit 3']);
  assert.equal((await e.docker(['stop', 'fails'])).code, 0);
  assert.equal(await fs.readFile(path.join(data, 'log'), 'utf8'), 'hook\nterm\n');

  const k = await runWithHook('killed', ['com.sampan.pre-stop=echo hook >> /data/log']);
  assert.equal((await e.docker(['kill', '-s', 'TERM', 'killed'])).code, 0);
  await until(async () => (await e.docker(['inspect', '-f', '{{.State.Running}}', 'killed'])).stdout.trim() === 'false');
  assert.equal(await fs.readFile(path.join(k, 'log'), 'utf8'), 'term\n');

  const z = await runWithHook('zero', ['com.sampan.pre-stop=echo hook >> /data/log']);
  assert.equal((await e.docker(['stop', '-t', '0', 'zero'])).code, 0);
  assert.equal(await fs.readFile(path.join(z, 'log'), 'utf8').catch(() => ''), '');
});
