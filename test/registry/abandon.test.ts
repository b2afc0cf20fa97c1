/**
 * Clients that walk away from blob downloads (issue 14, finding 1): 50 clients read a little of a blob and drop the
 * connection; the registry still answers, holds no more open files than before and starts no processes that stay.
 * Served from its own storage, and as a pull-through mirror while the blob still comes from the upstream.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { TestRegistry } from './harness.js';
import { abandon, abandonUpload, holdings, leftOver, type AbandonRequest } from '../abandon.js';

const ROUNDS = 50;

let up: TestRegistry;
let mirror: TestRegistry;

before(async () => {
  up = await TestRegistry.start();
  mirror = await TestRegistry.start({ args: ['--proxy-remote', up.base] });
});
after(async () => {
  await mirror?.cleanup();
  await up?.cleanup();
});

async function abandonRounds(reg: TestRegistry, req: (i: number) => AbandonRequest): Promise<void> {
  const pid = reg.proc!.pid!;
  const before = await holdings(pid);
  for (let i = 0; i < ROUNDS; i++) {
    const status = await abandon({ host: '127.0.0.1', port: reg.port }, req(i));
    assert.match(status, /^HTTP\/1\.1 20[06] /, `round ${i}`);
  }
  assert.equal((await reg.req('GET', '/v2/')).status, 200, `the registry stopped answering:\n${reg.log.slice(-3000)}`);
  assert.deepEqual(await leftOver(pid, before), []);
}

test('GET a blob (whole and ranged), abandoned; the blob still reads whole after', async () => {
  const data = randomBytes(20 << 20);
  const digest = await up.pushBlob('abandon/big', data);
  await abandonRounds(up, (i) => ({ path: `/v2/abandon/big/blobs/${digest}`, headers: i % 2 ? { Range: 'bytes=1000-' } : undefined }));
  const whole = await up.req('GET', `/v2/abandon/big/blobs/${digest}`);
  assert.equal(whole.status, 200);
  assert.ok(whole.body.equals(data));
});

test('GET a blob through the mirror while it still comes from the upstream, abandoned; it reads whole after', async () => {
  const blobs: Array<{ digest: string; data: Buffer }> = [];
  for (let i = 0; i < ROUNDS; i++) {
    const data = randomBytes(2 << 20);
    blobs.push({ digest: await up.pushBlob('abandon/mirrored', data), data });
  }
  await abandonRounds(mirror, (i) => ({ path: `/v2/abandon/mirrored/blobs/${blobs[i]!.digest}` }));
  for (const b of blobs.slice(0, 5)) {
    const r = await mirror.req('GET', `/v2/abandon/mirrored/blobs/${b.digest}`);
    assert.equal(r.status, 200);
    assert.ok(r.body.equals(b.data));
  }
});

test('blob uploads (monolithic and PATCH) dropped midway leave the registry up and holding nothing', async () => {
  const pid = up.proc!.pid!;
  const before = await holdings(pid);
  const data = randomBytes(8 << 20);
  for (let i = 0; i < ROUNDS; i++) {
    const start = await up.req('POST', '/v2/abandon/upload/blobs/uploads/');
    assert.equal(start.status, 202);
    const location = String(start.headers.location);
    const r = i % 2 ? { method: 'PATCH', path: location } : { method: 'PUT', path: `${location}${location.includes('?') ? '&' : '?'}digest=sha256:${'0'.repeat(64)}` };
    await abandonUpload({ host: '127.0.0.1', port: up.port }, { ...r, headers: { 'Content-Type': 'application/octet-stream' } }, data, data.length >> 1);
  }
  assert.equal((await up.req('GET', '/v2/')).status, 200, `the registry stopped answering:\n${up.log.slice(-3000)}`);
  assert.deepEqual(await leftOver(pid, before), []);
});
