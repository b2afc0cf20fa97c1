/**
 * `sampan cluster testbed`: etcd and emulated hosts (network namespaces, each with its own engine) that the real
 * docker CLI drives, whose containers reach each other's hosts, and that SIGTERM removes to the last trace.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs, openSync, closeSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import type { TestbedDescription } from '../../src/cluster/index.js';
import { SAMPAN, runCmd, until } from '../harness.js';

interface Running {
  dir: string;
  proc: ChildProcess;
  /** Its stdout and stderr, read back from a file: a pipe would break under it when this test process ends first. */
  output(): string;
  exit: Promise<number | null>;
}

function launch(dir: string, args: string[]): Running {
  const logFile = `${dir}.log`;
  const fd = openSync(logFile, 'a');
  const proc = spawn(SAMPAN, ['cluster', 'testbed', '--dir', dir, ...args], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  return { dir, proc, output: () => readFileSync(logFile, 'utf8'), exit: new Promise((res) => proc.once('exit', (code) => res(code))) };
}

/** A testbed in a fresh short dir (attach socket paths must stay under 108 bytes); stopped and removed at the end. */
async function startTestbed(hosts: number, onEnd: (fn: () => Promise<void>) => void): Promise<Running> {
  const dir = path.join(await fs.mkdtemp('/tmp/sptb-'), 'tb');
  const r = launch(dir, ['--hosts', String(hosts), '--managers', '0']);
  onEnd(async () => {
    await stopTestbed(r);
    await fs.rm(path.dirname(dir), { recursive: true, force: true });
  });
  await until(async () => {
    if (r.proc.exitCode !== null) throw new Error(`the testbed exited before it was ready:\n${r.output()}`);
    return /^ready/m.test(r.output());
  }, 150_000, 200);
  return r;
}

async function stopTestbed(r: Running): Promise<number | null> {
  if (r.proc.exitCode === null) r.proc.kill('SIGTERM');
  return r.exit;
}

const describeTestbed = async (r: Running): Promise<TestbedDescription> => JSON.parse(await fs.readFile(path.join(r.dir, 'testbed.json'), 'utf8')) as TestbedDescription;
const docker = (h: { socket: string }, args: string[]) => runCmd('docker', args, { env: { DOCKER_HOST: `unix://${h.socket}`, DOCKER_CLI_HINTS: 'false' }, timeoutMs: 90_000 });
/** Alive and not a zombie (a killed process its new parent, init, has not reaped yet). */
async function running(pid: number): Promise<boolean> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}
const lines = (s: string) => s.split('\n').filter(Boolean);

/** What of this testbed is still on the machine: namespaces, links, mounts, processes, iptables rules. */
async function leftovers(tb: TestbedDescription, dir: string): Promise<string[]> {
  const netns = lines((await runCmd('ip', ['netns', 'list'])).stdout).map((l) => l.split(' ')[0]!);
  const links = lines((await runCmd('ip', ['-br', 'link'])).stdout).map((l) => l.split(/[\s@]/)[0]!);
  const mounts = (await fs.readFile('/proc/mounts', 'utf8')).split('\n').map((l) => l.split(' ')[1] ?? '');
  const procs: string[] = [];
  for (const p of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    const cmd = await fs.readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '');
    const root = await fs.readlink(`/proc/${p}/root`).catch(() => '');
    if (cmd.includes(dir) || root.startsWith(dir)) procs.push(`${p}: ${cmd.replace(/\0/g, ' ')}`);
  }
  const forward = (await runCmd('iptables', ['-w', '-S', 'FORWARD'])).stdout;
  const cgroups: string[] = [];
  for (const ctl of ['', ...(await fs.readdir('/sys/fs/cgroup'))]) {
    for (const h of tb.hosts) {
      const cg = path.join('/sys/fs/cgroup', ctl, h.netns);
      if (await fs.stat(cg).then(() => true, () => false)) cgroups.push(cg);
    }
  }
  return [
    ...tb.hosts.filter((h) => netns.includes(h.netns)).map((h) => `netns ${h.netns}`),
    ...links.filter((l) => l === tb.network.bridge || l.startsWith(`${tb.network.bridge}h`)).map((l) => `link ${l}`),
    ...mounts.filter((m) => m.startsWith(dir)).map((m) => `mount ${m}`),
    ...procs.map((p) => `process ${p}`),
    ...cgroups.map((c) => `cgroup ${c}`),
    ...(forward.includes(`sampan-testbed:${tb.network.bridge}`) ? [`iptables FORWARD rule for ${tb.network.bridge}`] : []),
  ];
}

