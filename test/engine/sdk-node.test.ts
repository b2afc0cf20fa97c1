import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import Docker from 'dockerode';
import tar from 'tar-stream';
import { TestEngine } from '../harness.js';

/** dockerode, the Docker SDK of Node (what testcontainers and many JS tools drive Docker with). */
let e: TestEngine;
let docker: Docker;
before(async () => {
  e = await TestEngine.start();
  docker = new Docker({ socketPath: e.sock });
});
after(async () => {
  await e?.cleanup();
});

/** A demultiplexed stream's stdout and stderr, once it ends. */
async function demux(stream: NodeJS.ReadableStream): Promise<{ stdout: string; stderr: string }> {
  const out = { stdout: '', stderr: '' };
  const o = new PassThrough().on('data', (b: Buffer) => (out.stdout += b.toString()));
  const er = new PassThrough().on('data', (b: Buffer) => (out.stderr += b.toString()));
  docker.modem.demuxStream(stream, o, er);
  await new Promise((r) => stream.on('end', r));
  return out;
}

async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, body] of Object.entries(files)) pack.entry({ name }, body);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

test('dockerode: run, exec with demuxed output and with stdin, attach, archives, list filters', async () => {
  let out = '';
  const sink = new PassThrough().on('data', (b: Buffer) => (out += b.toString()));
  // an array of [stdout, stderr] has dockerode demultiplex the output
  const [res] = (await docker.run('busybox', ['sh', '-c', 'echo hi; exit 2'], [sink, sink], { Tty: false })) as [{ StatusCode: number }];
  assert.equal(res.StatusCode, 2);
  assert.equal(out, 'hi\n');

  const c = await docker.createContainer({ Image: 'busybox', Cmd: ['sleep', '300'], name: 'node1', Labels: { sdk: 'node' } });
  await c.start();
  const ex = await c.exec({ Cmd: ['sh', '-c', 'echo out; echo err >&2; exit 3'], AttachStdout: true, AttachStderr: true });
  assert.deepEqual(await demux(await ex.start({})), { stdout: 'out\n', stderr: 'err\n' });
  assert.equal((await ex.inspect()).ExitCode, 3);

  const typed = await c.exec({ Cmd: ['sh', '-c', 'read l; echo got-$l'], AttachStdin: true, AttachStdout: true });
  const duplex = await typed.start({ hijack: true, stdin: true });
  duplex.write('hello\n');
  assert.equal((await demux(duplex)).stdout, 'got-hello\n');

  // dockerode sends its attach options as a request body too: dockerd drops it, so must we (it is not stdin)
  const a = await docker.createContainer({ Image: 'busybox', Cmd: ['sh', '-c', 'read l; echo att-$l'], OpenStdin: true, StdinOnce: true, AttachStdin: true, AttachStdout: true });
  const stream = await a.attach({ stream: true, stdin: true, stdout: true, hijack: true });
  const attached = demux(stream);
  await a.start();
  stream.end('typed\n');
  assert.equal((await a.wait()).StatusCode, 0);
  assert.equal((await attached).stdout, 'att-typed\n');
  await a.remove();

  await c.putArchive(await tarOf({ 'note.txt': 'from node\n' }), { path: '/tmp' });
  const got = tar.extract();
  const files: Record<string, string> = {};
  got.on('entry', (h, s, next) => {
    let body = '';
    s.on('data', (b) => (body += (b as Buffer).toString()));
    s.on('end', () => {
      files[h.name] = body;
      next();
    });
  });
  (await c.getArchive({ path: '/tmp/note.txt' })).pipe(got);
  await new Promise<void>((r) => got.on('finish', () => r()));
  assert.deepEqual(files, { 'note.txt': 'from node\n' });

  assert.deepEqual((await docker.listContainers({ filters: { label: ['sdk=node'] } })).map((x) => x.Names[0]), ['/node1']);
  await c.stop({ t: 1 });
  assert.ok((await docker.pruneContainers()).ContainersDeleted?.includes(c.id));
});

test('dockerode: buildImage with followProgress, then run the image; errors carry Docker\'s status codes', async () => {
  const ctx = await tarOf({ Dockerfile: 'FROM busybox\nRUN echo built-by-node > /b\nCMD ["cat", "/b"]\n' });
  const progress = await docker.buildImage(Readable.from([ctx]), { t: 'nodebuild:1' });
  const events = await new Promise<Array<{ stream?: string; aux?: { ID: string } }>>((resolve, reject) => docker.modem.followProgress(progress, (err, o) => (err ? reject(err) : resolve(o))));
  const id = events.find((x) => x.aux)?.aux?.ID;
  assert.match(id ?? '', /^sha256:[a-f0-9]{64}$/);
  assert.equal((await docker.getImage('nodebuild:1').inspect()).Id, id);
  let out = '';
  const sink = new PassThrough().on('data', (b: Buffer) => (out += b.toString()));
  await docker.run('nodebuild:1', [], [sink, sink], { Tty: false, HostConfig: { AutoRemove: true } });
  assert.equal(out, 'built-by-node\n');

  await assert.rejects(docker.getContainer('no-such').inspect(), (err: { statusCode?: number }) => err.statusCode === 404);
  await assert.rejects(docker.createContainer({ Image: 'busybox', name: 'node1', HostConfig: { LogConfig: { Type: 'syslog', Config: {} } } }), (err: { statusCode?: number }) => err.statusCode === 400);
});
