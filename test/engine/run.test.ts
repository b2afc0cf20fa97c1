import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestEngine, until, sleep } from '../harness.js';

let e: TestEngine;
before(async () => {
  e = await TestEngine.start();
});
after(async () => {
  await e?.cleanup();
});

test('docker run prints output and propagates the exit code', async () => {
  const r = await e.docker(['run', '--rm', 'busybox', 'echo', 'hello-sampan']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'hello-sampan\n');
  const f = await e.docker(['run', '--rm', 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 7']);
  assert.equal(f.code, 7);
  assert.equal(f.stdout, 'out\n');
  assert.equal(f.stderr, 'err\n');
  // --rm removed both
  assert.equal((await e.docker(['ps', '-aq'])).stdout.trim(), '');
});

test('run -d, exec, logs, stop, inspect states', async () => {
  const r = await e.docker(['run', '-d', '--name', 'ticker', '-l', 'team=core', 'busybox', 'sh', '-c', 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done']);
  assert.equal(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  assert.match(id, /^[a-f0-9]{64}$/);
  assert.equal((await e.docker(['inspect', '-f', '{{.State.Status}} {{.State.Running}} {{.Name}}', 'ticker'])).stdout.trim(), 'running true /ticker');
  const ex = await e.docker(['exec', 'ticker', 'echo', 'in-exec']);
  assert.equal(ex.stdout, 'in-exec\n');
  const code = await e.docker(['exec', 'ticker', 'sh', '-c', 'exit 3']);
  assert.equal(code.code, 3);
  const envd = await e.docker(['exec', '-e', 'FOO=bar', '-w', '/tmp', '-u', 'nobody', 'ticker', 'sh', '-c', 'echo $FOO $(pwd) $(id -u)']);
  assert.equal(envd.stdout.trim(), 'bar /tmp 65534');
  await until(async () => (await e.docker(['logs', 'ticker'])).stdout.includes('tick 2'));
  const tail = await e.docker(['logs', '--tail', '1', 'ticker']);
  assert.match(tail.stdout, /^tick \d+\n$/);
  // a negative tail is all of it, as testcontainers asks
  const all = await e.api('GET', '/containers/ticker/logs?stdout=1&tail=-1');
  assert.match(all.body.toString(), /tick 0\n[^]*tick 2\n/);
  const ts = await e.docker(['logs', '--tail', '1', '-t', 'ticker']);
  assert.match(ts.stdout, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z tick \d+\n$/);
  const ps = await e.docker(['ps', '--filter', 'label=team=core', '--format', '{{.Names}} {{.Status}}']);
  assert.match(ps.stdout, /^ticker Up /);
  const stop = await e.docker(['stop', '-t', '1', 'ticker']);
  assert.equal(stop.code, 0, stop.stderr);
  const st = await e.docker(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', 'ticker']);
  assert.match(st.stdout.trim(), /^exited (137|143)$/);
  assert.equal((await e.docker(['ps', '-q'])).stdout.trim(), '');
  assert.match((await e.docker(['ps', '-a', '--filter', 'status=exited', '--format', '{{.Names}}'])).stdout, /ticker/);
  assert.equal((await e.docker(['rm', 'ticker'])).code, 0);
});

test('docker create + start -a, restart, pause/unpause, kill, rename, top', async () => {
  const c = await e.docker(['create', '--name', 'c1', 'busybox', 'sleep', '30']);
  assert.equal(c.code, 0, c.stderr);
  assert.equal((await e.docker(['inspect', '-f', '{{.State.Status}}', 'c1'])).stdout.trim(), 'created');
  assert.equal((await e.docker(['start', 'c1'])).code, 0);
  const top = await e.docker(['top', 'c1']);
  assert.match(top.stdout, /sleep 30/);
  assert.equal((await e.docker(['pause', 'c1'])).code, 0);
  assert.equal((await e.docker(['inspect', '-f', '{{.State.Status}}', 'c1'])).stdout.trim(), 'paused');
  assert.match((await e.docker(['pause', 'c1'])).stderr, /already paused/);
  assert.equal((await e.docker(['unpause', 'c1'])).code, 0);
  assert.equal((await e.docker(['rename', 'c1', 'c2'])).code, 0);
  const pid1 = (await e.docker(['inspect', '-f', '{{.State.Pid}}', 'c2'])).stdout.trim();
  assert.equal((await e.docker(['restart', '-t', '0', 'c2'])).code, 0);
  const pid2 = (await e.docker(['inspect', '-f', '{{.State.Pid}}', 'c2'])).stdout.trim();
  assert.notEqual(pid1, pid2);
  assert.equal((await e.docker(['kill', 'c2'])).code, 0);
  assert.equal((await e.docker(['inspect', '-f', '{{.State.ExitCode}}', 'c2'])).stdout.trim(), '137');
  assert.match((await e.docker(['kill', 'c2'])).stderr, /is not running/);
  const wait = await e.docker(['wait', 'c2']);
  assert.equal(wait.stdout.trim(), '137');
  assert.equal((await e.docker(['rm', 'c2'])).code, 0);
});

test('image config merges: entrypoint, cmd, env, workdir, user, hostname, read-only, tmpfs', async () => {
  const { writeFile } = await import('node:fs/promises');
  await writeFile(`${e.dir}/env`, '# comment\nFROM_FILE=yes\nPATH=/bin\n');
  const envf = await e.docker(['run', '--rm', '--env-file', `${e.dir}/env`, 'busybox', 'sh', '-c', 'echo $FROM_FILE $PATH']);
  assert.equal(envf.stdout, 'yes /bin\n');
  const r = await e.docker(['run', '--rm', '-e', 'A=1', '-w', '/tmp', '-u', '65534:65534', '--hostname', 'myhost', 'busybox', 'sh', '-c', 'echo $A $(pwd) $(id -u):$(id -g) $(hostname) $PATH']);
  assert.equal(r.stdout.trim(), '1 /tmp 65534:65534 myhost /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  const ep = await e.docker(['run', '--rm', '--entrypoint', 'echo', 'busybox', 'from', 'entrypoint']);
  assert.equal(ep.stdout, 'from entrypoint\n');
  const ro = await e.docker(['run', '--rm', '--read-only', '--tmpfs', '/scratch', 'busybox', 'sh', '-c', 'touch /x 2>/dev/null && echo writable || echo readonly; touch /scratch/y && echo tmpfs-ok']);
  assert.equal(ro.stdout, 'readonly\ntmpfs-ok\n');
  const init = await e.docker(['run', '--rm', '--init', 'busybox', 'sh', '-c', 'cat /proc/1/cmdline | tr "\\0" " "']);
  assert.match(init.stdout, /docker-init -- sh/);
  const missing = await e.docker(['run', '--rm', 'busybox', 'nosuchcommand']);
  assert.equal(missing.code, 127, missing.stderr);
  assert.match(missing.stderr, /executable file not found/);
});

test('volumes: named volume data survives container removal; bind mounts; rm -v', async () => {
  assert.equal((await e.docker(['volume', 'create', 'data1'])).code, 0);
  assert.equal((await e.docker(['run', '--rm', '-v', 'data1:/data', 'busybox', 'sh', '-c', 'echo kept > /data/f'])).code, 0);
  assert.equal((await e.docker(['run', '--rm', '-v', 'data1:/data', 'busybox', 'cat', '/data/f'])).stdout, 'kept\n');
  const ls = await e.docker(['volume', 'ls', '--format', '{{.Name}}']);
  assert.match(ls.stdout, /data1/);
  const insp = await e.docker(['volume', 'inspect', '-f', '{{.Driver}} {{.Name}}', 'data1']);
  assert.equal(insp.stdout.trim(), 'local data1');
  await e.docker(['run', '-d', '--name', 'vuser', '-v', 'data1:/data', 'busybox', 'sleep', '30']);
  assert.match((await e.docker(['volume', 'rm', 'data1'])).stderr, /in use/);
  await e.docker(['rm', '-f', 'vuser']);
  assert.equal((await e.docker(['volume', 'rm', 'data1'])).code, 0);
  const host = await import('node:fs/promises');
  const dir = await host.mkdtemp('/tmp/sp-bind-');
  await host.writeFile(`${dir}/in.txt`, 'from host\n');
  const b = await e.docker(['run', '--rm', '-v', `${dir}:/mnt:ro`, 'busybox', 'sh', '-c', 'cat /mnt/in.txt; touch /mnt/x 2>/dev/null || echo ro']);
  assert.equal(b.stdout, 'from host\nro\n');
  await host.rm(dir, { recursive: true });
  const anon = await e.docker(['run', '-d', '-v', '/anon', 'busybox', 'true']);
  const cid = anon.stdout.trim();
  await sleep(500);
  const vname = (await e.docker(['inspect', '-f', '{{range .Mounts}}{{.Name}}{{end}}', cid])).stdout.trim();
  assert.match(vname, /^[a-f0-9]{64}$/);
  assert.equal((await e.docker(['rm', '-v', cid])).code, 0);
  assert.doesNotMatch((await e.docker(['volume', 'ls', '-q'])).stdout, new RegExp(vname));
  assert.equal((await e.docker(['volume', 'prune', '-f'])).code, 0);
});

test('a new volume gets the image\'s files at its destination, unless nocopy', async () => {
  const ls = async (args: string[]) => (await e.docker(['run', '--rm', ...args, 'busybox', 'ls', '/etc'])).stdout.split('\n').filter(Boolean).sort();
  // /etc/hosts, hostname and resolv.conf are the engine's binds, present either way
  assert.ok((await ls([])).includes('passwd'));
  assert.ok((await ls(['-v', 'copied:/etc'])).includes('passwd'));
  assert.ok(!(await ls(['-v', 'empty1:/etc:nocopy'])).includes('passwd'));
  assert.ok(!(await ls(['--mount', 'type=volume,src=empty2,dst=/etc,volume-nocopy'])).includes('passwd'));
});

test('local driver options: a bind-backed and a tmpfs volume are mounted while used, and rm keeps the device\'s files', async () => {
  const host = await import('node:fs/promises');
  const dir = await host.mkdtemp('/tmp/sp-voldev-');
  await host.writeFile(`${dir}/host.txt`, 'on the host\n');
  assert.equal((await e.docker(['volume', 'create', '--opt', 'type=none', '--opt', 'o=bind', '--opt', `device=${dir}`, 'bound'])).code, 0);
  const r = await e.docker(['run', '--rm', '-v', 'bound:/data', 'busybox', 'sh', '-c', 'cat /data/host.txt; echo from-container > /data/c.txt']);
  assert.equal(r.stdout, 'on the host\n', r.stderr);
  assert.equal(await host.readFile(`${dir}/c.txt`, 'utf8'), 'from-container\n');
  // mounted only while a container uses it
  const mp = (await e.docker(['volume', 'inspect', '-f', '{{.Mountpoint}}', 'bound'])).stdout.trim();
  const mounted = async () => (await host.readFile('/proc/self/mountinfo', 'utf8')).split('\n').some((l) => l.split(' ')[4] === mp);
  assert.equal(await mounted(), false);
  assert.equal((await e.docker(['volume', 'rm', 'bound'])).code, 0);
  assert.deepEqual((await host.readdir(dir)).sort(), ['c.txt', 'host.txt']);
  await host.rm(dir, { recursive: true });

  assert.equal((await e.docker(['volume', 'create', '--opt', 'type=tmpfs', '--opt', 'device=tmpfs', '--opt', 'o=size=8m', 'scratch'])).code, 0);
  await e.docker(['run', '-d', '--name', 'tmpuser', '-v', 'scratch:/t', 'busybox', 'sleep', '300']);
  assert.match((await e.docker(['exec', 'tmpuser', 'df', '-k', '/t'])).stdout, /^tmpfs\s+8192\s/m);
  await e.docker(['run', '--rm', '-v', 'scratch:/t', 'busybox', 'sh', '-c', 'echo shared > /t/s']);
  assert.equal((await e.docker(['exec', 'tmpuser', 'cat', '/t/s'])).stdout, 'shared\n');
  await e.docker(['rm', '-f', 'tmpuser']);
  assert.equal((await e.docker(['volume', 'rm', 'scratch'])).code, 0);

  const missing = await e.docker(['volume', 'create', '--opt', 'type=none', 'half']);
  assert.match(missing.stderr, /missing required option: "device"/);
  await e.docker(['volume', 'create', '--opt', 'type=none', '--opt', 'o=bind', '--opt', 'device=/nonexistent-dir', 'broken']);
  const bad = await e.docker(['run', '--rm', '-v', 'broken:/x', 'busybox', 'true']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /failed to mount local volume: .*does not exist/);
  assert.equal((await e.docker(['volume', 'rm', 'broken'])).code, 0);
  assert.equal((await e.docker(['volume', 'rm', '-f', 'never-was'])).code, 0);
});
