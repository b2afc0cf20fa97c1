import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { PassThrough, Readable } from 'node:stream';
import { test } from 'node:test';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApiError, ConnectionError, DEFAULT_HOST, Demuxer, EngineClient, demux, jsonMessages, parseHost, queryString, resolveHost, tlsFromOptions } from './engine-client.js';

function frame(stream: number, payload: string | Buffer): Buffer {
  const p = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const h = Buffer.alloc(8);
  h[0] = stream;
  h.writeUInt32BE(p.length, 4);
  return Buffer.concat([h, p]);
}

test('resolveHost: option, then SAMPAN_HOST, then DOCKER_HOST, then the default', () => {
  assert.equal(resolveHost('unix:///a.sock', { SAMPAN_HOST: 'unix:///b', DOCKER_HOST: 'unix:///c' }), 'unix:///a.sock');
  assert.equal(resolveHost(undefined, { SAMPAN_HOST: 'unix:///b', DOCKER_HOST: 'unix:///c' }), 'unix:///b');
  assert.equal(resolveHost(undefined, { DOCKER_HOST: 'tcp://h:2376' }), 'tcp://h:2376');
  assert.equal(resolveHost('', { SAMPAN_HOST: '', DOCKER_HOST: '' }), DEFAULT_HOST);
  assert.equal(resolveHost(undefined, {}), 'unix:///run/sampan/engine.sock');
});

test('parseHost understands unix and tcp addresses', () => {
  assert.deepEqual(parseHost('unix:///run/x.sock'), { kind: 'unix', socketPath: '/run/x.sock' });
  assert.deepEqual(parseHost('/run/x.sock'), { kind: 'unix', socketPath: '/run/x.sock' });
  assert.deepEqual(parseHost('tcp://10.0.0.1:2376'), { kind: 'tcp', host: '10.0.0.1', port: 2376 });
  assert.deepEqual(parseHost('tcp://example.org'), { kind: 'tcp', host: 'example.org', port: 2375 });
  assert.deepEqual(parseHost('tcp://example.org', true), { kind: 'tcp', host: 'example.org', port: 2376 });
  assert.deepEqual(parseHost('tcp://[::1]:9000'), { kind: 'tcp', host: '::1', port: 9000 });
  assert.throws(() => parseHost('ssh://x'), /invalid host/);
  assert.throws(() => parseHost('unix://'), /invalid host/);
});

test('queryString drops undefined and sends booleans as 1/0', () => {
  assert.equal(queryString({ all: true, quiet: false, a: undefined, n: 3, s: 'x y' }), '?all=1&quiet=0&n=3&s=x+y');
  assert.equal(queryString({}), '');
  assert.equal(queryString(undefined), '');
});

test('tlsFromOptions: flags and cert path', () => {
  assert.equal(tlsFromOptions({}, {}), undefined);
  assert.deepEqual(tlsFromOptions({ tlscacert: '/c/ca', tlscert: '/c/cert', tlskey: '/c/key' }, {}), { ca: '/c/ca', cert: '/c/cert', key: '/c/key' });
  assert.deepEqual(tlsFromOptions({}, { DOCKER_CERT_PATH: '/certs' }), { ca: '/certs/ca.pem', cert: '/certs/cert.pem', key: '/certs/key.pem' });
});

test('Demuxer handles frames split at any byte', () => {
  const data = Buffer.concat([frame(1, 'hello '), frame(2, 'oops\n'), frame(1, 'world\n'), frame(1, '')]);
  for (let cut = 0; cut <= data.length; cut++) {
    const got: Array<[number, string]> = [];
    const d = new Demuxer((s, p) => got.push([s, p.toString()]));
    d.push(data.subarray(0, cut));
    d.push(data.subarray(cut));
    assert.deepEqual(got, [[1, 'hello '], [2, 'oops\n'], [1, 'world\n'], [1, '']]);
    assert.equal(d.pending, 0);
  }
  // byte by byte
  const got: string[] = [];
  const d = new Demuxer((s, p) => got.push(`${s}:${p}`));
  for (const b of data) d.push(Buffer.from([b]));
  assert.deepEqual(got, ['1:hello ', '2:oops\n', '1:world\n', '1:']);
});

test('demux sends stdout and stderr to their callbacks and resolves at the end', async () => {
  const src = new PassThrough();
  const out: string[] = [];
  const err: string[] = [];
  const done = demux(src, (b) => out.push(b.toString()), (b) => err.push(b.toString()));
  const big = Buffer.alloc(100_000, 'x');
  const all = Buffer.concat([frame(1, 'a'), frame(2, 'b'), frame(1, big), frame(2, 'c')]);
  src.write(all.subarray(0, 5));
  src.write(all.subarray(5, 50_000));
  src.end(all.subarray(50_000));
  await done;
  assert.equal(out.join(''), `a${big.toString()}`);
  assert.deepEqual(err, ['b', 'c']);
});

test('demux rejects on a system-error frame', async () => {
  const src = Readable.from([Buffer.concat([frame(1, 'x'), frame(3, 'boom')])]);
  await assert.rejects(demux(src, () => undefined, () => undefined), /boom/);
});

