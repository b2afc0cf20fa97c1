import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { TestEngine, sleep, until, type RunResult } from '../harness.js';

let e: TestEngine;
before(async () => {
  e = await TestEngine.start();
});
after(async () => {
  await e?.cleanup();
});

/**
 * Run a command under a pseudo-terminal (util-linux `script`), typing input into it. Stdin stays open until the
 * command exits: an early EOF would reach the terminal as ^D before the shell inside has read the input.
 */
function inPty(cmd: string, input: string): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn('script', ['-qec', cmd, '/dev/null'], { env: { ...process.env, ...e.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      child.stdin.destroy();
      resolve({ code: code ?? 1, stdout, stderr });
    });
    child.stdin.write(input);
  });
}

test('docker run -it through a pty: interactive shell, TTY inside, exit code', async () => {
  const r = await inPty('docker run -it --rm busybox sh', 'tty; echo hi-from-$((6*7)); exit 5\n');
  assert.equal(r.code, 5, r.stdout + r.stderr);
  assert.match(r.stdout, /\/dev\/pts\/\d+/);
  assert.match(r.stdout, /hi-from-42/);
});

test('docker exec -it through a pty, and exec -i with piped stdin', async () => {
  await e.docker(['run', '-d', '--name', 'sh1', 'busybox', 'sleep', '600']);
  const r = await inPty('docker exec -it sh1 sh', 'echo tty=$(tty); exit 3\n');
  assert.equal(r.code, 3, r.stdout + r.stderr);
  assert.match(r.stdout, /tty=\/dev\/pts\/\d+/);
  const piped = await e.docker(['exec', '-i', 'sh1', 'sh', '-c', 'tr a-z A-Z'], { input: 'piped input\n' });
  assert.equal(piped.stdout, 'PIPED INPUT\n');
  const d = await e.docker(['exec', '-d', 'sh1', 'sh', '-c', 'echo detached > /tmp/d']);
  assert.equal(d.code, 0);
  await sleep(300);
  assert.equal((await e.docker(['exec', 'sh1', 'cat', '/tmp/d'])).stdout, 'detached\n');
});

test('docker run -i pipes stdin; attach streams a running container\'s output', async () => {
  const r = await e.docker(['run', '-i', '--rm', 'busybox', 'sh', '-c', 'wc -l'], { input: 'a\nb\nc\n' });
  assert.equal(r.stdout.trim(), '3');
  await e.docker(['run', '-d', '--name', 'att', 'busybox', 'sh', '-c', 'sleep 1; echo attached-output; exit 9']);
  const a = await e.docker(['attach', 'att']);
  assert.equal(a.stdout, 'attached-output\n');
  assert.equal(a.code, 9);
  const s = await e.docker(['start', '-a', 'att']);
  assert.equal(s.stdout, 'attached-output\n');
});

test('exec start: input sent right after the 101 arrives when the body came apart from the headers', async () => {
  await e.docker(['run', '-d', '--name', 'sh2', 'busybox', 'sleep', '600']);
  const created = await e.api('POST', '/containers/sh2/exec', { Cmd: ['sh', '-c', 'read l; echo got-$l'], AttachStdin: true, AttachStdout: true, Tty: true });
  const id = created.json<{ Id: string }>().Id;
  const body = JSON.stringify({ Detach: false, Tty: true });
  const sock = net.connect(e.sock);
  let out = '';
  const ended = new Promise<void>((resolve) => {
    sock.on('data', (d: Buffer) => {
      const first = !out;
      out += d.toString();
      // as the docker CLI does: type as soon as the stream is upgraded
      if (first && out.startsWith('HTTP/1.1 101')) sock.write('hello\n');
    });
    sock.on('close', () => resolve());
  });
  sock.write(`POST /exec/${id}/start HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
  await sleep(100);
  sock.write(body);
  const timer = setTimeout(() => sock.destroy(), 10_000);
  await ended;
  clearTimeout(timer);
  assert.match(out, /got-hello/);
});

test('a client that resets an attached stream does not take the engine down', async () => {
  await e.docker(['run', '-d', '--name', 'chatty', 'busybox', 'yes', 'chatter']);
  const sock = net.connect(e.sock);
  await new Promise<void>((resolve) => {
    sock.once('data', () => {
      // stop reading: unread output in our receive queue makes the close a reset on the engine's side
      sock.pause();
      resolve();
    });
    sock.write('POST /containers/chatty/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
  });
  await sleep(300);
  sock.destroy();
  await sleep(500);
  assert.equal((await e.api('GET', '/_ping')).status, 200);
  assert.equal((await e.docker(['inspect', '-f', '{{.State.Running}}', 'chatty'])).stdout.trim(), 'true');
});

/** A raw attach to `name` with stdin: resolves once the stream is upgraded. */
async function rawAttach(name: string, query = ''): Promise<{ sock: net.Socket; out: () => string; closed: Promise<void> }> {
  const sock = net.connect(e.sock);
  let out = '';
  const closed = new Promise<void>((resolve) => sock.on('close', () => resolve()));
  await new Promise<void>((resolve) => {
    sock.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\r\n\r\n')) resolve();
    });
    sock.write(`POST /containers/${name}/attach?stream=1&stdin=1&stdout=1${query} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`);
  });
  return { sock, out: () => out, closed };
}

test('detach keys on the attach stream: the session ends, the container and its terminal stay; --detach-keys', async () => {
  // as `docker run -it` creates it: StdinOnce, which for a terminal must not close stdin when the client leaves
  assert.equal((await e.api('POST', '/containers/create?name=det', { Image: 'busybox', Cmd: ['sh'], Tty: true, OpenStdin: true, StdinOnce: true })).status, 201);
  await e.docker(['start', 'det']);
  const first = await rawAttach('det');
  first.sock.write('echo one-$((1+1))\n');
  await until(async () => first.out().includes('one-2'), 5000);
  first.sock.write('\x10\x11');
  await first.closed;
  assert.equal((await e.docker(['inspect', '-f', '{{.State.Status}}', 'det'])).stdout.trim(), 'running');
  const ev = await e.docker(['events', '--since', '60s', '--until', '0s', '--filter', 'event=detach', '--format', '{{.Actor.Attributes.name}}']);
  assert.equal(ev.stdout.trim(), 'det');
  // the shell still reads its terminal: a new session types into it, and detaches with its own keys
  const second = await rawAttach('det', '&detachKeys=ctrl-x,x');
  second.sock.write('echo two-$((1+2))\n');
  await until(async () => second.out().includes('two-3'), 5000);
  second.sock.write('\x18x');
  await second.closed;
  assert.equal((await e.docker(['inspect', '-f', '{{.State.Status}}', 'det'])).stdout.trim(), 'running');
  assert.equal((await e.api('POST', '/containers/det/attach?stream=1&stdin=1&detachKeys=ctrl-1')).status, 400);
});