describe('a testbed of 2 hosts', () => {
  let r: Running;
  let tb: TestbedDescription;
  const ends: Array<() => Promise<void>> = [];
  after(async () => {
    for (const end of ends) await end();
  });
  before(async () => {
    r = await startTestbed(2, (fn) => ends.push(fn));
    tb = await describeTestbed(r);
    for (const h of tb.hosts) {
      const seed = await runCmd(SAMPAN, ['image', 'seed', '--host', `unix://${h.socket}`]);
      assert.equal(seed.code, 0, seed.stderr);
    }
  });

  test('testbed.json lists etcd, no managers (--managers 0) and the hosts, each with its namespace, IP, socket and engine', async () => {
    assert.equal(tb.etcd.members.length, 1);
    assert.deepEqual(tb.etcd.endpoints, [tb.etcd.members[0]!.endpoint]);
    assert.equal(tb.etcd.pid, tb.etcd.members[0]!.pid);
    process.kill(tb.etcd.pid, 0);
    assert.deepEqual(tb.managers, []);
    assert.deepEqual(tb.hosts.map((h) => h.name), ['host1', 'host2']);
    const netns = (await runCmd('ip', ['netns', 'list'])).stdout;
    for (const h of tb.hosts) {
      assert.match(h.netns, /^sptb\d+-h\d$/);
      assert.ok(netns.includes(h.netns), `${h.netns} in ip netns list`);
      assert.ok(h.ip.startsWith(tb.network.subnet.replace(/0\/24$/, '')), `${h.ip} in ${tb.network.subnet}`);
      assert.ok((await fs.stat(h.socket)).isSocket());
      assert.ok(lines((await runCmd('ip', ['netns', 'pids', h.netns])).stdout).includes(String(h.pid)), `engine ${h.pid} in ${h.netns}`);
    }
    const c = new Etcd3({ hosts: tb.etcd.endpoints });
    try {
      await c.put('testbed/probe').value('ok');
      assert.equal(await c.get('testbed/probe').string(), 'ok');
    } finally {
      c.close();
    }
  });

  test('each host\'s engine answers the docker CLI and runs containers of its own', async () => {
    for (const h of tb.hosts) {
      const run = await docker(h, ['run', '--rm', 'busybox', 'sh', '-c', 'echo hello from $(hostname)']);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /^hello from \w+/);
    }
    const named = await docker(tb.hosts[0]!, ['run', '-d', '--name', 'only-on-1', 'busybox', 'sleep', '600']);
    assert.equal(named.code, 0, named.stderr);
    assert.equal((await docker(tb.hosts[0]!, ['ps', '-q', '--filter', 'name=only-on-1'])).stdout.trim().length > 0, true);
    assert.equal((await docker(tb.hosts[1]!, ['ps', '-aq', '--filter', 'name=only-on-1'])).stdout.trim(), '');
  });

  test('a container on host 1 reaches host 2: ping to its IP and a port published there', async () => {
    const [h1, h2] = tb.hosts as [TestbedDescription['hosts'][0], TestbedDescription['hosts'][0]];
    const web = await docker(h2, ['run', '-d', '--name', 'web', '-p', '8080:80', 'busybox', 'sh', '-c', 'echo served-by-host2 > /tmp/index.html; exec httpd -f -p 80 -h /tmp']);
    assert.equal(web.code, 0, web.stderr);
    const ping = await docker(h1, ['run', '--rm', 'busybox', 'ping', '-c', '1', '-W', '5', h2.ip]);
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    assert.match(ping.stdout, /1 packets received/);
    // the loop waits for httpd to listen, not for the network
    const get = await docker(h1, ['run', '--rm', 'busybox', 'sh', '-c', `for i in $(seq 1 40); do wget -qO- http://${h2.ip}:8080/ && exit 0; sleep 0.25; done; exit 1`]);
    assert.equal(get.code, 0, get.stderr);
    assert.equal(get.stdout.trim(), 'served-by-host2');
  });

  test('a second testbed beside it takes another bridge, subnet and namespaces', async (t) => {
    const other = await startTestbed(1, (fn) => t.after(fn));
    const o = await describeTestbed(other);
    assert.notEqual(o.network.bridge, tb.network.bridge);
    assert.notEqual(o.network.subnet, tb.network.subnet);
    assert.ok(!tb.hosts.some((h) => h.netns === o.hosts[0]!.netns));
  });
});

