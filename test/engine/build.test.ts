import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { spawn } from 'node:child_process';
import { SAMPAN, TestEngine, freePort, runCmd, until } from '../harness.js';

let e: TestEngine;
before(async () => {
  e = await TestEngine.start();
});
after(async () => {
  await e?.cleanup();
});

/** A context directory with these files (content strings; a trailing '/' in the name makes a directory), removed with the engine's temp dir. */
async function context(files: Record<string, string>): Promise<string> {
  const dir = await fs.mkdtemp(path.join(e.dir, 'ctx-'));
  for (const [name, content] of Object.entries(files)) {
    const p = path.join(dir, name);
    if (name.endsWith('/')) await fs.mkdir(p, { recursive: true });
    else {
      await fs.mkdir(path.dirname(p), { recursive: true });
      await fs.writeFile(p, content);
    }
  }
  return dir;
}

const classic = { DOCKER_BUILDKIT: '0' };
const build = (args: string[]) => e.docker(['build', ...args], { env: classic, timeoutMs: 120_000 });
const inspect = async (ref: string) => JSON.parse((await e.docker(['image', 'inspect', ref])).stdout)[0];
const runOut = async (args: string[]) => {
  const r = await e.docker(['run', '--rm', ...args]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
};

test('docker build (classic): every instruction, with Docker-equivalent config', async () => {
  const tarDir = await context({ 'payload/inner.txt': 'from a tar\n' });
  await runCmd('tar', ['-C', tarDir, '-czf', path.join(tarDir, 'payload.tar.gz'), 'payload']);
  const ctx = await context({
    'Dockerfile': `# escape=\\
ARG BASE=busybox
FROM \${BASE}:latest AS base
ARG GREETING=hello
ENV APP_HOME=/app \\
    MODE="prod mode"
ENV LEGACY value with spaces
LABEL org.example.name="demo" version=\${GREETING}
WORKDIR $APP_HOME
WORKDIR sub
COPY --chmod=0755 run.sh ./
COPY --chown=1000:1000 files/ /data/
COPY files/*.txt /globbed/
ADD payload.tar.gz /unpacked/
RUN echo "$GREETING from $MODE" > /greeting && test -x /app/sub/run.sh
RUN ["sh", "-c", "echo exec-form > /exec.txt"]
SHELL ["/bin/sh", "-ec"]
RUN echo shell-changed > /shell.txt
EXPOSE 8080 9000-9001/udp
VOLUME /var/data
USER 1000:1000
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD test -f /greeting || exit 1
ONBUILD RUN echo triggered > /tmp/onbuild.txt
ENTRYPOINT ["/app/sub/run.sh"]
CMD ["arg1"]
`,
    'run.sh': '#!/bin/sh\necho "run.sh $@"\n',
    'files/a.txt': 'A\n',
    'files/b.txt': 'B\n',
    'files/c.dat': 'C\n',
  });
  await fs.copyFile(path.join(tarDir, 'payload.tar.gz'), path.join(ctx, 'payload.tar.gz'));
  const r = await build(['-t', 'every:1', '--build-arg', 'GREETING=hi', ctx]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /Step 1\/23 : FROM \$\{BASE\}:latest AS base\n ---> [0-9a-f]{12}\n/);
  assert.match(r.stdout, /Successfully tagged every:1/);
  const img = await inspect('every:1');
  const c = img.Config;
  assert.equal(c.WorkingDir, '/app/sub');
  assert.equal(c.User, '1000:1000');
  assert.equal(c.StopSignal, 'SIGUSR1');
  assert.deepEqual(c.Entrypoint, ['/app/sub/run.sh']);
  assert.deepEqual(c.Cmd, ['arg1']);
  assert.deepEqual(c.ExposedPorts, { '8080/tcp': {}, '9000/udp': {}, '9001/udp': {} });
  assert.deepEqual(c.Volumes, { '/var/data': {} });
  assert.deepEqual(c.Labels, { 'org.example.name': 'demo', version: 'hi' });
  assert.ok(c.Env.includes('APP_HOME=/app'));
  assert.ok(c.Env.includes('MODE=prod mode'));
  assert.ok(c.Env.includes('LEGACY=value with spaces'));
  assert.ok(!c.Env.some((v: string) => v.startsWith('GREETING=')), 'build args are not kept in the image env');
  assert.deepEqual(c.Shell, ['/bin/sh', '-ec']);
  assert.deepEqual(c.Healthcheck, { Test: ['CMD-SHELL', 'test -f /greeting || exit 1'], Interval: 5e9, Timeout: 2e9, Retries: 4 });
  assert.deepEqual(c.OnBuild, ['RUN echo triggered > /tmp/onbuild.txt']);
  const files = await runOut(['--entrypoint', 'sh', '-u', '0', 'every:1', '-c',
    'cat /greeting /exec.txt /shell.txt /unpacked/payload/inner.txt; ls /globbed; stat -c "%a %u:%g %n" /app/sub/run.sh /data/a.txt /data/c.dat']);
  assert.equal(files, 'hi from prod mode\nexec-form\nshell-changed\nfrom a tar\na.txt\nb.txt\n755 0:0 /app/sub/run.sh\n644 1000:1000 /data/a.txt\n644 1000:1000 /data/c.dat\n');
  assert.equal(await runOut(['every:1']), 'run.sh arg1\n');
  const hist = (await e.docker(['history', '--no-trunc', '--format', '{{.CreatedBy}}', 'every:1'])).stdout;
  assert.match(hist, /\|1 GREETING=hi \/bin\/sh -c echo "\$GREETING from \$MODE"/);
  // ONBUILD fires in a build FROM this image
  const child = await context({ 'Dockerfile': 'FROM every:1\nUSER 0\n' });
  const rc = await build(['-t', 'every:child', child]);
  assert.equal(rc.code, 0, rc.stdout + rc.stderr);
  assert.match(rc.stdout, /Executing 1 build trigger/);
  assert.equal(await runOut(['--entrypoint', 'cat', 'every:child', '/tmp/onbuild.txt']), 'triggered\n');
  assert.equal((await inspect('every:child')).Config.OnBuild, null);
});

test('multi-stage: the final image holds only the artefact; --target skips later stages', async () => {
  const ctx = await context({
    'Dockerfile': `FROM busybox AS builder
RUN mkdir /out && echo built > /out/app && echo junk > /junk
FROM busybox AS app
COPY --from=builder /out/app /app
CMD ["cat", "/app"]
FROM app AS test
RUN echo TEST-STAGE-RAN
`,
  });
  const r = await build(['-t', 'multi:app', '--target', 'app', ctx]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout, /TEST-STAGE-RAN/);
  assert.equal(await runOut(['multi:app']), 'built\n');
  assert.notEqual((await e.docker(['run', '--rm', 'multi:app', 'test', '-e', '/junk'])).code, 0);
  const layers = (await inspect('multi:app')).RootFS.Layers.length;
  assert.equal(layers, (await inspect('busybox')).RootFS.Layers.length + 1);
  const all = await build(['-t', 'multi:test', ctx]);
  assert.match(all.stdout, /TEST-STAGE-RAN/);
  const bad = await build(['--target', 'nosuch', ctx]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /failed to reach build target nosuch/);
});

test('.dockerignore: exclusions and exceptions (docker build and sampan build)', async () => {
  const ctx = await context({
    'Dockerfile': 'FROM busybox\nCOPY . /ctx\nCMD ["sh", "-c", "cd /ctx && find . -type f | sort"]\n',
    '.dockerignore': '# docs out, but the README\n*.md\n!README.md\n**/*.tmp\ndir\n!dir/keep\n',
    'README.md': 'r',
    'NOTES.md': 'n',
    'src/main.c': 'm',
    'src/x.tmp': 't',
    'dir/keep': 'k',
    'dir/drop': 'd',
  });
  const want = './.dockerignore\n./Dockerfile\n./README.md\n./dir/keep\n./src/main.c\n';
  assert.equal((await build(['-t', 'ign:docker', ctx])).code, 0);
  assert.equal(await runOut(['ign:docker']), want);
  const s = await e.sampan(['build', '-t', 'ign:sampan', ctx]);
  assert.equal(s.code, 0, s.stderr);
  assert.equal(await runOut(['ign:sampan']), want);
});

test('cache: an unchanged context is all cache hits; a changed file invalidates from its COPY on; survives a restart', async () => {
  const ctx = await context({
    'Dockerfile': 'FROM busybox\nRUN echo one > /one\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy\nCOPY b.txt /b.txt\n',
    'a.txt': 'a1\n',
    'b.txt': 'b\n',
  });
  const first = await build(['-t', 'cached:1', ctx]);
  assert.equal(first.code, 0, first.stdout + first.stderr);
  assert.doesNotMatch(first.stdout, /Using cache/);
  const second = await build(['-t', 'cached:2', ctx]);
  assert.equal(second.stdout.match(/Using cache/g)?.length, 4, second.stdout);
  assert.equal((await inspect('cached:1')).Id, (await inspect('cached:2')).Id);
  await fs.writeFile(path.join(ctx, 'a.txt'), 'a2\n');
  const third = await build(['-t', 'cached:3', ctx]);
  const steps = third.stdout.split(/^Step /m).slice(1);
  assert.match(steps[1]!, /Using cache/);
  for (const s of steps.slice(2)) assert.doesNotMatch(s, /Using cache/, s);
  assert.equal(await runOut(['cached:3', 'cat', '/copy']), 'a2\n');
  await e.kill9();
  await e.launch();
  const fourth = await build(['-t', 'cached:4', ctx]);
  assert.equal(fourth.stdout.match(/Using cache/g)?.length, 4, fourth.stdout);
  const nocache = await build(['--no-cache', '-t', 'cached:5', ctx]);
  assert.doesNotMatch(nocache.stdout, /Using cache/);
});

test('bad input fails cleanly and leaves no image behind', async () => {
  const before = (await e.docker(['images', '-a', '-q', '--no-trunc'])).stdout.split('\n').filter(Boolean).sort();
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ 'Dockerfile': 'FROM busybox\nRUN true\nBOGUS x\n' }, /line 3.*unknown instruction: BOGUS|unknown instruction: BOGUS.*line 3/i],
    [{ 'Dockerfile': 'FROM busybox\nCOPY ../outside /x\n' }, /forbidden path outside the build context/],
    [{ 'Dockerfile': 'FROM busybox\nCOPY missing.txt /x\n' }, /missing\.txt/],
    [{ 'Dockerfile': 'FROM busybox\nRUN echo fresh-step > /f\nRUN exit 3\n' }, /returned a non-zero code: 3/],
    [{ 'Dockerfile': 'FROM busybox\nCOPY --from=nosuchstage /x /y\n' }, /nosuchstage/],
  ];
  for (const [files, msg] of cases) {
    const r = await build([await context(files)]);
    assert.notEqual(r.code, 0, JSON.stringify(files));
    assert.match(r.stdout + r.stderr, msg);
  }
  const after = (await e.docker(['images', '-a', '-q', '--no-trunc'])).stdout.split('\n').filter(Boolean).sort();
  assert.deepEqual(after, before);
  assert.equal((await e.docker(['ps', '-aq'])).stdout.trim(), '', 'no intermediate container left');
});

