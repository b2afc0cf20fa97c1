import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import tar from 'tar-stream';
import { TestEngine, runCmd } from '../harness.js';

let e: TestEngine;
let docker: Docker;
before(async () => {
  e = await TestEngine.start();
  docker = new Docker({ socketPath: e.sock });
});
after(async () => {
  await e?.cleanup();
});

async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, body] of Object.entries(files)) pack.entry({ name }, body);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A JSON-lines response body, parsed. */
const lines = (body: Buffer) =>
  body
    .toString()
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { stream?: string; error?: string; errorDetail?: { message: string }; aux?: { ID: string } });

test('POST /images/load of a broken archive: 200 with the error in the JSON stream, as dockerd', async () => {
  for (const body of [Buffer.from('this is not a tar archive at all, just some bytes'), await tarOf({ 'hello.txt': 'no manifest here\n' })]) {
    const r = await e.api('POST', '/v1.44/images/load', body, { 'Content-Type': 'application/x-tar' });
    assert.equal(r.status, 200);
    const msgs = lines(r.body);
    const err = msgs.find((m) => m.error);
    assert.ok(err, r.body.toString());
    assert.equal(err.errorDetail?.message, err.error);
  }
  // the docker CLI reads the error from the stream and fails with it
  const cli = await e.docker(['load'], { input: 'garbage' });
  assert.notEqual(cli.code, 0);
  assert.match(cli.stderr, /archive|tar|manifest/i);
});

test('broken archive: docker-py images.load raises, dockerode loadImage stream carries the error', async () => {
  const py = await runCmd('/usr/bin/python3', ['-c', `
import docker, os
c = docker.DockerClient(base_url=os.environ['DOCKER_HOST'], version='auto')
try:
    c.images.load(b'garbage, not an image archive')
    print('NO ERROR')
except docker.errors.ImageLoadError as err:
    print('ImageLoadError:', err)
`], { env: e.env });
  assert.equal(py.code, 0, py.stderr);
  assert.match(py.stdout, /^ImageLoadError: \S/);

  const stream = await docker.loadImage(Buffer.from('garbage, not an image archive') as unknown as NodeJS.ReadableStream);
  const out = await new Promise<Array<{ error?: string }>>((resolve, reject) => docker.modem.followProgress(stream, (err: Error | null, o: Array<{ error?: string }>) => (err ? reject(err) : resolve(o))));
  assert.ok(out.some((m) => m.error), JSON.stringify(out));
});

const build = async (dockerfile: string, query: Record<string, string>) => {
  const ctx = await tarOf({ Dockerfile: dockerfile });
  const r = await e.api('POST', `/v1.44/build?${new URLSearchParams(query)}`, ctx, { 'Content-Type': 'application/x-tar' });
  assert.equal(r.status, 200);
  const msgs = lines(r.body);
  const failed = msgs.find((m) => m.error);
  assert.equal(failed, undefined, failed?.error);
  const text = msgs.map((m) => m.stream ?? '').join('');
  return { msgs, text, id: msgs.find((m) => m.aux)!.aux!.ID, hits: text.split(' ---> Using cache').length - 1 };
};

test('build: a RUN step\'s stderr reaches the stream in red, stdout as it is (dockerd\'s classic builder)', async () => {
  const { msgs, text } = await build('FROM busybox\nRUN echo out1 && echo err1 >&2\n', { nocache: '1' });
  assert.ok(msgs.some((m) => m.stream === '\x1b[91merr1\n\x1b[0m'), JSON.stringify(msgs));
  assert.match(text, /^out1$/m);
  assert.doesNotMatch(text, /\x1b\[91mout1/);
});

test('build: with cachefrom a step comes from the cache only if an image named there (or its parent) made it', async () => {
  const df = `FROM busybox\nRUN echo a > /a\nRUN echo b > /b\n`;
  const first = await build(df, { t: 'cf-first:1' });
  // the plain cache
  assert.equal((await build(df, {})).hits, 2);
  // cachefrom an image that did not make these steps: everything runs again
  const other = await build(df, { cachefrom: JSON.stringify(['busybox']) });
  assert.equal(other.hits, 0);
  assert.notEqual(other.id, first.id);
  // a name that does not exist is no source (dockerd ignores it)
  assert.equal((await build(df, { cachefrom: JSON.stringify(['no-such-image:9']) })).hits, 0);
  // the image that made them: its chain is the cache, though the step cache now points at the newer images
  const again = await build(df, { cachefrom: JSON.stringify(['cf-first:1']) });
  assert.equal(again.hits, 2);
  assert.equal(again.id, first.id);
  // a Dockerfile that shares only its first step with it: that step from the cache, the next one runs
  const partial = await build(`FROM busybox\nRUN echo a > /a\nRUN echo c > /c\n`, { cachefrom: JSON.stringify(['cf-first:1']) });
  assert.equal(partial.hits, 1);
  // the docker CLI's --cache-from (classic builder)
  const ctxDir = await fs.mkdtemp(path.join(os.tmpdir(), 'sb-'));
  await fs.writeFile(path.join(ctxDir, 'Dockerfile'), df);
  const cli = await e.docker(['build', '--cache-from', 'cf-first:1', '-q', ctxDir], { env: { DOCKER_BUILDKIT: '0' }, timeoutMs: 120_000 });
  await fs.rm(ctxDir, { recursive: true });
  assert.equal(cli.code, 0, cli.stderr);
  assert.equal(cli.stdout.trim(), first.id);
  // docker-py's cache_from
  const py = await runCmd('/usr/bin/python3', ['-c', `
import docker, io, os
c = docker.DockerClient(base_url=os.environ['DOCKER_HOST'], version='auto')
img, _ = c.images.build(fileobj=io.BytesIO(${JSON.stringify(df)}.encode()), cache_from=['cf-first:1'])
print(img.id)
`], { env: e.env, timeoutMs: 120_000 });
  assert.equal(py.code, 0, py.stderr);
  assert.equal(py.stdout.trim(), first.id);
});

test('build: a cachefrom image with no parents here (saved, removed, loaded back) is matched by its history, as dockerd', async () => {
  const df = `FROM busybox\nRUN echo one > /one\nENV STAGE=two\nRUN echo three > /three\n`;
  const first = await build(df, { t: 'cf-loaded:1' });
  const archive = (await e.api('GET', '/v1.44/images/cf-loaded:1/get')).body;
  assert.equal((await e.api('DELETE', '/v1.44/images/cf-loaded:1')).status, 200);
  const loaded = await e.api('POST', '/v1.44/images/load?quiet=1', archive, { 'Content-Type': 'application/x-tar' });
  assert.match(loaded.body.toString(), /Loaded image/);
  // its intermediate images went with it: the plain cache has nothing
  const plain = await build(df, {});
  assert.equal(plain.hits, 0);
  assert.equal((await e.api('DELETE', `/v1.44/images/${plain.id}`)).status, 200);
  const again = await build(df, { cachefrom: JSON.stringify(['cf-loaded:1']) });
  assert.equal(again.hits, 3);
  assert.equal(again.id, first.id);
  const img = (await e.api('GET', `/v1.44/images/${again.id}/json`)).json() as { Config: { Env: string[] } };
  assert.ok(img.Config.Env.includes('STAGE=two'));
  // a changed last step: the first ones from the loaded image's history, the last one runs
  const changed = await build(df.replace('three', 'four'), { cachefrom: JSON.stringify(['cf-loaded:1']) });
  assert.equal(changed.hits, 2);
  assert.match(changed.text, /Running in/);
});
