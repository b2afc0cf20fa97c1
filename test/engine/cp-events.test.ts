import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import tar from 'tar-stream';
import { TestEngine, until, sleep, type ApiResult } from '../harness.js';

let e: TestEngine;
let work: string;

before(async () => {
  e = await TestEngine.start();
  work = path.join(e.dir, 'work');
  await fs.mkdir(work);
});
after(async () => {
  await e?.cleanup();
});

/** An in-memory tar. */
async function packTar(entries: Array<{ name: string; body?: string; type?: 'symlink'; linkname?: string }>): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const en of entries) {
    if (en.body !== undefined) pack.entry({ name: en.name, mode: 0o644 }, en.body);
    else pack.entry({ name: en.name, type: en.type, linkname: en.linkname });
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

const exists = (p: string) => fs.lstat(p).then(() => true, () => false);

test('docker cp a host file into a running container and a container file out to the host', async () => {
  const r = await e.docker(['run', '-d', '--name', 'cpbox', 'busybox', 'sleep', '300']);
  assert.equal(r.code, 0, r.stderr);
  const f = path.join(work, 'hello.txt');
  await fs.writeFile(f, 'hello from the host\n');
  await fs.chmod(f, 0o640);
  const into = await e.docker(['cp', f, 'cpbox:/tmp/']);
  assert.equal(into.code, 0, into.stderr);
  assert.equal((await e.docker(['exec', 'cpbox', 'cat', '/tmp/hello.txt'])).stdout, 'hello from the host\n');
  assert.equal((await e.docker(['exec', 'cpbox', 'stat', '-c', '%a', '/tmp/hello.txt'])).stdout.trim(), '640');
  // to a new name
  assert.equal((await e.docker(['cp', f, 'cpbox:/tmp/renamed.txt'])).code, 0);
  assert.equal((await e.docker(['exec', 'cpbox', 'cat', '/tmp/renamed.txt'])).stdout, 'hello from the host\n');

  const x = path.join(work, 'x');
  const out = await e.docker(['cp', 'cpbox:/etc/passwd', x]);
  assert.equal(out.code, 0, out.stderr);
  const passwd = await fs.readFile(x, 'utf8');
  assert.match(passwd, /^root:x:0:0:root:\/root:\/bin\/sh\n/);
  assert.equal(passwd, (await e.docker(['exec', 'cpbox', 'cat', '/etc/passwd'])).stdout);
  // to stdout as a tar
  const tarOut = await e.docker(['cp', 'cpbox:/tmp/hello.txt', '-']);
  assert.equal(tarOut.code, 0, tarOut.stderr);
  assert.ok(tarOut.stdout.includes('hello.txt') && tarOut.stdout.includes('hello from the host'));

  const missing = await e.docker(['cp', 'cpbox:/no/such/file', x]);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /Could not find the file \/no\/such\/file/);
  const nobox = await e.docker(['cp', f, 'nosuchbox:/tmp/x']);
  assert.notEqual(nobox.code, 0);
  assert.match(nobox.stderr, /No such container/);
});

test('docker cp copies directories both ways', async () => {
  const d = path.join(work, 'tree');
  await fs.mkdir(path.join(d, 'sub/deeper'), { recursive: true });
  await fs.writeFile(path.join(d, 'a.txt'), 'A\n');
  await fs.writeFile(path.join(d, 'sub/deeper/b.txt'), 'B\n');
  await fs.symlink('a.txt', path.join(d, 'link'));
  const into = await e.docker(['cp', d, 'cpbox:/tmp/']);
  assert.equal(into.code, 0, into.stderr);
  const listing = (await e.docker(['exec', 'cpbox', 'find', '/tmp/tree'])).stdout.split('\n').filter(Boolean).sort();
  assert.deepEqual(listing, ['/tmp/tree', '/tmp/tree/a.txt', '/tmp/tree/link', '/tmp/tree/sub', '/tmp/tree/sub/deeper', '/tmp/tree/sub/deeper/b.txt']);
  assert.equal((await e.docker(['exec', 'cpbox', 'readlink', '/tmp/tree/link'])).stdout, 'a.txt\n');
  assert.equal((await e.docker(['exec', 'cpbox', 'cat', '/tmp/tree/sub/deeper/b.txt'])).stdout, 'B\n');

  // make more inside the container, copy the whole directory out
  assert.equal((await e.docker(['exec', 'cpbox', 'sh', '-c', 'mkdir -p /tmp/tree/made/in && echo C > /tmp/tree/made/in/c.txt'])).code, 0);
  const back = path.join(work, 'back');
  const out = await e.docker(['cp', 'cpbox:/tmp/tree', back]);
  assert.equal(out.code, 0, out.stderr);
  assert.equal(await fs.readFile(path.join(back, 'a.txt'), 'utf8'), 'A\n');
  assert.equal(await fs.readFile(path.join(back, 'sub/deeper/b.txt'), 'utf8'), 'B\n');
  assert.equal(await fs.readFile(path.join(back, 'made/in/c.txt'), 'utf8'), 'C\n');
  assert.equal(await fs.readlink(path.join(back, 'link')), 'a.txt');
  // the contents of a directory with "/."
  const dot = path.join(work, 'dot');
  await fs.mkdir(dot);
  assert.equal((await e.docker(['cp', 'cpbox:/tmp/tree/sub/.', dot])).code, 0);
  assert.equal(await fs.readFile(path.join(dot, 'deeper/b.txt'), 'utf8'), 'B\n');
});