test('sampan build: tags, build args, a Dockerfile outside the context, -q', async () => {
  const ctx = await context({ 'hello.txt': 'hello\n' });
  const df = path.join(await context({}), 'Other.dockerfile');
  await fs.writeFile(df, 'FROM busybox\nARG WHO=world\nCOPY hello.txt /\nRUN echo "hi $WHO" >> /hello.txt\n');
  const r = await e.sampan(['build', '-q', '-t', 'sb:1', '-t', 'sb:2', '-f', df, '--build-arg', 'WHO=sampan', ctx]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout.trim(), /^sha256:[a-f0-9]{64}$/);
  assert.equal(await runOut(['sb:2', 'cat', '/hello.txt']), 'hello\nhi sampan\n');
  assert.equal((await inspect('sb:1')).Id, r.stdout.trim());
});

test('FROM scratch, ADD from a URL, --label, --add-host, --network none, --rm=false', async () => {
  const srv = http.createServer((req, res) => {
    if (req.url !== '/files/remote.txt') return void res.writeHead(404).end();
    res.writeHead(200, { 'Last-Modified': 'Wed, 21 Oct 2015 07:28:00 GMT' }).end('from the web\n');
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  try {
    const ctx = await context({
      'Dockerfile': `FROM busybox AS tools
FROM scratch
COPY --from=tools /bin/busybox /bin/busybox
ADD http://127.0.0.1:${port}/files/remote.txt /web/
CMD ["/bin/busybox", "cat", "/web/remote.txt"]
`,
    });
    const r = await build(['-t', 'scratchy', '--label', 'team=edge', ctx]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const img = await inspect('scratchy');
    assert.equal(img.RootFS.Layers.length, 2);
    assert.deepEqual(img.Config.Labels, { team: 'edge' });
    assert.equal(await runOut(['scratchy']), 'from the web\n');
    assert.equal(await runOut(['scratchy', '/bin/busybox', 'stat', '-c', '%a %Y', '/web/remote.txt']), `600 ${Date.parse('2015-10-21T07:28:00Z') / 1000}\n`);

    const net = await context({ 'Dockerfile': 'FROM busybox\nRUN grep -q "1.2.3.4[[:space:]]*db.internal" /etc/hosts && ! ip -o link | grep -v " lo:" | grep -q .\n' });
    const before = (await e.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean).length;
    const n = await build(['--add-host', 'db.internal:1.2.3.4', '--network', 'none', '--rm=false', net]);
    assert.equal(n.code, 0, n.stdout + n.stderr);
    const kept = (await e.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
    assert.equal(kept.length, before + 1, '--rm=false keeps the RUN container');
    await e.docker(['rm', '-f', kept[0]!]);
  } finally {
    srv.close();
  }
});

test('a base image from a registry that needs a login: X-Registry-Config, --pull', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sbr-'));
  await fs.writeFile(path.join(dir, 'htpasswd'), (await runCmd('htpasswd', ['-Bbn', 'builder', 's3cret'])).stdout);
  const port = await freePort();
  const reg = spawn(SAMPAN, ['registry', '--root', path.join(dir, 'data'), '--addr', `127.0.0.1:${port}`, '--auth', 'htpasswd', '--htpasswd', path.join(dir, 'htpasswd')], { stdio: 'ignore' });
  const env = { DOCKER_CONFIG: path.join(dir, 'cfg') };
  try {
    await until(() => fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.status === 401, () => false));
    const ref = `127.0.0.1:${port}/base/busybox:1`;
    assert.equal((await e.docker(['tag', 'busybox', ref])).code, 0);
    assert.equal((await e.docker(['login', '-u', 'builder', '--password-stdin', `127.0.0.1:${port}`], { env, input: 's3cret\n' })).code, 0);
    assert.equal((await e.docker(['push', ref], { env, timeoutMs: 60_000 })).code, 0);
    assert.equal((await e.docker(['rmi', ref])).code, 0);
    const ctx = await context({ 'Dockerfile': `FROM ${ref}\nRUN echo private > /p\n` });
    const anon = await e.docker(['build', ctx], { env: { ...classic, DOCKER_CONFIG: path.join(dir, 'none') }, timeoutMs: 60_000 });
    assert.notEqual(anon.code, 0, 'no credentials, no base image');
    const r = await e.docker(['build', '--pull', '-t', 'frompriv', ctx], { env: { ...classic, ...env }, timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(await runOut(['frompriv', 'cat', '/p']), 'private\n');
  } finally {
    reg.kill();
    await fs.rm(dir, { recursive: true, force: true });
  }
});
