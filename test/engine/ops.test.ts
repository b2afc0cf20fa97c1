import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SAMPAN, TestEngine, runCmd } from '../harness.js';
import { TestRegistry, request } from '../registry/harness.js';

const exists = (p: string) => fs.stat(p).then(() => true, () => false);

test('a second engine on the same root, or on the same socket with another root, refuses to start; the first keeps its socket and containers', async () => {
  const e = await TestEngine.start();
  const other = await fs.mkdtemp(path.join(os.tmpdir(), 'sp2-'));
  try {
    const cid = (await e.docker(['run', '-d', '--network', 'none', 'busybox', 'sleep', '600'])).stdout.trim();
    const second = (args: string[]) => runCmd(SAMPAN, ['engine', ...args, '--host', `unix://${e.sock}`], { env: { SAMPAN_BRIDGE_NAME: e.bridge }, timeoutMs: 30_000 });

    const sameRoot = await second(['--root', path.join(e.dir, 'root'), '--exec-root', path.join(e.dir, 'run')]);
    assert.equal(sameRoot.code, 1, sameRoot.stderr);
    assert.match(sameRoot.stderr, new RegExp(`another engine \\(pid ${e.proc!.pid}\\) is running with ${e.dir}/root/engine.pid locked`));
    // the same root with an exec root of its own is the same engine state
    const ownExecRoot = await second(['--root', path.join(e.dir, 'root'), '--exec-root', path.join(other, 'run')]);
    assert.equal(ownExecRoot.code, 1, ownExecRoot.stderr);
    assert.match(ownExecRoot.stderr, /another engine .* is running/);

    const sameSocket = await second(['--root', path.join(other, 'root'), '--exec-root', path.join(other, 'run2')]);
    assert.equal(sameSocket.code, 1, sameSocket.stderr);
    assert.match(sameSocket.stderr, new RegExp(`${e.sock} is in use: another engine \\(or another process\\) answers on it`));

    assert.ok(await exists(e.sock), 'the first engine lost its socket');
    assert.equal((await e.api('GET', '/_ping')).status, 200);
    assert.equal((await e.docker(['inspect', '-f', '{{.State.Running}}', cid])).stdout.trim(), 'true');

    // the lock goes with the process, even a killed one: the next engine starts and adopts the container
    await e.kill9();
    await e.launch();
    assert.equal((await e.docker(['inspect', '-f', '{{.State.Running}}', cid])).stdout.trim(), 'true');
  } finally {
    await e.cleanup();
    await fs.rm(other, { recursive: true, force: true });
  }
});

test('docker info: the bridge network driver, the runc and init versions', async () => {
  const e = await TestEngine.start({ seed: false });
  try {
    const info = JSON.parse((await e.docker(['info', '--format', '{{json .}}'])).stdout) as {
      Plugins: { Network: string[] };
      RuncCommit: { ID: string; Expected: string };
      InitCommit: { ID: string };
      InitBinary: string;
    };
    assert.deepEqual(info.Plugins.Network, ['bridge', 'host', 'null']);
    // dockerd's figure: the commit line of `runc --version` (Debian's package version)
    const runcCommit = /^commit:\s*(\S+)/m.exec(execFileSync('runc', ['--version']).toString())![1]!;
    assert.equal(info.RuncCommit.ID, runcCommit);
    assert.equal(info.RuncCommit.Expected, runcCommit);
    // Debian's tini prints a version and no git commit: the version, where dockerd 20.10 shows nothing
    const tini = /tini version (\S+)/.exec(execFileSync(info.InitBinary, ['--version']).toString())![1]!;
    assert.equal(info.InitCommit.ID, tini);
    const text = (await e.docker(['info'])).stdout;
    assert.match(text, /Network: bridge host null/);
    assert.match(text, new RegExp(`runc version: ${runcCommit.replace(/[+.]/g, '\\$&')}`));
    assert.match(text, new RegExp(`init version: ${tini.replace(/\./g, '\\.')}`));
  } finally {
    await e.cleanup();
  }
});

/** iptables rules (filter and nat) tagged with this bridge. */
async function rulesOf(bridge: string): Promise<string[]> {
  const filter = (await runCmd('iptables', ['-w', '-S'])).stdout.split('\n');
  const nat = (await runCmd('iptables', ['-w', '-t', 'nat', '-S'])).stdout.split('\n');
  return [...filter, ...nat].filter((l) => l.includes(`sampan:${bridge}"`) || l.includes(`sampan:${bridge} `));
}