test('docker cp works on a stopped container, and the files are there when it starts again', async () => {
  assert.equal((await e.docker(['exec', 'cpbox', 'sh', '-c', 'echo written-while-running > /root/note'])).code, 0);
  assert.equal((await e.docker(['stop', '-t', '0', 'cpbox'])).code, 0);
  assert.equal((await e.docker(['inspect', '-f', '{{.State.Running}}', 'cpbox'])).stdout.trim(), 'false');
  const note = path.join(work, 'note');
  const out = await e.docker(['cp', 'cpbox:/root/note', note]);
  assert.equal(out.code, 0, out.stderr);
  assert.equal(await fs.readFile(note, 'utf8'), 'written-while-running\n');
  const f = path.join(work, 'offline.txt');
  await fs.writeFile(f, 'copied while stopped\n');
  const into = await e.docker(['cp', f, 'cpbox:/root/']);
  assert.equal(into.code, 0, into.stderr);
  assert.equal((await e.docker(['start', 'cpbox'])).code, 0);
  const cat = await e.docker(['exec', 'cpbox', 'cat', '/root/offline.txt']);
  assert.equal(cat.stdout, 'copied while stopped\n', `exit ${cat.code}: ${cat.stderr}`);
  // a created, never started container
  assert.equal((await e.docker(['create', '--name', 'fresh', 'busybox', 'cat', '/etc/injected'])).code, 0);
  assert.equal((await e.docker(['cp', f, 'fresh:/etc/injected'])).code, 0);
  const run = await e.docker(['start', '-a', 'fresh']);
  assert.equal(run.stdout, 'copied while stopped\n');
  assert.equal((await e.docker(['rm', 'fresh'])).code, 0);
});

test('docker cp through a symlink inside the container stays inside the container', async () => {
  // /tmp/root -> / and /tmp/etc -> /etc inside the container; on the host those would be the host's root
  assert.equal((await e.docker(['exec', 'cpbox', 'ln', '-s', '/', '/tmp/root'])).code, 0);
  assert.equal((await e.docker(['exec', 'cpbox', 'ln', '-s', '/etc', '/tmp/etclink'])).code, 0);
  assert.equal((await e.docker(['exec', 'cpbox', 'ln', '-s', '../../../../../../../../etc', '/tmp/relup'])).code, 0);
  const name = `sampan-cp-escape-${path.basename(e.dir)}`;
  const f = path.join(work, name);
  await fs.writeFile(f, 'stays in the container\n');

  for (const dest of ['/tmp/root/etc/', '/tmp/etclink/', '/tmp/relup/']) {
    const r = await e.docker(['cp', f, `cpbox:${dest}`]);
    assert.equal(r.code, 0, `${dest}: ${r.stderr}`);
    assert.equal((await e.docker(['exec', 'cpbox', 'cat', `/etc/${name}`])).stdout, 'stays in the container\n', dest);
    assert.equal(await exists(`/etc/${name}`), false, `${dest} wrote to the host's /etc`);
    assert.equal((await e.docker(['exec', 'cpbox', 'rm', `/etc/${name}`])).code, 0);
  }
  // and reading through one reads the container's file, not the host's
  await fs.writeFile(path.join(work, 'marker'), 'x');
  assert.equal((await e.docker(['exec', 'cpbox', 'sh', '-c', 'echo container-hostname-file > /etc/which'])).code, 0);
  const read = path.join(work, 'which');
  assert.equal((await e.docker(['cp', 'cpbox:/tmp/root/etc/which', read])).code, 0);
  assert.equal(await fs.readFile(read, 'utf8'), 'container-hostname-file\n');
  // a crafted archive (raw API): a symlink to / and then a file through it
  const crafted = await packTar([
    { name: 'lnk', type: 'symlink', linkname: '/' },
    { name: `lnk/tmp/${name}-a`, body: 'a' },
    { name: 'up', type: 'symlink', linkname: '../../../../../../../../../../tmp' },
    { name: `up/${name}-b`, body: 'b' },
  ]);
  const put = await e.api('PUT', '/containers/cpbox/archive?path=/tmp', crafted, { 'Content-Type': 'application/x-tar' });
  assert.ok(put.status === 200 || put.status === 400, `status ${put.status}: ${put.body.toString()}`);
  assert.equal(await exists(`/tmp/${name}-a`), false, 'wrote through a symlink onto the host');
  assert.equal(await exists(`/tmp/${name}-b`), false, 'wrote through a symlink onto the host');
  if (put.status === 200) {
    const found = (await e.docker(['exec', 'cpbox', 'find', '/', '-xdev', '-name', `${name}-*`])).stdout.split('\n').filter(Boolean);
    assert.equal(found.length, 2, `files not inside the container: ${found.join(', ')}`);
  }
  const pw = path.join(work, 'pw');
  assert.equal((await e.docker(['cp', 'cpbox:/tmp/relup/passwd', pw])).code, 0);
  assert.equal(await fs.readFile(pw, 'utf8'), (await e.docker(['exec', 'cpbox', 'cat', '/etc/passwd'])).stdout);
});

