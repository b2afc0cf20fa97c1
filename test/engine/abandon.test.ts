/**
 * Clients that walk away from streaming responses (issue 14, finding 1): for each streaming route, 50 clients read a
 * little and drop the connection; the engine still answers, holds no more open files than before and leaves no
 * processes behind (exec sessions, build containers, tar or pull workers).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { TestEngine, until } from '../harness.js';
import { TestRegistry } from '../registry/harness.js';
import { abandon, abandonUpload, holdings, leftOver, processesWith, settled, type AbandonRequest } from '../abandon.js';

const ROUNDS = 50;
const UPGRADE = { 'Content-Type': 'application/json', Connection: 'Upgrade', Upgrade: 'tcp' };

let e: TestEngine;
let cid: string;

before(async () => {
  e = await TestEngine.start();
  // a big file to copy out, and a log with history plus a steady trickle
  const r = await e.docker(['run', '-d', 'busybox', 'sh', '-c', 'dd if=/dev/zero of=/big bs=1M count=20 2>/dev/null; seq 1 20000; while true; do echo tick; sleep 0.2; done']);
  assert.equal(r.code, 0, r.stderr);
  cid = r.stdout.trim();
  await until(async () => (await e.docker(['logs', '--tail', '1', cid])).stdout.includes('tick'), 30_000);
});
after(async () => {
  await e?.cleanup();
});

/** ROUNDS clients read a little of the response and go away; then the engine must be as it was. */
async function abandonRounds(req: AbandonRequest | (() => Promise<AbandonRequest>)): Promise<void> {
  const pid = e.proc!.pid!;
  const before = await holdings(pid, e.dir);
  for (let i = 0; i < ROUNDS; i++) {
    const status = await abandon({ path: e.sock }, typeof req === 'function' ? await req() : req);
    assert.match(status, /^HTTP\/1\.1 (200|101) /, `round ${i}`);
  }
  assert.equal((await e.api('GET', '/_ping')).status, 200, `the engine stopped answering:\n${e.log.slice(-3000)}`);
  assert.deepEqual(await leftOver(pid, before, e.dir), []);
}

test('docker cp out of a container (GET /containers/{id}/archive), abandoned', async () => {
  await abandonRounds({ path: `/containers/${cid}/archive?path=/big` });
});

test('docker export (GET /containers/{id}/export), abandoned', async () => {
  await abandonRounds({ path: `/containers/${cid}/export` });
});

test('docker save (GET /images/get), abandoned', async () => {
  await abandonRounds({ path: '/images/get?names=busybox:latest' });
});

test('docker logs -f (GET /containers/{id}/logs?follow=1), abandoned', async () => {
  await abandonRounds({ path: `/containers/${cid}/logs?stdout=1&stderr=1&follow=1` });
});

test('docker events (GET /events), abandoned', async () => {
  await abandonRounds({ path: '/events', bytes: 0 });
});

test('docker stats (GET /containers/{id}/stats), abandoned', async () => {
  await abandonRounds({ path: `/containers/${cid}/stats?stream=1` });
});

test('docker attach (a hijacked POST /containers/{id}/attach), abandoned; the container keeps running', async () => {
  await abandonRounds({ method: 'POST', path: `/containers/${cid}/attach?stream=1&stdout=1&stderr=1`, headers: UPGRADE, bytes: 8 });
  assert.equal((await e.docker(['inspect', '-f', '{{.State.Running}}', cid])).stdout.trim(), 'true');
});

test('docker exec (a hijacked POST /exec/{id}/start), abandoned: the session process is killed, as its client is gone', async () => {
  const ids: string[] = [];
  await abandonRounds(async () => {
    const r = await e.api('POST', `/containers/${cid}/exec`, { Cmd: ['sh', '-c', 'while :; do cat /big; done', 'abandoned-exec'], AttachStdout: true, AttachStderr: true });
    assert.equal(r.status, 201, r.body.toString());
    ids.push(r.json<{ Id: string }>().Id);
    // with an upgrade (the docker CLI) and without (the stream is the response body)
    const headers = ids.length % 2 ? UPGRADE : { 'Content-Type': 'application/json' };
    return { method: 'POST', path: `/exec/${ids.at(-1)}/start`, headers, body: Buffer.from(JSON.stringify({ Detach: false, Tty: false })) };
  });
  const running = (await Promise.all(ids.map(async (id) => (await e.api('GET', `/exec/${id}/json`)).json<{ Running: boolean }>().Running))).filter(Boolean);
  assert.equal(running.length, 0);
  assert.deepEqual(await processesWith('abandoned-exec'), []);
});

/** An in-memory build context. */
async function contextTar(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, body] of Object.entries(files)) pack.entry({ name }, body);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

test('docker build (POST /build), abandoned while a RUN step streams: the build stops and its container goes', async () => {
  const body = await contextTar({ Dockerfile: 'FROM busybox\nRUN seq 1 100000; sleep 300\n' });
  const containers = (await e.docker(['ps', '-aq'])).stdout;
  // past the step headers, into the RUN step's output
  await abandonRounds({ method: 'POST', path: '/build?rm=1&forcerm=1', headers: { 'Content-Type': 'application/x-tar' }, body, bytes: 8192 });
  const left = await settled(async () => {
    const now = (await e.docker(['ps', '-aq'])).stdout;
    return now === containers ? [] : [`containers left: ${now}`];
  });
  assert.deepEqual(left, []);
});

test('docker pull and push (POST /images/create, POST /images/{name}/push), abandoned; a later pull works', async () => {
  const reg = await TestRegistry.start();
  try {
    const ref = `${reg.hostPort}/abandon/busybox`;
    assert.equal((await e.docker(['tag', 'busybox', `${ref}:1`])).code, 0);
    const auth = { 'X-Registry-Auth': Buffer.from('{}').toString('base64') };
    await abandonRounds({ method: 'POST', path: `/images/${ref}/push?tag=1`, headers: auth, bytes: 1 });
    const pushed = await e.docker(['push', `${ref}:1`], { timeoutMs: 60_000 });
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.equal((await e.docker(['rmi', `${ref}:1`])).code, 0);
    await abandonRounds({ method: 'POST', path: `/images/create?fromImage=${encodeURIComponent(ref)}&tag=1`, headers: auth, bytes: 1 });
    const pulled = await e.docker(['pull', `${ref}:1`], { timeoutMs: 60_000 });
    assert.equal(pulled.code, 0, pulled.stderr);
  } finally {
    await reg.cleanup();
  }
});

test('uploads dropped midway (docker cp in, load, import, build context; gzip): the engine stays up and holds nothing', async () => {
  // incompressible, so the part sent is more than a socket buffer holds
  const gz = gzipSync(await contextTar({ Dockerfile: 'FROM busybox\n', data: randomBytes(8 << 20).toString('base64') }));
  const routes = [
    { method: 'PUT', path: `/containers/${cid}/archive?path=/tmp` },
    { method: 'POST', path: '/images/load' },
    { method: 'POST', path: '/images/create?fromSrc=-&repo=dropped' },
    { method: 'POST', path: '/build' },
  ];
  const pid = e.proc!.pid!;
  const before = await holdings(pid, e.dir);
  for (const r of routes) {
    for (let i = 0; i < 10; i++) await abandonUpload({ path: e.sock }, { ...r, headers: { 'Content-Type': 'application/x-tar' } }, gz, gz.length >> 1);
    assert.equal((await e.api('GET', '/_ping')).status, 200, `the engine stopped answering after uploads to ${r.path} were dropped:\n${e.log.slice(-3000)}`);
  }
  assert.deepEqual(await leftOver(pid, before, e.dir), []);
});