test('SIGTERM removes containers, engines (a killed one too), namespaces, bridge, mounts, cgroups and etcd, and exits 0', async (t) => {
  const r = await startTestbed(2, (fn) => t.after(fn));
  const tb = await describeTestbed(r);
  const containers: Array<{ netns: string; pid: number }> = [];
  for (const h of tb.hosts) {
    assert.equal((await runCmd(SAMPAN, ['image', 'seed', '--host', `unix://${h.socket}`])).code, 0);
    const c = await docker(h, ['run', '-d', '-p', '8080:80', 'busybox', 'sleep', '600']);
    assert.equal(c.code, 0, c.stderr);
    const pid = Number((await docker(h, ['inspect', '-f', '{{.State.Pid}}', c.stdout.trim()])).stdout.trim());
    containers.push({ netns: `sampan-${c.stdout.trim().slice(0, 12)}`, pid });
  }
  // host 2's engine dies: what it ran is the testbed's to remove
  process.kill(tb.hosts[1]!.pid, 'SIGKILL');

  assert.equal(await stopTestbed(r), 0, r.output());
  assert.deepEqual(await leftovers(tb, r.dir), []);
  const netns = (await runCmd('ip', ['netns', 'list'])).stdout;
  for (const c of containers) {
    assert.ok(!netns.includes(c.netns), `container netns ${c.netns} left`);
    assert.ok(!(await running(c.pid)), `container process ${c.pid} left running`);
  }
  for (const m of tb.etcd.members) assert.throws(() => process.kill(m.pid, 0), /ESRCH/, `etcd member ${m.name} left running`);
});

test('a start that fails half-way (a host\'s dir cannot be made) removes what it made and exits 1', async (t) => {
  const dir = path.join(await fs.mkdtemp('/tmp/sptb-'), 'tb');
  t.after(() => fs.rm(path.dirname(dir), { recursive: true, force: true }));
  await fs.mkdir(path.join(dir, 'hosts'), { recursive: true });
  await fs.writeFile(path.join(dir, 'hosts', 'host2'), 'not a directory');
  const r = launch(dir, ['--hosts', '2']);
  t.after(() => stopTestbed(r).then(() => undefined));
  assert.equal(await r.exit, 1, r.output());
  assert.doesNotMatch(r.output(), /^ready/m);
  const made = /"bridge":"(sptb\d+)"/.exec(r.output())?.[1];
  assert.ok(made, `the log names the bridge it made:\n${r.output()}`);
  const tb: TestbedDescription = {
    etcd: { endpoints: [], pid: 0, members: [] },
    managers: [],
    hosts: [1, 2].map((i) => ({ name: `host${i}`, netns: `${made}-h${i}`, ip: '', socket: '', api: '', pid: 0 })),
    network: { bridge: made, subnet: '', gateway: '' },
  };
  assert.deepEqual(await leftovers(tb, dir), []);
});