test('docker events --since/--until with a container filter shows create, start, die, destroy', async () => {
  const since = Math.floor(Date.now() / 1000) - 1;
  const r = await e.docker(['run', '--rm', '--name', 'evbox', 'busybox', 'true']);
  assert.equal(r.code, 0, r.stderr);
  const until = Math.floor(Date.now() / 1000) + 1;
  const ev = await e.docker(['events', '--since', String(since), '--until', String(until), '--filter', 'container=evbox', '--format', '{{.Action}}']);
  assert.equal(ev.code, 0, ev.stderr);
  const actions = ev.stdout.split('\n').filter(Boolean);
  assert.deepEqual(actions.filter((a) => ['create', 'start', 'die', 'destroy'].includes(a)), ['create', 'start', 'die', 'destroy']);
  // other containers' events are filtered out
  const json = await e.docker(['events', '--since', String(since), '--until', String(until), '--filter', 'container=evbox', '--format', '{{json .}}']);
  for (const line of json.stdout.split('\n').filter(Boolean)) {
    const o = JSON.parse(line) as { Type: string; Actor: { Attributes: Record<string, string> } };
    assert.equal(o.Type, 'container');
    assert.equal(o.Actor.Attributes.name, 'evbox');
  }
  const die = json.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { Action: string; Actor: { Attributes: Record<string, string> } }).find((o) => o.Action === 'die');
  assert.equal(die?.Actor.Attributes.exitCode, '0');
  assert.equal(die?.Actor.Attributes.image, 'busybox');
  // --filter event=
  const starts = await e.docker(['events', '--since', String(since), '--until', String(until), '--filter', 'container=evbox', '--filter', 'event=die', '--format', '{{.Action}} {{.Actor.Attributes.name}}']);
  assert.equal(starts.stdout, 'die evbox\n');
});

/** GET /events as a stream: lines as they arrive. */
function openEvents(query = ''): Promise<{ lines: string[]; res: http.IncomingMessage; req: http.ClientRequest; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    // a connection of its own (no keep-alive pool), as a long-lived client would have
    const req = http.request({ socketPath: e.sock, method: 'GET', path: `/events${query}`, agent: false }, (res) => {
      const lines: string[] = [];
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          lines.push(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
      const closed = new Promise<void>((r) => res.once('close', () => r()));
      res.on('error', () => undefined);
      resolve({ lines, res, req, closed });
    });
    req.on('error', reject);
    req.end();
  });
}

async function engineFds(): Promise<number> {
  return (await fs.readdir(`/proc/${e.proc!.pid}/fd`)).length;
}

