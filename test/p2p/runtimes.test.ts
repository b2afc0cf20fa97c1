/** Other runtimes use a peer as their registry mirror: podman (registries.conf) and containerd (hosts.toml). */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import tar from 'tar-stream';
import { P2pRig } from './harness.js';
import { runCmd, until } from '../harness.js';

const MiB = 1024 * 1024;
const rigs: P2pRig[] = [];
after(async () => {
  for (const r of rigs) await r.stop();
});

/** An uncompressed layer: a text file and 3 MiB of random bytes (several pieces). */
async function layerTar(): Promise<Buffer<ArrayBuffer>> {
  const pack = tar.pack();
  pack.entry({ name: 'hello.txt' }, 'through the peer\n');
  pack.entry({ name: 'big.bin' }, randomBytes(3 * MiB));
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function rigWithImage(repo: string) {
  const r = await P2pRig.start();
  rigs.push(r);
  const img = await r.pushImage(repo, '1', await layerTar());
  return { r, img, ref: `${r.registry.hostPort}/${repo}:1` };
}

test('podman pulls through a peer given as a [[registry.mirror]] in registries.conf', async () => {
  const { r, img, ref } = await rigWithImage('shop/podman');
  const peer = await r.startPeer({ id: 'podman-host' });
  const dir = path.join(r.dir, 'podman');
  await fs.mkdir(dir, { recursive: true });
  const conf = path.join(dir, 'registries.conf');
  await fs.writeFile(
    conf,
    [
      '[[registry]]',
      `location = "${r.registry.hostPort}"`,
      'insecure = true',
      '[[registry.mirror]]',
      `location = "127.0.0.1:${peer.port}"`,
      'insecure = true',
      '',
    ].join('\n'),
  );
  const podman = (args: string[]) =>
    runCmd('podman', ['--root', path.join(dir, 'root'), '--runroot', path.join(dir, 'run'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', ...args], {
      env: { ...process.env, CONTAINERS_REGISTRIES_CONF: conf },
      timeoutMs: 60_000,
    });
  try {
    const pull = await podman(['pull', '-q', ref]);
    assert.equal(pull.code, 0, pull.stderr);
    const digest = await podman(['image', 'inspect', '--format', '{{.Digest}}', ref]);
    assert.equal(digest.stdout.trim(), img.manifest);
    assert.ok((await peer.metric('sampan_p2p_peer_client_bytes_total')) >= 3 * MiB, 'the layer did not come through the peer');
    assert.ok((await peer.holds(img.layer))?.complete, 'the peer does not hold the layer');
  } finally {
    await podman(['rmi', '-af']);
  }
});

test('containerd pulls through a peer given as a host in hosts.toml (its ?ns= picks the upstream)', async () => {
  const { r, img, ref } = await rigWithImage('shop/containerd');
  // the peer's default upstream refuses connections: only containerd's ns= can lead it to the registry
  const peer = await r.startPeer({ id: 'containerd-host', args: ['--upstream', 'http://127.0.0.1:9', '--upstream', `${r.registry.hostPort}=${r.proxy.url}`] });
  const dir = path.join(r.dir, 'containerd');
  const sock = path.join(dir, 'c.sock');
  const hostsDir = path.join(dir, 'certs.d');
  await fs.mkdir(path.join(hostsDir, r.registry.hostPort), { recursive: true });
  await fs.writeFile(
    path.join(hostsDir, r.registry.hostPort, 'hosts.toml'),
    [`server = "http://${r.registry.hostPort}"`, `[host."http://127.0.0.1:${peer.port}"]`, '  capabilities = ["pull", "resolve"]', ''].join('\n'),
  );
  await fs.writeFile(
    path.join(dir, 'config.toml'),
    [
      'version = 2',
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${sock}"`,
      '[ttrpc]',
      `  address = "${sock}.ttrpc"`,
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${dir}/opt"`,
      '',
    ].join('\n'),
  );
  const daemon = spawn('containerd', ['--config', path.join(dir, 'config.toml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  daemon.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const ctr = (args: string[]) => runCmd('ctr', ['--address', sock, '--namespace', 'sampan-test', ...args], { timeoutMs: 60_000 });
  try {
    await until(async () => (await ctr(['version'])).code === 0, 20_000, 200).catch(() => assert.fail(`containerd did not start:\n${log}`));
    const pull = await ctr(['images', 'pull', '--plain-http', '--hosts-dir', hostsDir, ref]);
    assert.equal(pull.code, 0, pull.stderr + pull.stdout);
    const ls = await ctr(['images', 'ls']);
    assert.match(ls.stdout, new RegExp(`^${ref.replace(/[.]/g, '\\.')}\\s.*${img.manifest}`, 'm'));
    assert.ok((await peer.metric('sampan_p2p_peer_client_bytes_total')) >= 3 * MiB, 'the layer did not come through the peer');
    assert.ok((await peer.holds(img.layer))?.complete, 'the peer does not hold the layer');
  } finally {
    await ctr(['images', 'rm', ref]);
    const gone = new Promise((done) => daemon.once('exit', done));
    daemon.kill('SIGTERM');
    await gone;
  }
});
