/**
 * SwarmProxy on a testbed of two clusters (c1, c2: one host and two managers each, one etcd) with its proxy in
 * front, and a second proxy started here with a --map: the real docker CLI with --tlsverify reaches the cluster its
 * certificate names; certificates mapped to no cluster, expired, of another CA or missing are refused; a leader
 * switch, and a leader killed, keep the proxy working.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, promises as fs } from 'node:fs';
import https from 'node:https';
import tls from 'node:tls';
import path from 'node:path';
import { freePorts } from '../../src/lib/ports.js';
import { makeCa, makeCert } from '../../src/cluster/testbed/certs.js';
import type { ProxyInfo } from '../../src/cluster/testbed/testbed.js';
import { readTls, type TlsPaths } from '../../src/lib/tls.js';
import { SAMPAN, runCmd, until } from '../harness.js';
import { TestCluster } from './harness.js';

let c: TestCluster;
let proxy: ProxyInfo;
/** The second proxy, with --map team-b=c2. */
let second: { proc: ChildProcess; host: string; log: string };
const certs: Record<'alice' | 'nobody' | 'expired' | 'forged', TlsPaths> = {} as never;

const docker = (host: string, cert: TlsPaths, args: string[], input?: string) =>
  runCmd('docker', args, { env: { DOCKER_HOST: host, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: path.dirname(cert.cert), DOCKER_CLI_HINTS: 'false' }, input, timeoutMs: 90_000 });

function get(host: string, cert: TlsPaths, p: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const u = new URL(host.replace(/^tcp:/, 'https:'));
  return readTls(cert).then((t) => new Promise((resolve, reject) => {
    https.get({ ...t, host: u.hostname, port: Number(u.port), path: p, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    }).on('error', reject);
  }));
}

/** A request on a TLS connection that presents `cert`: undefined once an answer comes, else the error. */
async function handshake(cert: TlsPaths): Promise<Error | undefined> {
  const u = new URL(proxy.host.replace(/^tcp:/, 'https:'));
  const t = await readTls(cert);
  return new Promise((resolve) => {
    const s = tls.connect({ ...t, host: u.hostname, port: Number(u.port) }, () => s.write('GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    s.on('data', () => {
      resolve(undefined);
      s.destroy();
    });
    s.on('error', resolve);
    s.on('close', () => resolve(new Error('closed without an answer')));
  });
}

