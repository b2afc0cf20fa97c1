import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { TestEngine, freePort, runCmd, SAMPAN, until, type ApiResult } from '../harness.js';

let e: TestEngine;
before(async () => {
  e = await TestEngine.start();
});
after(async () => {
  await e?.cleanup();
});

/** Every response carries Docker's identifying headers. */
function assertHeaders(r: ApiResult, what: string): void {
  assert.equal(r.headers['api-version'], '1.44', `${what}: Api-Version`);
  assert.equal(r.headers['ostype'], 'linux', `${what}: Ostype`);
  assert.match(String(r.headers['server']), /^Sampan/, `${what}: Server`);
}

/** An error response: the status, the headers, and a JSON body {"message": "..."}; returns the message. */
function assertError(r: ApiResult, status: number, what: string): string {
  assert.equal(r.status, status, `${what}: ${r.body.toString()}`);
  assertHeaders(r, what);
  assert.match(String(r.headers['content-type']), /^application\/json/, `${what}: Content-Type`);
  const body = r.json() as Record<string, unknown>;
  assert.deepEqual(Object.keys(body), ['message'], `${what}: ${r.body.toString()}`);
  assert.equal(typeof body.message, 'string');
  assert.ok((body.message as string).length > 0);
  return body.message as string;
}

const allIds = async () => ((await e.api('GET', '/containers/json?all=1')).json() as Array<{ Id: string }>).map((c) => c.Id).sort();

test('unknown containers, images and routes are 404 with a JSON message', async () => {
  assert.match(assertError(await e.api('GET', '/containers/nosuch/json'), 404, 'inspect'), /No such container: nosuch/);
  assert.match(assertError(await e.api('POST', '/containers/nosuch/start'), 404, 'start'), /No such container/);
  assert.match(assertError(await e.api('DELETE', '/containers/nosuch'), 404, 'rm'), /No such container/);
  assert.match(assertError(await e.api('GET', '/images/nosuch/json'), 404, 'image inspect'), /No such image: nosuch/);
  assert.match(assertError(await e.api('DELETE', '/images/nosuch'), 404, 'rmi'), /No such image/);
  assertError(await e.api('GET', '/no/such/route'), 404, 'unknown route');
  assertError(await e.api('GET', '/v1.44/no/such/route'), 404, 'unknown versioned route');
  assertError(await e.api('PATCH', '/containers/json'), 404, 'wrong method');
});

test('swarm routes answer 503 "not a swarm manager", as a standalone dockerd does', async () => {
  for (const p of ['/swarm', '/nodes', '/services', '/v1.44/services/x', '/tasks', '/secrets', '/configs']) {
    assert.match(assertError(await e.api('GET', p), 503, p), /This node is not a swarm manager/);
  }
  assert.match((await e.docker(['service', 'ls'])).stderr, /not a swarm manager/);
});

test('a duplicate container name is 409', async () => {
  const body = { Image: 'busybox', Cmd: ['true'] };
  const first = await e.api('POST', '/containers/create?name=dup', body);
  assert.equal(first.status, 201, first.body.toString());
  assertHeaders(first, 'create');
  const id = (first.json() as { Id: string }).Id;
  const msg = assertError(await e.api('POST', '/containers/create?name=dup', body), 409, 'second create');
  assert.match(msg, /"\/dup" is already in use/);
  assert.ok(msg.includes(id), msg);
  assert.equal((await e.docker(['rm', 'dup'])).code, 0);
});

test('state conflicts: start running 304, stop stopped 304, kill stopped 409, rm running 409, rmi used 409', async () => {
  const created = await e.api('POST', '/containers/create?name=st', { Image: 'busybox', Cmd: ['sleep', '300'] });
  assert.equal(created.status, 201, created.body.toString());
  // a created container: stop is "not modified", kill a conflict
  const stopCreated = await e.api('POST', '/containers/st/stop');
  assert.equal(stopCreated.status, 304);
  assertError(await e.api('POST', '/containers/st/kill'), 409, 'kill created');

  const start = await e.api('POST', '/containers/st/start');
  assert.equal(start.status, 204, start.body.toString());
  assertHeaders(start, 'start');
  const again = await e.api('POST', '/containers/st/start');
  assert.equal(again.status, 304);
  assertHeaders(again, 'start running');
  assert.equal(again.body.length, 0);
  // the CLI treats 304 on start as success
  assert.equal((await e.docker(['start', 'st'])).code, 0);

  const rmRunning = assertError(await e.api('DELETE', '/containers/st'), 409, 'rm running');
  assert.match(rmRunning, /stop the container before removing or force remove/);
  const rmi = assertError(await e.api('DELETE', '/images/busybox'), 409, 'rmi used');
  assert.match(rmi, /conflict/);
  assert.equal((await e.api('GET', '/images/busybox/json')).status, 200);

  const stop = await e.api('POST', '/containers/st/stop?t=1');
  assert.equal(stop.status, 204, stop.body.toString());
  const stopAgain = await e.api('POST', '/containers/st/stop');
  assert.equal(stopAgain.status, 304);
  assertHeaders(stopAgain, 'stop stopped');
  assert.match(assertError(await e.api('POST', '/containers/st/kill'), 409, 'kill stopped'), /is not running/);
  // stopped, but still a user of the image
  assertError(await e.api('DELETE', '/images/busybox'), 409, 'rmi used by stopped');
  const rm = await e.api('DELETE', '/containers/st');
  assert.equal(rm.status, 204, rm.body.toString());
});

