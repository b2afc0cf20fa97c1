/**
 * The cluster off loopback with mutual TLS (`sampan cluster testbed --tls`): the manager's Docker API on tcp:// and
 * its node endpoint on wss:// on the hosts' gateway, the engine's API on tcp://ITS_IP:2376, every side presenting
 * a certificate of the testbed's CA. The real docker CLI with --tlsverify drives the cluster; clients and engines
 * without a certificate of that CA are refused at the handshake; plain TCP or ws:// off loopback is refused at start.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import type { TestbedDescription } from '../../src/cluster/index.js';
import { makeCa, makeCert } from '../../src/cluster/testbed/certs.js';
import type { TlsPaths } from '../../src/lib/tls.js';
import { SAMPAN, TestEngine, runCmd, until } from '../harness.js';
import { TestCluster } from './harness.js';

describe('cluster with mutual TLS (testbed --tls)', () => {
  let c: TestCluster;
  let tb: TestbedDescription;
  /** A CA the cluster does not know, and a certificate of it. */
  let stranger: TlsPaths;
  const managerLog = () => readFileSync(path.join(c.dir, 'managers', 'm1', 'manager.log'), 'utf8');
  const tlsDocker = (certs: string[], args: string[]) =>
    runCmd('docker', ['--tlsverify', ...certs, '-H', tb.managers[0]!.host, ...args], { env: { DOCKER_CLI_HINTS: 'false' }, timeoutMs: 90_000 });
  const docker = (args: string[]) => tlsDocker(['--tlscacert', tb.tls!.ca, '--tlscert', tb.tls!.client.cert, '--tlskey', tb.tls!.client.key], args);

  before(async () => {
    c = await TestCluster.start(1, 'sptls', { tls: true });
    tb = c.tb;
    const dir = path.join(path.dirname(c.dir), 'stranger');
    stranger = await makeCert(await makeCa(dir, 'a stranger CA'), path.join(dir, 'cert'), 'stranger', ['127.0.0.1']);
  });

  after(async () => {
    await c?.stop();
  });

  test('testbed.json names the TLS files; the manager listens on the gateway; the engine joined over wss:// and serves its API on tcp://IP:2376', async () => {
    const gw = tb.network.gateway;
    const m = tb.managers[0]!;
    assert.match(m.host, new RegExp(`^tcp://${gw.replace(/\./g, '\\.')}:\\d+$`));
    assert.match(m.join, new RegExp(`^wss://${gw.replace(/\./g, '\\.')}:\\d+$`));
    assert.equal(m.socket, undefined);
    for (const f of [tb.tls!.ca, tb.tls!.client.ca, tb.tls!.client.cert, tb.tls!.client.key, tb.tls!.managers.cert, tb.hosts[0]!.tls!.cert]) assert.ok((await fs.stat(f)).isFile(), f);
    assert.equal(tb.tls!.certPath, path.dirname(tb.tls!.client.cert));
    const h = tb.hosts[0]!;
    assert.equal(h.api, `tcp://${h.ip}:2376`);
    // the sampan CLI through the manager, with DOCKER_CERT_PATH
    const r = await c.sampan(['node', 'inspect', 'host1']);
    assert.equal(r.code, 0, r.stderr);
    const [node] = JSON.parse(r.stdout) as Array<{ state: string; api: string }>;
    assert.equal(node!.state, 'up');
    assert.equal(node!.api, h.api);
    assert.match(readFileSync(path.join(c.dir, 'hosts', 'host1', 'engine.log'), 'utf8'), /"manager":"wss:\/\/[^"]+".*joined the cluster/);
  });

  test('docker --tlsverify creates, lists and logs a container through the manager, which drives the engine over mutual TLS', async () => {
    const run = await docker(['run', '-d', '--name', 'web', 'busybox', 'sh', '-c', 'echo hello-over-tls; sleep 600']);
    assert.equal(run.code, 0, run.stderr);
    const ps = await docker(['ps', '--format', '{{.Names}} {{.Status}}']);
    assert.equal(ps.code, 0, ps.stderr);
    assert.match(ps.stdout, /^host1\/web Up/m);
    await until(async () => (await docker(['logs', 'web'])).stdout === 'hello-over-tls\n', 30_000, 200);
    // DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, as a user would set them from the ready line
    const viaEnv = await c.docker(['inspect', '-f', '{{.Node.Name}} {{.State.Running}}', 'web']);
    assert.equal(viaEnv.stdout.trim(), 'host1 true', viaEnv.stderr);
    // the engine's own API takes the testbed's certificate, and the container is there
    const h = tb.hosts[0]!;
    const direct = await runCmd('docker', ['--tlsverify', '--tlscacert', tb.tls!.ca, '--tlscert', tb.tls!.client.cert, '--tlskey', tb.tls!.client.key, '-H', h.api, 'ps', '--format', '{{.Names}}']);
    assert.equal(direct.stdout.trim(), 'web', direct.stderr);
  });

  test('a client without a certificate of the CA is refused at the handshake, by the manager and by the engine', async () => {
    const noCert = await tlsDocker(['--tlscacert', tb.tls!.ca], ['ps']);
    assert.notEqual(noCert.code, 0);
    assert.match(noCert.stderr, /remote error: tls: certificate required/);
    // the docker CLI offers no certificate the server's CA list does not name: the same refusal
    const strangerCert = await tlsDocker(['--tlscacert', tb.tls!.ca, '--tlscert', stranger.cert, '--tlskey', stranger.key], ['ps']);
    assert.notEqual(strangerCert.code, 0);
    assert.match(strangerCert.stderr, /remote error: tls: certificate required/);
    const plain = await runCmd('docker', ['-H', tb.managers[0]!.host, 'ps'], { env: { DOCKER_CLI_HINTS: 'false' } });
    assert.notEqual(plain.code, 0);
    assert.doesNotMatch(plain.stdout, /CONTAINER ID/);
    assert.match(managerLog(), /"msg":"TLS handshake refused"/);
    const engine = await runCmd('docker', ['--tlsverify', '--tlscacert', tb.tls!.ca, '-H', tb.hosts[0]!.api, 'ps']);
    assert.match(engine.stderr, /remote error: tls: certificate required/);
  });

  test('an engine with a certificate of another CA, or trusting another CA, is refused at the handshake, logged, and retried (not the wrong-token path)', async (t) => {
    const join = (tls: TlsPaths) => ['--join', tb.managers[0]!.join, '--join-token', 'x'.repeat(32), '--node-name', 'intruder',
      '--join-tlscacert', tls.ca, '--join-tlscert', tls.cert, '--join-tlskey', tls.key, '--lxcfs', 'false'];
    const [untrusted, distrustful] = await Promise.all([
      TestEngine.start({ seed: false, args: join({ ...stranger, ca: tb.tls!.ca }) }),
      TestEngine.start({ seed: false, args: join(stranger) }),
    ]);
    t.after(() => Promise.all([untrusted.cleanup(), distrustful.cleanup()]));
    const count = (log: string, msg: string) => log.split('\n').filter((l) => l.includes(`"msg":"${msg}`)).length;
    // several attempts each: the backoff retries (200 ms doubling) without giving up
    await until(async () => count(untrusted.log, 'node agent: the manager hung up in the TLS handshake') >= 3, 30_000, 200);
    await until(async () => count(distrustful.log, 'node agent: refused the manager\'s certificate') >= 3, 30_000, 200);
    assert.match(distrustful.log, /"err":"self-signed certificate in certificate chain"/);
    for (const e of [untrusted, distrustful]) assert.doesNotMatch(e.log, /refused the join token/);
    assert.match(managerLog(), /"msg":"node endpoint: TLS handshake refused"/);
    assert.doesNotMatch(managerLog(), /join refused/);
    const nodes = await c.sampan(['node', 'ls', '--format', 'json']);
    assert.deepEqual(nodes.stdout.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { name: string }).name), ['host1']);
  });

  test('off loopback, plain TCP and ws:// are refused at start, and wss:// without certificates too', async () => {
    const gw = tb.network.gateway;
    const manager = (args: string[]) => runCmd(SAMPAN, ['cluster', 'manager', '--etcd', tb.etcd.endpoints[0]!, ...args]);
    const api = await manager(['--listen', `tcp://${gw}:2399`]);
    assert.notEqual(api.code, 0);
    assert.match(api.stderr, new RegExp(`refusing to listen on tcp://${gw}:2399 without mutual TLS: pass --tlscacert, --tlscert and --tlskey`));
    const ws = await manager(['--node-listen', `ws://${gw}:2398`]);
    assert.notEqual(ws.code, 0);
    assert.match(ws.stderr, /nodeListen: unix:\/\/\/PATH, ws:\/\/127\.0\.0\.1:PORT, or wss:\/\/HOST:PORT \(mutual TLS\) off loopback/);
    const wss = await manager(['--node-listen', `wss://${gw}:2398`]);
    assert.match(wss.stderr, new RegExp(`refusing to listen on wss://${gw}:2398 without mutual TLS`));
    const engine = (args: string[]) => runCmd(SAMPAN, ['engine', '--root', '/nonexistent', '--join-token', 'x', ...args]);
    const plainJoin = await engine(['--join', `ws://${gw}:2398`]);
    assert.notEqual(plainJoin.code, 0);
    assert.match(plainJoin.stderr, /join\.0: unix:\/\/\/PATH, ws:\/\/127\.0\.0\.1:PORT, or wss:\/\/HOST:PORT \(mutual TLS\) for a manager off this host/);
    const bareJoin = await engine(['--join', tb.managers[0]!.join]);
    assert.match(bareJoin.stderr, /refusing to join wss:\/\/.* without mutual TLS: pass --join-tlscacert, --join-tlscert and --join-tlskey \(or the engine's --tlscacert, --tlscert and --tlskey\)/);
  });
});