const names = async (host: string, cert: TlsPaths) => {
  const r = await docker(host, cert, ['ps', '--format', '{{.Names}}']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim().split('\n').map((n) => n.replace(/^.*\//, '')).sort();
};

before(async () => {
  c = await TestCluster.start(1, 'proxy', { managers: 2, clusters: 2 });
  proxy = c.tb.proxy!;
  // certificates of the proxy's CA (the testbed's), and one of another CA
  const ca = { cert: path.join(c.dir, 'proxy', 'ca.pem'), key: path.join(c.dir, 'proxy', 'ca-key.pem') };
  const d = path.join(path.dirname(c.dir), 'certs');
  certs.alice = await makeCert(ca, path.join(d, 'alice'), 'alice', [], { ou: ['ops', 'team-b'] });
  certs.nobody = await makeCert(ca, path.join(d, 'nobody'), 'nobody', [], { ou: ['ops'] });
  certs.expired = await makeCert(ca, path.join(d, 'expired'), 'c1', [], { days: -1 });
  certs.forged = await makeCert(await makeCa(path.join(d, 'other-ca'), 'not the proxy\'s CA'), path.join(d, 'forged'), 'c1', []);
  await fs.copyFile(ca.cert, certs.forged.ca);
  const [port] = await freePorts(1);
  const server = path.join(c.dir, 'proxy', 'server');
  const log = path.join(path.dirname(c.dir), 'proxy2.log');
  const fd = openSync(log, 'a');
  const host = `tcp://127.0.0.1:${port}`;
  const proc = spawn(SAMPAN, [
    'cluster', 'proxy', '--listen', host, '--tlscacert', path.join(server, 'ca.pem'), '--tlscert', path.join(server, 'cert.pem'), '--tlskey', path.join(server, 'key.pem'),
    '--cluster', `c1=${c.tb.etcd.endpoints.join(',')}`, '--cluster', `c2=${c.tb.etcd.endpoints.join(',')}`, '--map', 'team-b=c2',
  ], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  second = { proc, host, log };
  await until(async () => (await get(host, certs.alice, '/_ping').catch(() => undefined))?.status === 200, 30_000);
  for (const [cl, name] of [['c1', 'pa'], ['c2', 'pb']]) {
    const r = await docker(proxy.host, proxy.clients[cl]!, ['run', '-d', '--name', name, 'busybox', 'sleep', '600']);
    assert.equal(r.code, 0, r.stderr);
  }
});

after(async () => {
  second?.proc.kill('SIGKILL');
  await c?.stop();
});

test('each cluster\'s certificate reaches that cluster: its containers, its name in info and in X-Sampan-Cluster', async () => {
  assert.deepEqual(await names(proxy.host, proxy.clients.c1!), ['pa']);
  assert.deepEqual(await names(proxy.host, proxy.clients.c2!), ['pb']);
  for (const cl of ['c1', 'c2']) {
    const info = await docker(proxy.host, proxy.clients[cl]!, ['info', '--format', '{{.Name}} {{json .SystemStatus}}']);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, new RegExp(`^${cl} .*"Role","primary"`));
    const ping = await get(proxy.host, proxy.clients[cl]!, '/_ping');
    assert.equal(ping.status, 200);
    assert.equal(ping.headers['x-sampan-cluster'], cl);
    assert.equal(ping.headers['x-sampan-role'], 'leader');
    const ps = await get(proxy.host, proxy.clients[cl]!, '/containers/json');
    assert.equal(ps.headers['x-sampan-cluster'], cl);
  }
});

test('a second proxy side by side answers alike; --map sends a certificate by its OU', async () => {
  assert.deepEqual(await names(second.host, proxy.clients.c1!), ['pa']);
  assert.deepEqual(await names(second.host, certs.alice), ['pb']);
  // the testbed's proxy has no --map: alice's CN and OUs name no cluster there
  const r = await docker(proxy.host, certs.alice, ['ps']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /your certificate \(CN=alice, OU=ops\+team-b\) is mapped to no cluster/);
});

test('exec, exec -i and run (attach) pass through the proxy', async () => {
  const e = await docker(proxy.host, proxy.clients.c1!, ['exec', 'pa', 'echo', 'hi from c1']);
  assert.equal(e.code, 0, e.stderr);
  assert.equal(e.stdout, 'hi from c1\n');
  const i = await docker(second.host, certs.alice, ['exec', '-i', 'pb', 'cat'], 'typed into c2\n');
  assert.equal(i.code, 0, i.stderr);
  assert.equal(i.stdout, 'typed into c2\n');
  const run = await docker(proxy.host, proxy.clients.c2!, ['run', '--rm', 'busybox', 'echo', 'ran']);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, 'ran\n');
});

test('a certificate mapped to no cluster gets a 403 that says so', async () => {
  const r = await docker(second.host, certs.nobody, ['ps']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Error response from daemon: your certificate \(CN=nobody, OU=ops\) is mapped to no cluster/);
  const g = await get(second.host, certs.nobody, '/info');
  assert.equal(g.status, 403);
  assert.deepEqual(JSON.parse(g.body), { message: 'your certificate (CN=nobody, OU=ops) is mapped to no cluster' });
  const x = await docker(second.host, certs.nobody, ['exec', 'pa', 'true']);
  assert.match(x.stderr, /is mapped to no cluster/);
});

test('no certificate, an expired one and one of another CA are refused at the handshake', async () => {
  const none = await runCmd('docker', ['--tlsverify', '--tlscacert', proxy.clients.c1!.ca, '-H', proxy.host, 'ps'], { env: { DOCKER_CERT_PATH: '/nonexistent', DOCKER_CLI_HINTS: 'false' } });
  assert.notEqual(none.code, 0);
  assert.match(none.stderr, /tls: certificate required/);
  assert.equal(await handshake(proxy.clients.c1!), undefined);
  for (const cert of [certs.expired, certs.forged]) {
    const r = await docker(proxy.host, cert, ['ps']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /error during connect/);
    // presented for sure (the docker CLI keeps back a certificate of a CA the server does not ask for)
    const err = await handshake(cert);
    assert.ok(err, 'the proxy answered a request on a refused certificate');
  }
  const log = await fs.readFile(path.join(c.dir, 'proxy', 'proxy.log'), 'utf8');
  assert.match(log, /TLS handshake refused/);
});

test('a leader switch keeps the proxy working: it follows the new leader', async () => {
  const manager = async () => JSON.parse((await get(proxy.host, proxy.clients.c1!, '/sampan/v1/manager')).body) as { name: string; role: string };
  const before = await manager();
  assert.equal(before.role, 'leader');
  const sw = await runCmd(SAMPAN, ['--host', `unix://${path.join(c.dir, 'c1.sock')}`, 'cluster', 'switch']);
  assert.equal(sw.code, 0, sw.stderr);
  assert.match(sw.stdout, / handed over to /);
  // the manager the proxy reaches answers for itself: once the proxy saw the switch it is the new leader
  await until(async () => {
    const m = await manager();
    return m.name !== before.name && m.role === 'leader';
  }, 20_000);
  assert.deepEqual(await names(proxy.host, proxy.clients.c1!), ['pa']);
  const r = await docker(proxy.host, proxy.clients.c1!, ['run', '-d', '--name', 'pa2', 'busybox', 'sleep', '600']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await names(second.host, proxy.clients.c1!), ['pa', 'pa2']);
  assert.deepEqual(await names(second.host, certs.alice), ['pb']);
});

test('a leader killed: a request through the proxy waits for the next leader and is answered', async () => {
  const manager = async () => JSON.parse((await get(proxy.host, proxy.clients.c2!, '/sampan/v1/manager')).body) as { name: string; role: string };
  const dead = await manager();
  // a manager's name is HOSTNAME-PID
  const pid = Number(dead.name.split('-').pop());
  assert.ok(c.tb.managers.some((m) => m.cluster === 'c2' && m.pid === pid), `${dead.name} is none of c2's managers`);
  process.kill(pid, 'SIGKILL');
  assert.deepEqual(await names(proxy.host, proxy.clients.c2!), ['pb']);
  const now = await manager();
  assert.notEqual(now.name, dead.name);
  assert.equal(now.role, 'leader');
});

test('SIGTERM stops a proxy gracefully', async () => {
  const exited = new Promise<number | null>((r) => second.proc.once('exit', (code) => r(code)));
  second.proc.kill('SIGTERM');
  assert.equal(await exited, 0);
  assert.match(await fs.readFile(second.log, 'utf8'), /cluster proxy stopped/);
});