test('API versions: too new and too old are 400; unversioned and supported ones work', async () => {
  const tooNew = assertError(await e.api('GET', '/v1.99/version'), 400, 'v1.99');
  assert.match(tooNew, /too new/);
  assert.match(tooNew, /1\.44/);
  const tooOld = assertError(await e.api('GET', '/v1.12/version'), 400, 'v1.12');
  assert.match(tooOld, /too old/);
  for (const p of ['/version', '/v1.44/version', '/v1.40/version']) {
    const r = await e.api('GET', p);
    assert.equal(r.status, 200, p);
    assertHeaders(r, p);
    const v = r.json() as { ApiVersion: string; Os: string };
    assert.equal(v.ApiVersion, '1.44');
    assert.equal(v.Os, 'linux');
  }
  // the CLI negotiates and works
  const cli = await e.docker(['version', '--format', '{{.Server.APIVersion}}']);
  assert.equal(cli.code, 0, cli.stderr);
  assert.equal(cli.stdout.trim(), '1.44');
});

test('GET and HEAD /_ping answer 200 OK', async () => {
  const get = await e.api('GET', '/_ping');
  assert.equal(get.status, 200);
  assert.equal(get.body.toString(), 'OK');
  assertHeaders(get, 'GET /_ping');
  const head = await e.api('HEAD', '/_ping');
  assert.equal(head.status, 200);
  assert.equal(head.body.length, 0);
  assertHeaders(head, 'HEAD /_ping');
  const versioned = await e.api('GET', '/v1.44/_ping');
  assert.equal(versioned.body.toString(), 'OK');
});

test('bad create bodies are 400 and create nothing; unknown fields are accepted as Docker does', async () => {
  const before = await allIds();
  const malformed = assertError(await e.api('POST', '/containers/create', '{"Image": "busybox", "Cmd": ['), 400, 'malformed JSON');
  assert.match(malformed, /JSON/);
  assertError(await e.api('POST', '/containers/create?name=typed1', { Image: 'busybox', Cmd: 5 }), 400, 'Cmd: 5');
  const mem = assertError(await e.api('POST', '/containers/create?name=typed2', { Image: 'busybox', HostConfig: { Memory: 'lots' } }), 400, 'Memory: lots');
  assert.match(mem, /Memory/);
  assertError(await e.api('POST', '/containers/create', { Image: 'busybox', Env: 'A=1' }), 400, 'Env as a string');
  assertError(await e.api('POST', '/containers/create', { Image: 'busybox', Labels: { a: 1 } }), 400, 'label value a number');
  assertError(await e.api('POST', '/containers/create', [1, 2]), 400, 'a list');
  assertError(await e.api('POST', '/containers/create', ''), 400, 'empty body');
  const noImage = assertError(await e.api('POST', '/containers/create', { Cmd: ['true'] }), 400, 'missing Image');
  assert.match(noImage, /Image/);
  const unknownImage = assertError(await e.api('POST', '/containers/create', { Image: 'nosuchimage:1', Cmd: ['true'] }), 404, 'unknown image');
  assert.match(unknownImage, /nosuchimage/);
  const policy = assertError(await e.api('POST', '/containers/create', { Image: 'busybox', HostConfig: { RestartPolicy: { Name: 'sometimes' } } }), 400, 'bad restart policy');
  assert.match(policy, /restart policy/);
  assertError(await e.api('POST', '/containers/create', { Image: 'busybox', HostConfig: { RestartPolicy: { Name: 'always', MaximumRetryCount: 3 } } }), 400, 'retry count with always');
  for (const bad of ['-leading-dash', 'has/slash', 'spa ce', 'é']) {
    const msg = assertError(await e.api('POST', `/containers/create?name=${encodeURIComponent(bad)}`, { Image: 'busybox' }), 400, `name ${bad}`);
    assert.match(msg, /Invalid container name/);
  }
  assert.deepEqual(await allIds(), before);
  assert.equal((await e.api('GET', '/containers/typed1/json')).status, 404);

  // the CLI shows these messages
  const cli = await e.docker(['create', '--name', 'bad/name', 'busybox']);
  assert.notEqual(cli.code, 0);
  assert.match(cli.stderr, /Invalid container name/);
  const cliPolicy = await e.docker(['create', '--restart', 'sometimes', 'busybox']);
  assert.notEqual(cliPolicy.code, 0);
  assert.deepEqual(await allIds(), before);

  // fields the engine does not know are ignored, as Docker's JSON decoding does
  const extra = await e.api('POST', '/containers/create?name=extra', { Image: 'busybox', Cmd: ['echo', 'extra-ok'], NoSuchField: { nested: [1, 2] }, HostConfig: { AlsoUnknown: true } });
  assert.equal(extra.status, 201, extra.body.toString());
  assertHeaders(extra, 'create with unknown fields');
  const run = await e.docker(['start', '-a', 'extra']);
  assert.equal(run.stdout, 'extra-ok\n');
  assert.equal((await e.docker(['rm', 'extra'])).code, 0);
  assert.deepEqual(await allIds(), before);
});

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}


