/**
 * A node relay (`sampan cluster relay`) between two real engines and a real manager: the engines join the relay as
 * they would join the manager, the manager holds one link for both, the docker CLI drives their containers through
 * the manager; a relay killed and restarted takes the nodes down and brings them back with their containers, none
 * duplicated; a wrong join token through the relay is refused as it is directly.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs, openSync, closeSync, readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { EtcdCluster } from '../../src/cluster/index.js';
import { SAMPAN, TestEngine, engineCleanup, runCmd, until } from '../harness.js';

interface NodeView {
  name: string;
  state: string;
  containers: number;
}

describe('a node relay carries the engines\' connections to the manager', () => {
  let dir: string;
  let etcd: EtcdCluster;
  let manager: ChildProcess;
  let relay: ChildProcess | undefined;
  const engines: TestEngine[] = [];
  const token = 'relay-test-token-0123456789';
  const api = () => path.join(dir, 'api.sock');
  const docker = (args: string[]) => runCmd('docker', args, { env: { DOCKER_HOST: `unix://${api()}`, DOCKER_CLI_HINTS: 'false' }, timeoutMs: 60_000 });
  const get = (p: string) => new Promise<string>((resolve, reject) => {
    http.get({ socketPath: api(), path: p }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
  const nodes = async () => (JSON.parse(await get('/sampan/v1/nodes')) as NodeView[]).sort((a, b) => a.name.localeCompare(b.name));
  const daemon = (args: string[], log: string): ChildProcess => {
    const fd = openSync(path.join(dir, log), 'a');
    const p = spawn(SAMPAN, args, { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    return p;
  };
  const startRelay = () => daemon(['cluster', 'relay', '--manager', `unix://${path.join(dir, 'node.sock')}`, '--listen', `unix://${path.join(dir, 'relay.sock')}`], 'relay.log');
  const stop = async (p: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGTERM') => {
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill(signal);
    await gone;
  };

  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sprl-'));
    etcd = await EtcdCluster.start({ dir: path.join(dir, 'etcd') });
    manager = daemon(['cluster', 'manager', '--etcd', etcd.endpoints.join(','), '--listen', `unix://${api()}`, '--node-listen', `unix://${path.join(dir, 'node.sock')}`,
      '--name', 'relaytest', '--join-token', token, '--heartbeat', '500'], 'manager.log');
    await until(async () => (await fs.stat(api()).then(() => true, () => false)) && (await get('/_ping').then(() => true, () => false)), 30_000);
    relay = startRelay();
    await until(() => fs.stat(path.join(dir, 'relay.sock')).then(() => true, () => false), 30_000);
    for (const name of ['ra', 'rb']) engines.push(await TestEngine.start({ args: ['--join', `unix://${path.join(dir, 'relay.sock')}`, '--join-token', token, '--node-name', name] }));
    await until(async () => (await nodes()).filter((n) => n.state === 'up').length === 2, 30_000);
  });

  after(async () => {
    for (const e of engines) {
      await runCmd('docker', ['rm', '-f', ...(await e.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean)], { env: e.env }).catch(() => undefined);
      await e.terminate();
      await engineCleanup(path.join(e.dir, 'root'), path.join(e.dir, 'run'));
    }
    await stop(relay);
    await stop(manager);
    await etcd?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('engines joined through the relay are nodes the docker CLI drives', async () => {
    assert.deepEqual((await nodes()).map((n) => [n.name, n.state]), [['ra', 'up'], ['rb', 'up']]);
    const run = await docker(['run', '-d', '--name', 'viarelay', '-e', 'constraint:node==rb', 'busybox', 'sh', '-c', 'echo through the relay; sleep 600']);
    assert.equal(run.code, 0, run.stderr);
    const ps = await docker(['ps', '--filter', 'name=viarelay', '--format', '{{.Names}} {{.Status}}']);
    assert.match(ps.stdout, /^rb\/viarelay Up/m);
    await until(async () => (await docker(['logs', 'viarelay'])).stdout.includes('through the relay'), 10_000);
    const batch = await runCmd(SAMPAN, ['--host', `unix://${api()}`, 'run', '-d', '--replicas', '4', '--name', 'rl', 'busybox', 'sleep', '600'], { timeoutMs: 60_000 });
    assert.equal(batch.code, 0, batch.stderr);
    assert.match(batch.stdout, /4 of 4 replicas running/);
    // the engines themselves hold what the manager placed: spread evens the two nodes out (rb had viarelay)
    const held = await Promise.all(engines.map(async (e) => (await e.docker(['ps', '-q'])).stdout.split('\n').filter(Boolean).length));
    assert.equal(held[0]! + held[1]!, 5);
    assert.ok(Math.abs(held[0]! - held[1]!) <= 1, `spread over the relayed nodes: ${held.join(' / ')}`);
  });

  test('a relay that dies takes its nodes down; restarted, they come back with their containers, none twice', async () => {
    const before = (await docker(['ps', '-a', '--format', '{{.Names}}'])).stdout.split('\n').filter(Boolean).sort();
    await stop(relay, 'SIGKILL');
    await until(async () => (await nodes()).every((n) => n.state === 'down'), 15_000);
    const down = await docker(['ps', '-a', '--filter', 'name=viarelay', '--format', '{{.Names}} {{.Status}}']);
    assert.match(down.stdout, /^rb\/viarelay Host Down/m, 'a down node\'s containers stay listed');
    relay = startRelay();
    await until(async () => (await nodes()).every((n) => n.state === 'up'), 30_000);
    const after = (await docker(['ps', '-a', '--format', '{{.Names}}'])).stdout.split('\n').filter(Boolean).sort();
    assert.deepEqual(after, before);
    assert.equal((await docker(['exec', 'viarelay', 'echo', 'ok'])).stdout.trim(), 'ok');
  });

  test('a wrong join token through the relay is refused, and the engine does not retry', async () => {
    const bad = await TestEngine.start({ seed: false, args: ['--join', `unix://${path.join(dir, 'relay.sock')}`, '--join-token', 'not-the-token-at-all', '--node-name', 'rbad'] });
    try {
      await until(async () => /refused the join token/.test(bad.log), 15_000);
      assert.equal((await nodes()).some((n) => n.name === 'rbad'), false);
      assert.match(readFileSync(path.join(dir, 'manager.log'), 'utf8'), /join refused: wrong join token/);
    } finally {
      await bad.terminate();
    }
  });
});
