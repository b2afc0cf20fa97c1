import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SAMPAN, freePort, runCmd, until } from '../harness.js';

const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'st-'));
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function openssl(args: string[]) {
  const r = await runCmd('openssl', args);
  assert.equal(r.code, 0, r.stderr);
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, as `docker --tlsverify` expects them. */
async function makeCerts() {
  const f = (n: string) => path.join(dir, n);
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca-key.pem'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=sampan-test-ca']);
  await fs.writeFile(f('server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await fs.writeFile(f('client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const who of ['server', 'client']) {
    await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${who}-key.pem`), '-out', f(`${who}.csr`), '-subj', `/CN=${who}`]);
    await openssl(['x509', '-req', '-in', f(`${who}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca-key.pem'), '-CAcreateserial', '-out', f(`${who}.pem`), '-days', '2', '-extfile', f(`${who}.ext`)]);
  }
  const certDir = await fs.mkdtemp(path.join(dir, 'client-'));
  await fs.copyFile(f('ca.pem'), path.join(certDir, 'ca.pem'));
  await fs.copyFile(f('client.pem'), path.join(certDir, 'cert.pem'));
  await fs.copyFile(f('client-key.pem'), path.join(certDir, 'key.pem'));
  return { ca: f('ca.pem'), cert: f('server.pem'), key: f('server-key.pem'), certDir };
}

test('TCP without TLS is refused at start', async () => {
  const port = await freePort();
  const r = await runCmd(SAMPAN, ['engine', '--root', path.join(dir, 'r0'), '--exec-root', path.join(dir, 'x0'), '--host', `tcp://127.0.0.1:${port}`], { timeoutMs: 20_000 });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /mutual TLS/);
});

test('TCP with mutual TLS: the docker CLI with a client certificate works, without one it is refused', async () => {
  const c = await makeCerts();
  const port = await freePort();
  const sock = path.join(dir, 'e.sock');
  const eng = spawn(SAMPAN, ['engine', '--root', path.join(dir, 'r1'), '--exec-root', path.join(dir, 'x1'), '--host', `unix://${sock}`, '--host', `tcp://127.0.0.1:${port}`, '--tlscacert', c.ca, '--tlscert', c.cert, '--tlskey', c.key], { stdio: 'ignore' });
  try {
    const env = { DOCKER_HOST: `tcp://127.0.0.1:${port}`, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: c.certDir };
    const ok = await until(async () => {
      const r = await runCmd('docker', ['version', '--format', '{{.Server.APIVersion}}'], { env });
      return r.code === 0 ? r : undefined;
    }, 20_000, 200);
    assert.equal(ok!.stdout.trim(), "1.44");
    // hijacked streams over TLS: the CLI half-closes the connection once its input ends, and reads the output after
    assert.equal((await runCmd(SAMPAN, ['image', 'seed', '--host', `unix://${sock}`])).code, 0);
    const run = await runCmd('docker', ['run', '--rm', 'busybox', 'echo', 'attached'], { env, timeoutMs: 60_000 });
    assert.equal(run.stdout, 'attached\n', run.stderr);
    assert.equal((await runCmd('docker', ['run', '-d', '--name', 'tls-exec', 'busybox', 'sleep', '60'], { env })).code, 0);
    const exec = await runCmd('docker', ['exec', '-i', 'tls-exec', 'cat'], { env, input: 'through TLS\n' });
    assert.equal(exec.stdout, 'through TLS\n', exec.stderr);
    assert.equal((await runCmd('docker', ['rm', '-f', 'tls-exec'], { env })).code, 0);
    const noCert = await runCmd('curl', ['-sk', '--max-time', '5', `https://127.0.0.1:${port}/_ping`]);
    assert.notEqual(noCert.code, 0, 'a client without a certificate must not get an answer');
    const plain = await runCmd('curl', ['-s', '--max-time', '5', `http://127.0.0.1:${port}/_ping`]);
    assert.notEqual(plain.stdout, 'OK');
  } finally {
    const gone = new Promise((r) => eng.once('exit', r));
    eng.kill('SIGTERM');
    await gone;
  }
});