test('the engine refuses to listen on TCP without mutual TLS', async () => {
  const port = await freePort();
  const dir = path.join(e.dir, 'tcp');
  const sock = path.join(dir, 'other.sock');
  const r = await runCmd(SAMPAN, ['engine', '--root', path.join(dir, 'root'), '--exec-root', path.join(dir, 'run'), '--host', `unix://${sock}`, '--host', `tcp://127.0.0.1:${port}`], { timeoutMs: 20_000 });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /mutual TLS/);
  assert.match(r.stderr, /--tlscacert/);
  assert.equal(await listening(port), false);
  assert.equal(await fs.stat(sock).then(() => true, () => false), false, 'the unix socket was created');
  // half the TLS material is not enough either
  const half = await runCmd(SAMPAN, ['engine', '--root', path.join(dir, 'root'), '--exec-root', path.join(dir, 'run'), '--host', `tcp://127.0.0.1:${port}`, '--tlscert', '/etc/hostname'], { timeoutMs: 20_000 });
  assert.notEqual(half.code, 0);
  assert.match(half.stderr, /mutual TLS/);
  assert.equal(await listening(port), false);
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('SIGTERM stops the engine cleanly; the container keeps running and a restarted engine adopts it', { timeout: 120_000 }, async () => {
  const r = await e.docker(['run', '-d', '--name', 'survivor', 'busybox', 'sh', '-c', 'while true; do echo beat; sleep 0.2; done']);
  assert.equal(r.code, 0, r.stderr);
  const pid = Number((await e.docker(['inspect', '-f', '{{.State.Pid}}', 'survivor'])).stdout.trim());
  assert.ok(pid > 0);
  // a client in the middle of a long-lived stream does not hold the engine up
  const events = e.api('GET', '/events').catch(() => undefined);

  const code = await Promise.race([e.terminate(), new Promise<string>((r) => setTimeout(() => r('still running after 30s'), 30_000).unref())]);
  assert.equal(code, 0, e.log);
  await events;
  assert.equal(alive(pid), true, 'the container process died with the engine');
  assert.equal(await e.api('GET', '/_ping').then(() => 'answered', () => 'refused'), 'refused');
  const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8');
  assert.match(cmdline, /^sh\0-c\0while true/);

  await e.launch();
  const st = await e.docker(['inspect', '-f', '{{.State.Status}} {{.State.Running}} {{.State.Pid}}', 'survivor']);
  assert.equal(st.stdout.trim(), `running true ${pid}`);
  assert.match((await e.docker(['ps', '--format', '{{.Names}} {{.Status}}'])).stdout, /^survivor Up /m);
  assert.equal((await e.docker(['exec', 'survivor', 'echo', 'still-managed'])).stdout, 'still-managed\n');
  await until(async () => ((await e.docker(['logs', '--tail', '1', 'survivor'])).stdout === 'beat\n'));
  // and it can be stopped through the new engine
  assert.equal((await e.docker(['stop', '-t', '1', 'survivor'])).code, 0);
  assert.equal(alive(pid), false);
  assert.equal((await e.docker(['inspect', '-f', '{{.State.Status}}', 'survivor'])).stdout.trim(), 'exited');
  assert.equal((await e.docker(['rm', 'survivor'])).code, 0);
});