test('sampan engine cleanup removes the bridges and rules no container uses, keeps those in use, and refuses while the engine runs', async () => {
  const e = await TestEngine.start();
  const cleanup = () => runCmd(SAMPAN, ['engine', 'cleanup', '--root', path.join(e.dir, 'root'), '--exec-root', path.join(e.dir, 'run')], { timeoutMs: 30_000 });
  try {
    // a user network whose bridge exists (made by its first container) and is empty again
    assert.equal((await e.docker(['network', 'create', 'opsnet'])).code, 0);
    const userBridge = `sampan-${(await e.docker(['network', 'inspect', '-f', '{{.Id}}', 'opsnet'])).stdout.trim().slice(0, 8)}`;
    assert.equal((await e.docker(['run', '--rm', '--network', 'opsnet', 'busybox', 'true'])).code, 0);
    // one that outlives the engine on the default bridge
    const cid = (await e.docker(['run', '-d', 'busybox', 'sleep', '600'])).stdout.trim();
    assert.ok(await exists(`/sys/class/net/${userBridge}`), `no bridge ${userBridge}`);
    assert.ok((await rulesOf(userBridge)).length > 0);

    const refused = await cleanup();
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /another engine \(pid \d+\) is running/);
    assert.ok(await exists(`/sys/class/net/${e.bridge}`));

    await e.terminate();
    const first = await cleanup();
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, new RegExp(`removed bridge ${userBridge} and its iptables rules`));
    assert.match(first.stdout, new RegExp(`kept bridge ${e.bridge} and its iptables rules: in use \\(1 container interface on it\\)`));
    assert.equal(await exists(`/sys/class/net/${userBridge}`), false);
    assert.deepEqual(await rulesOf(userBridge), []);
    assert.ok(await exists(`/sys/class/net/${e.bridge}`));
    assert.ok((await rulesOf(e.bridge)).length > 0);

    await e.launch();
    assert.equal((await e.docker(['rm', '-f', cid])).code, 0);
    await e.terminate();
    const second = await cleanup();
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, new RegExp(`removed bridge ${e.bridge} and its iptables rules`));
    assert.equal(await exists(`/sys/class/net/${e.bridge}`), false);
    assert.deepEqual(await rulesOf(e.bridge), []);
    // the chain goes with the last engine's rules; other engines on this host may still have theirs in it
    const chain = await runCmd('iptables', ['-w', '-S', 'SAMPAN-ISOLATION']);
    if (chain.code === 0) assert.ok(chain.stdout.includes('-A SAMPAN-ISOLATION'), 'an empty SAMPAN-ISOLATION chain was left');
    else assert.equal((await runCmd('iptables', ['-w', '-C', 'FORWARD', '-j', 'SAMPAN-ISOLATION'])).code !== 0, true);
  } finally {
    await e.cleanup();
  }
});

test('sampan registry --htpasswd FILE alone asks for those accounts; --auth none with it still refuses to start', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sopsreg-'));
  const file = path.join(dir, 'htpasswd');
  await fs.writeFile(file, execFileSync('htpasswd', ['-Bbn', 'alice', 's3cret']).toString());
  const reg = await TestRegistry.start({ args: ['--htpasswd', file] });
  try {
    assert.equal((await request(reg.base, 'GET', '/v2/')).status, 401);
    const basic = (u: string, p: string) => ({ Authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
    assert.equal((await request(reg.base, 'GET', '/v2/', { headers: basic('alice', 's3cret') })).status, 200);
    assert.equal((await request(reg.base, 'GET', '/v2/', { headers: basic('alice', 'wrong') })).status, 401);
    const contradiction = await runCmd(SAMPAN, ['registry', '--root', path.join(dir, 'r2'), '--addr', '127.0.0.1:0', '--auth', 'none', '--htpasswd', file], { timeoutMs: 30_000 });
    assert.equal(contradiction.code, 1);
    assert.match(contradiction.stderr, /auth settings .* are given but auth.mode is none/);
  } finally {
    await reg.cleanup();
    await fs.rm(dir, { recursive: true, force: true });
  }
});