test('jsonMessages splits JSON lines and concatenated documents', async () => {
  const chunks = ['{"stream":"Loaded image: a:1\\n"}\n{"str', 'eam":"x {}\\n"}{"status":"s"}', '\n', '{"errorDetail":{"message":"bad"},"error":"bad"}\n'];
  const got: unknown[] = [];
  for await (const m of jsonMessages(Readable.from(chunks))) got.push(m);
  assert.deepEqual(got, [
    { stream: 'Loaded image: a:1\n' },
    { stream: 'x {}\n' },
    { status: 's' },
    { errorDetail: { message: 'bad' }, error: 'bad' },
  ]);
});

async function withServer(fn: (sockPath: string, seen: string[]) => Promise<void>): Promise<void> {
  const sockPath = path.join(tmpdir(), `sampan-cli-test-${process.pid}-${Math.random().toString(36).slice(2)}.sock`);
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (req.url?.startsWith('/v1.44/containers/nope/json')) {
        res.writeHead(404, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ message: 'No such container: nope' }));
      } else if (req.url?.startsWith('/v1.44/echo')) {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ body, type: req.headers['content-type'] ?? null }));
      } else if (req.url === '/v1.44/_ping') {
        res.end('OK');
      } else if (req.url?.startsWith('/v1.44/plain-error')) {
        res.writeHead(500);
        res.end('something broke');
      } else {
        res.writeHead(404, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ message: 'page not found' }));
      }
    });
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    seen.push(`UPGRADE ${req.method} ${req.url} ${req.headers.connection} ${req.headers.upgrade} body=${head.toString()}`);
    if (req.url?.includes('refuse')) {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 27\r\nConnection: close\r\n\r\n{"message":"no such exec"} ');
      return;
    }
    // the 101 and the first frames in one write: the client must put them back on the socket
    socket.write(Buffer.concat([Buffer.from('HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\n\r\n'), frame(1, 'early '), frame(2, 'warn\n')]));
    let input = '';
    socket.on('data', (d: Buffer) => (input += d.toString()));
    socket.on('end', () => {
      socket.end(Buffer.concat([frame(1, `got:${input}\n`)]));
    });
  });
  await new Promise<void>((resolve) => server.listen(sockPath, resolve));
  try {
    await fn(sockPath, seen);
  } finally {
    server.close();
    server.closeAllConnections();
    rmSync(sockPath, { force: true });
  }
}

test('EngineClient: requests, JSON, errors', async () => {
  await withServer(async (sockPath, seen) => {
    const c = new EngineClient({ host: `unix://${sockPath}` });
    assert.equal(await c.ping(), true);
    const echoed = await c.json<{ body: string; type: string }>('POST', '/echo', { query: { a: true }, body: { Image: 'x' } });
    assert.deepEqual(echoed, { body: '{"Image":"x"}', type: 'application/json' });
    const raw = await c.json<{ body: string; type: string }>('POST', '/echo', { body: Buffer.from('tar bytes') });
    assert.equal(raw.body, 'tar bytes');
    const streamed = await c.json<{ body: string; type: string }>('POST', '/echo', { body: Readable.from([Buffer.from('a'), Buffer.from('b')]), headers: { 'Content-Type': 'application/x-tar' } });
    assert.deepEqual(streamed, { body: 'ab', type: 'application/x-tar' });
    assert.ok(seen.includes('POST /v1.44/echo?a=1'));
    await assert.rejects(c.json('GET', '/containers/nope/json'), (err: unknown) => {
      assert.ok(err instanceof ApiError);
      assert.equal(err.status, 404);
      assert.equal(err.message, 'No such container: nope');
      assert.equal(err.code, 'NOT_FOUND');
      return true;
    });
    await assert.rejects(c.request('GET', '/plain-error'), (err: unknown) => err instanceof ApiError && err.message === 'something broke' && err.status === 500);
  });
});

test('EngineClient.hijack upgrades and keeps the bytes that came with the 101', async () => {
  await withServer(async (sockPath, seen) => {
    const c = new EngineClient({ host: `unix://${sockPath}` });
    const sock = await c.hijack('POST', '/exec/abc/start', { body: { Detach: false, Tty: false } });
    const out: string[] = [];
    const err: string[] = [];
    const done = demux(sock, (b) => out.push(b.toString()), (b) => err.push(b.toString()));
    sock.end('input!');
    await done;
    assert.equal(out.join(''), 'early got:input!\n');
    assert.deepEqual(err, ['warn\n']);
    assert.ok(seen.some((s) => s.startsWith('UPGRADE POST /v1.44/exec/abc/start Upgrade tcp body={"Detach":false,"Tty":false}')), seen.join('\n'));
    await assert.rejects(c.hijack('POST', '/exec/refuse/start'), (e: unknown) => e instanceof ApiError && e.status === 404 && e.message === 'no such exec');
  });
});

test('EngineClient reports an unreachable engine', async () => {
  const c = new EngineClient({ host: `unix://${path.join(tmpdir(), 'sampan-no-such-engine.sock')}` });
  await assert.rejects(c.ping(), (err: unknown) => err instanceof ConnectionError && /Cannot connect to the Sampan engine/.test(err.message));
});