test('a streaming events reader sees start as it happens, and the engine lets go when the client disconnects', { timeout: 60_000 }, async () => {
  const c = await e.docker(['create', '--name', 'streamed', 'busybox', 'sleep', '300']);
  assert.equal(c.code, 0, c.stderr);
  const id = c.stdout.trim();
  const stream = await openEvents(`?filters=${encodeURIComponent(JSON.stringify({ type: ['container'] }))}`);
  assert.equal(stream.res.statusCode, 200);
  assert.match(stream.res.headers['content-type'] ?? '', /application\/json/);
  assert.equal((await e.docker(['start', 'streamed'])).code, 0);
  const start = await until(async () => stream.lines.map((l) => JSON.parse(l) as { Action: string; Actor: { ID: string; Attributes: Record<string, string> } }).find((o) => o.Action === 'start' && o.Actor.ID === id), 5000);
  assert.equal(start?.Actor.Attributes.name, 'streamed');
  assert.equal((await e.docker(['kill', 'streamed'])).code, 0);
  await until(async () => stream.lines.some((l) => l.includes('"die"')), 5000);
  // the client goes away: the response is closed and the engine carries on
  stream.req.destroy();
  await stream.closed;
  assert.equal((await e.api('GET', '/_ping')).status, 200);

  // many readers come and go without the engine holding on to their connections
  const baseline = await engineFds();
  const readers = await Promise.all(Array.from({ length: 10 }, () => openEvents()));
  // every reader is live: each sees the next event
  assert.equal((await e.docker(['volume', 'create', 'evvol'])).code, 0);
  await until(async () => readers.every((r) => r.lines.some((l) => l.includes('evvol'))), 5000);
  for (const r of readers) r.req.destroy();
  await Promise.all(readers.map((r) => r.closed));
  await until(async () => (await engineFds()) <= baseline, 5000);
  // and a new reader still gets events
  const again = await openEvents();
  assert.equal((await e.docker(['rm', 'streamed'])).code, 0);
  await until(async () => again.lines.some((l) => l.includes('"destroy"') && l.includes(id)), 5000);
  again.req.destroy();
});

function settled<T>(p: Promise<T>): () => boolean {
  let done = false;
  void p.then(() => (done = true), () => (done = true));
  return () => done;
}

test('POST /containers/{id}/wait: not-running, next-exit and removed conditions', { timeout: 60_000 }, async () => {
  // not-running on a created container answers at once
  const c = await e.docker(['create', '--name', 'waiter', 'busybox', 'sh', '-c', 'while [ ! -f /tmp/go ]; do sleep 0.1; done; exit 5']);
  assert.equal(c.code, 0, c.stderr);
  const now = await e.api('POST', '/containers/waiter/wait?condition=not-running');
  assert.equal(now.status, 200);
  assert.deepEqual(now.json(), { StatusCode: 0, Error: null });
  // no condition means not-running
  assert.equal((await e.api('POST', '/containers/waiter/wait')).json().StatusCode, 0);

  // next-exit on a running container returns its exit code once it ends
  assert.equal((await e.docker(['start', 'waiter'])).code, 0);
  const next = e.api('POST', '/containers/waiter/wait?condition=next-exit');
  const nextDone = settled(next);
  const notRunning = e.api('POST', '/containers/waiter/wait?condition=not-running');
  await sleep(300);
  assert.equal(nextDone(), false, 'next-exit answered while the container still runs');
  assert.equal((await e.docker(['exec', 'waiter', 'touch', '/tmp/go'])).code, 0);
  const res = await next;
  assert.equal(res.status, 200);
  assert.equal(res.json().StatusCode, 5);
  assert.equal((await notRunning).json().StatusCode, 5);
  assert.equal((await e.docker(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', 'waiter'])).stdout.trim(), 'exited 5');

  // removed: answers after docker rm
  const removed = e.api('POST', '/containers/waiter/wait?condition=removed');
  const removedDone = settled(removed);
  await sleep(300);
  assert.equal(removedDone(), false, 'removed answered before the container was removed');
  assert.equal((await e.docker(['rm', 'waiter'])).code, 0);
  const rr: ApiResult = await removed;
  assert.equal(rr.status, 200);
  assert.equal(rr.json().StatusCode, 5);
  assert.equal((await e.api('GET', '/containers/waiter/json')).status, 404);

  // docker run --rm and a removed wait (what the CLI does for --rm)
  const r = await e.docker(['run', '--rm', 'busybox', 'sh', '-c', 'exit 4']);
  assert.equal(r.code, 4);
  // errors: an unknown container and a bad condition
  assert.equal((await e.api('POST', '/containers/nosuch/wait')).status, 404);
  const bad = await e.api('POST', '/containers/cpbox/wait?condition=whenever');
  assert.equal(bad.status, 400);
  assert.match(bad.json().message, /condition/);
});
