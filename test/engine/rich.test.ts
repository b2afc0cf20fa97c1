import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { TestEngine, runCmd, until, sleep } from '../harness.js';

let e: TestEngine;
let tmp: string;
before(async () => {
  e = await TestEngine.start();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'sp-rich-'));
  await fs.writeFile(path.join(tmp, 'init.sh'), 'echo initscript-ran > /tmp/marker\necho initscript says hi\n');
  await fs.writeFile(path.join(tmp, 'exec-init.sh'), '#!/bin/sh\necho exec-initscript-ran > /tmp/marker\n', { mode: 0o755 });
  await fs.writeFile(path.join(tmp, 'fail.sh'), 'echo initscript-broke\nexit 3\n');
});
after(async () => {
  await e?.cleanup();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

const ok = async (args: string[]) => {
  const r = await e.docker(args);
  assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
};

/** Create (and start) through the API: the docker CLI cannot send Rich. */
async function richContainer(name: string, body: Record<string, unknown>, start = true): Promise<string> {
  const c = await e.api('POST', `/containers/create?name=${name}`, { Image: 'busybox', HostConfig: { Binds: [`${tmp}:/scripts:ro`] }, ...body });
  assert.equal(c.status, 201, c.body.toString());
  const id = c.json<{ Id: string }>().Id;
  if (start) {
    const s = await e.api('POST', `/containers/${id}/start`);
    assert.equal(s.status, 204, s.body.toString());
  }
  return id;
}

const cmdline = async (name: string) => (await ok(['exec', name, 'cat', '/proc/1/cmdline'])).split('\0').filter(Boolean);

/** Processes in state Z inside the container, as "pid ppid comm" lines. */
async function zombies(name: string): Promise<string[]> {
  const out = await ok(['exec', name, 'sh', '-c', 'cat /proc/[0-9]*/stat 2>/dev/null']);
  return out
    .split('\n')
    .map((l) => /^(\d+) \((.*)\) (\S) (\d+)/.exec(l))
    .filter((m): m is RegExpExecArray => !!m && m[3] === 'Z')
    .map((m) => `${m[1]} ${m[4]} ${m[2]}`);
}

/** An orphan that exits later: its parent (the exec'd shell) is gone, so it is re-parented to PID 1. */
async function makeOrphanZombie(name: string): Promise<void> {
  await ok(['exec', name, 'sh', '-c', 'sleep 0.3 >/dev/null 2>&1 </dev/null & exit 0']);
  await sleep(1000);
}

test('rich (dumb-init): PID 1 is dumb-init, the initscript runs before the command, inspect shows the fields', async () => {
  await richContainer('r-dumb', { Cmd: ['sh', '-c', 'cat /tmp/marker; exec sleep 1000'], Rich: true, InitScript: '/scripts/init.sh' });
  const argv = await cmdline('r-dumb');
  // Debian's dumb-init is dynamically linked: it runs under the host's loader bound in with it
  assert.ok(argv.some((a) => path.posix.basename(a) === 'dumb-init'), argv.join(' '));
  assert.equal(await ok(['exec', 'r-dumb', 'cat', '/tmp/marker']), 'initscript-ran');
  const logs = await until(async () => {
    const l = await e.docker(['logs', 'r-dumb']);
    return l.stdout.includes('initscript-ran') ? l.stdout : '';
  });
  assert.match(logs, /initscript says hi\ninitscript-ran/);
  // the API (the docker CLI's templates drop fields its Go types lack)
  const cfg = (await e.api('GET', '/containers/r-dumb/json')).json<{ Config: Record<string, unknown> }>().Config;
  assert.equal(cfg.Rich, true);
  assert.equal(cfg.RichMode, 'dumb-init');
  assert.equal(cfg.InitScript, '/scripts/init.sh');
  // the command is PID 1's child, and signals reach it: SIGTERM ends it (143), not the SIGKILL after -t (137)
  await ok(['stop', '-t', '10', 'r-dumb']);
  assert.equal(await ok(['inspect', '-f', '{{.State.ExitCode}}', 'r-dumb']), '143', 'SIGTERM must reach the command through dumb-init');
});

test('rich: orphaned zombies are reaped by PID 1; without --rich (PID 1 = sleep) they stay', async () => {
  await richContainer('r-reap', { Cmd: ['sleep', '1000'], Rich: true });
  await makeOrphanZombie('r-reap');
  assert.deepEqual(await zombies('r-reap'), []);

  await ok(['run', '-d', '--name', 'plain-reap', 'busybox', 'sleep', '1000']);
  await makeOrphanZombie('plain-reap');
  const z = await zombies('plain-reap');
  assert.equal(z.length, 1, `one zombie expected, got ${JSON.stringify(z)}`);
  assert.match(z[0]!, /^\d+ 1 sleep$/, 'the zombie is a child of PID 1');
});

test('rich: the container env is exported to login shells (/etc/profile.d), safely quoted', async () => {
  const tricky = `it's "quoted" $HOME \`x\` \\ done`;
  await richContainer('r-env', { Cmd: ['sleep', '1000'], Rich: true, Env: [`TRICKY=${tricky}`, 'PLAIN=1'], Hostname: 'richhost' });
  // the exec's own env is emptied: the values can only come from the profile
  const login = await ok(['exec', '-e', 'TRICKY=', '-e', 'PLAIN=', 'r-env', 'sh', '-lc', 'printf "%s|%s" "$TRICKY" "$PLAIN"']);
  assert.equal(login, `${tricky}|1`);
  const script = await ok(['exec', 'r-env', 'cat', '/etc/profile.d/sampan-env.sh']);
  assert.doesNotMatch(script, /^export (HOSTNAME|HOME|TERM)=/m);
  assert.match(await ok(['exec', 'r-env', 'cat', '/etc/profile']), /profile\.d/);
});

test('rich tini via `sampan run --rich`, --priority batch gives the preset', async () => {
  const r = await e.sampan(['run', '-d', '--name', 'r-tini', '--rich', '--rich-mode', 'tini', '--initscript', '/scripts/exec-init.sh', '-v', `${tmp}:/scripts:ro`, '--priority', 'batch', 'busybox', 'sleep', '1000']);
  assert.equal(r.code, 0, r.stderr);
  const argv = await cmdline('r-tini');
  assert.equal(path.posix.basename(argv[0]!), 'tini', argv.join(' '));
  assert.ok(argv.includes('-g'), argv.join(' '));
  assert.equal(await ok(['exec', 'r-tini', 'cat', '/tmp/marker']), 'exec-initscript-ran');
  await makeOrphanZombie('r-tini');
  assert.deepEqual(await zombies('r-tini'), []);
  const info = (await e.api('GET', '/containers/r-tini/json')).json<{ Config: Record<string, unknown> & { Labels: Record<string, string> }; HostConfig: Record<string, unknown> }>();
  assert.equal(info.Config.RichMode, 'tini');
  assert.equal(info.Config.Labels['com.sampan.priority'], 'batch');
  assert.equal(info.HostConfig.CpuShares, 2);
  assert.equal(info.HostConfig.OomScoreAdj, 1000);
  // and the CLI passes the engine's 400 on
  const bad = await e.sampan(['run', '--rich-mode', 'tini', 'busybox', 'true']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /RichMode needs Rich/);
});

test('rich: bad RichMode, RichMode or InitScript without Rich, Rich with Init are 400', async () => {
  const create = (body: Record<string, unknown>) => e.api('POST', '/containers/create', { Image: 'busybox', Cmd: ['true'], ...body });
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ Rich: true, RichMode: 'runit' }, /invalid RichMode "runit": use one of dumb-init, tini, systemd/],
    [{ InitScript: '/init.sh' }, /InitScript needs Rich/],
    [{ RichMode: 'tini' }, /RichMode needs Rich/],
    [{ Rich: true, InitScript: 'init.sh' }, /must be an absolute path/],
    [{ Rich: true, HostConfig: { Init: true } }, /Rich and Init cannot be used together/],
    [{ Rich: 'yes' }, /invalid Rich/],
  ];
  for (const [body, msg] of cases) {
    const r = await create(body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.body.toString()}`);
    assert.match(r.json<{ message: string }>().message, msg);
  }
});

test('rich: a failing initscript stops the start visibly: exit code and output in the logs, no command', async () => {
  const id = await richContainer('r-fail', { Cmd: ['echo', 'command-ran'], Rich: true, InitScript: '/scripts/fail.sh' });
  assert.equal(await ok(['wait', id]), '3');
  const logs = await e.docker(['logs', 'r-fail']);
  assert.match(logs.stdout, /initscript-broke/);
  assert.match(logs.stderr, /sampan: initscript \/scripts\/fail\.sh failed with exit code 3/);
  assert.doesNotMatch(logs.stdout, /command-ran/);
});

// ---------- images made in the test from the host's binaries ----------

/** A rootfs with the host's static busybox and its applets (optionally without /sbin/init). */
async function busyboxRootfs(dir: string, withInit: boolean): Promise<void> {
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'root', 'tmp', 'dev', 'proc', 'sys', 'var/run']) await fs.mkdir(path.join(dir, d), { recursive: true });
  await fs.chmod(path.join(dir, 'tmp'), 0o1777);
  await fs.chmod(path.join(dir, 'root'), 0o700);
  await fs.copyFile('/bin/busybox', path.join(dir, 'bin/busybox'));
  await fs.chmod(path.join(dir, 'bin/busybox'), 0o755);
  const applets = (await runCmd('/bin/busybox', ['--list-full'])).stdout.split('\n').filter((a) => a && a !== 'bin/busybox');
  for (const a of applets) {
    if (a === 'sbin/init' && !withInit) continue;
    await fs.mkdir(path.join(dir, path.dirname(a)), { recursive: true });
    await fs.symlink('/bin/busybox', path.join(dir, a)).catch(() => undefined);
  }
  await fs.writeFile(path.join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  await fs.writeFile(path.join(dir, 'etc/group'), 'root:x:0:\n');
}

/** `tar | docker import - ref`: checks that import works against this engine too. */
async function importDir(dir: string, ref: string): Promise<void> {
  const r = await runCmd('sh', ['-c', `tar -C '${dir}' --numeric-owner --owner=0 --group=0 -c . | docker import - ${ref}`], { env: e.env });
  assert.equal(r.code, 0, r.stderr);
}

/** Copy a host binary and the shared libraries it loads, at the same paths. */
async function copyWithLibs(dir: string, bin: string): Promise<void> {
  const files = [bin];
  for (const l of (await runCmd('ldd', [bin])).stdout.split('\n')) {
    const m = /(\/\S+) \(0x/.exec(l);
    if (m) files.push(m[1]!);
  }
  for (const f of files) {
    await fs.mkdir(path.join(dir, path.dirname(f)), { recursive: true });
    await fs.copyFile(f, path.join(dir, f));
    await fs.chmod(path.join(dir, f), 0o755);
  }
}

test('rich systemd mode: /sbin/init is PID 1 with container=sampan, tmpfs /run /run/lock /tmp, SIGRTMIN+3, writable systemd cgroup', async () => {
  const root = path.join(tmp, 'fakeinit');
  await busyboxRootfs(root, false);
  // a stand-in for systemd: it reports what systemd would rely on, then stays
  await fs.writeFile(
    path.join(root, 'sbin/init'),
    '#!/bin/sh\necho "container=$container"\ngrep -E "^tmpfs /(run|run/lock|tmp) tmpfs" /proc/mounts | cut -d" " -f2\nmkdir /sys/fs/cgroup/systemd/probe.scope && rmdir /sys/fs/cgroup/systemd/probe.scope && echo cgroup-writable\nsleep 1000 & wait\n',
    { mode: 0o755 },
  );
  await fs.mkdir(path.join(root, 'etc/systemd/system'), { recursive: true });
  await importDir(root, 'fakeinit:test');
  await richContainer('r-sysd', { Image: 'fakeinit:test', Cmd: ['sh'], Rich: true, RichMode: 'systemd', InitScript: '/scripts/init.sh' });
  const logs = await until(async () => {
    const l = (await e.docker(['logs', 'r-sysd'])).stdout;
    return l.includes('cgroup-writable') ? l : '';
  });
  assert.match(logs, /container=sampan/);
  for (const m of ['/run', '/run/lock', '/tmp']) assert.match(logs, new RegExp(`^${m}$`, 'm'));
  assert.deepEqual(await cmdline('r-sysd'), ['/bin/sh', '/sbin/init']);
  assert.equal(await ok(['inspect', '-f', '{{.Config.StopSignal}}', 'r-sysd']), 'SIGRTMIN+3');
  // systemd runs the initscript: a oneshot unit wanted by multi-user.target
  assert.match(await ok(['exec', 'r-sysd', 'cat', '/etc/systemd/system/multi-user.target.wants/sampan-initscript.service']), /^ExecStart=\/bin\/sh "\/scripts\/init\.sh"$/m);

  // an image without /sbin/init cannot run in systemd mode: 400 at start
  const noinit = path.join(tmp, 'noinit');
  await busyboxRootfs(noinit, false);
  await importDir(noinit, 'noinit:test');
  const id = await richContainer('r-noinit', { Image: 'noinit:test', Cmd: ['true'], Rich: true, RichMode: 'systemd' }, false);
  const s = await e.api('POST', `/containers/${id}/start`);
  assert.equal(s.status, 400, s.body.toString());
  assert.match(s.json<{ message: string }>().message, /rich mode systemd needs \/sbin\/init, which image noinit:test does not have/);
});

/** Wait until something accepts TCP connections on ip:port. */
async function tcpReady(ip: string, port: number): Promise<void> {
  await until(
    () =>
      new Promise<boolean>((resolve) => {
        const s = net.connect({ host: ip, port, timeout: 1000 }, () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
        s.on('timeout', () => {
          s.destroy();
          resolve(false);
        });
      }),
    20_000,
    200,
  );
}

test('rich + SSH: dropbear in a rich container; a login over SSH sees the container env and hostname', async () => {
  const root = path.join(tmp, 'sshbox');
  await busyboxRootfs(root, false);
  await copyWithLibs(root, '/usr/sbin/dropbear');
  await copyWithLibs(root, '/usr/bin/dropbearkey');
  await fs.writeFile(path.join(root, 'etc/shells'), '/bin/sh\n');
  await fs.writeFile(path.join(root, 'etc/nsswitch.conf'), 'passwd: files\ngroup: files\nshadow: files\n');
  await fs.writeFile(path.join(root, 'init.sh'), 'mkdir -p /etc/dropbear\n[ -f /etc/dropbear/dropbear_ed25519_host_key ] || dropbearkey -t ed25519 -f /etc/dropbear/dropbear_ed25519_host_key\n');
  const key = path.join(tmp, 'key');
  const kg = await runCmd('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  assert.equal(kg.code, 0, kg.stderr);
  await fs.mkdir(path.join(root, 'root/.ssh'), { mode: 0o700 });
  await fs.writeFile(path.join(root, 'root/.ssh/authorized_keys'), await fs.readFile(`${key}.pub`), { mode: 0o600 });
  await importDir(root, 'sshbox:test');

  const r = await e.sampan(['run', '-d', '--name', 'r-ssh', '--rich', '--initscript', '/init.sh', '-e', 'MYVAR=hello from sampan', '-h', 'sshbox', 'sshbox:test', 'dropbear', '-F', '-E', '-s', '-p', '22']);
  assert.equal(r.code, 0, r.stderr);
  const ip = await ok(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'r-ssh']);
  assert.match(ip, /^\d+\.\d+\.\d+\.\d+$/);
  await tcpReady(ip, 22);
  const ssh = (args: string[], input?: string) =>
    runCmd('ssh', ['-i', key, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', '-o', 'LogLevel=ERROR', `root@${ip}`, ...args], { input, timeoutMs: 30_000 });
  // no command: dropbear starts the user's login shell, which reads /etc/profile and so /etc/profile.d
  const login = await ssh([], 'echo "MYVAR=$MYVAR"; hostname\n');
  assert.equal(login.code, 0, `${login.stderr}\n${(await e.docker(['logs', 'r-ssh'])).stderr}`);
  assert.equal(login.stdout.trim(), 'MYVAR=hello from sampan\nsshbox');
  // a command runs in a non-login shell (as with any SSH server): sh -l gets the same env
  const cmd = await ssh(['sh -lc \'echo "$MYVAR on $(hostname)"\'']);
  assert.equal(cmd.code, 0, cmd.stderr);
  assert.equal(cmd.stdout.trim(), 'hello from sampan on sshbox');
});
