/**
 * The engines' side of cluster networks on a 3-host testbed joined to a fake manager (fake-manager.ts): containers
 * on different hosts reach each other at their manager-given addresses (host-gw and vxlan), two cluster networks and
 * a local network are isolated, an internal one reaches only itself, an engine killed -9 and restarted keeps its
 * containers' addresses and gets its routes back from the peers, `sampan engine cleanup` removes what no container
 * uses, a failed VXLAN device is reported without harming the rest, and a peer removed takes its routes away.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs, openSync, closeSync } from 'node:fs';
import path from 'node:path';
import { Testbed } from '../../src/cluster/testbed/testbed.js';
import type { HostInfo } from '../../src/cluster/testbed/host.js';
import type { ClusterNetworkSpec } from '../../src/lib/node-protocol.js';
import { SAMPAN, runCmd, until } from '../harness.js';
import { FakeManager } from './fake-manager.js';

const hexId = () => randomBytes(32).toString('hex');
const GW: ClusterNetworkSpec = { id: hexId(), name: 'cgw', subnet: '10.193.0.0/16', routing: 'host-gw', vni: 0, mtu: 1500, internal: false, labels: { team: 'a' } };
const VX: ClusterNetworkSpec = { id: hexId(), name: 'cvx', subnet: '10.194.0.0/16', routing: 'vxlan', vni: 4242, mtu: 1450, internal: false, labels: {} };
/** Host I (1-based) holds block I of each network. */
const block = (spec: ClusterNetworkSpec, i: number) => spec.subnet.replace(/\.0\.0\/16$/, `.${i}.0/24`);
const addrIn = (spec: ClusterNetworkSpec, i: number, last: number) => spec.subnet.replace(/\.0\.0\/16$/, `.${i}.${last}`);

describe('cluster networks: the engines\' data plane', { timeout: 600_000 }, () => {
  let dir: string;
  let tb: Testbed;
  let fake: FakeManager;
  let hosts: HostInfo[];
  const host = (name: string) => hosts.find((h) => h.name === name)!;
  const docker = (h: string, args: string[]) => runCmd('docker', ['-H', `unix://${host(h).socket}`, ...args], { timeoutMs: 60_000 });
  const inNs = (h: string, args: string[]) => runCmd('ip', ['-n', host(h).netns, ...args]);
  const routes = async (h: string) => (await inNs(h, ['-4', 'route', 'show', 'proto', '77'])).stdout;

  /** A busybox container made through the node protocol, on `spec` at `addr`. */
  async function run(h: string, name: string, spec: ClusterNetworkSpec, addr: string, cmd = ['sleep', '600']): Promise<string> {
    const id = hexId();
    await fake.command(h, 'create', {
      id, name, start: true,
      body: { Image: 'busybox', Cmd: cmd, HostConfig: { NetworkMode: spec.name }, NetworkingConfig: { EndpointsConfig: { [spec.name]: { IPAMConfig: { IPv4Address: addr } } } } },
    });
    return id;
  }
  const ping = async (h: string, c: string, addr: string) => (await docker(h, ['exec', c, 'ping', '-c', '1', '-W', '2', addr])).code === 0;
  const get = async (h: string, c: string, url: string) => (await docker(h, ['exec', c, 'timeout', '5', 'wget', '-qO-', url])).stdout;
  /** The body once the server (just started) answers. */
  const served = (h: string, c: string, url: string) => until(async () => (await get(h, c, url)) || undefined, 10_000, 200);

  before(async () => {
    dir = path.join(await fs.mkdtemp('/tmp/spdp-'), 'tb');
    await fs.mkdir(dir, { recursive: true });
    fake = await FakeManager.start(path.join(path.dirname(dir), 'fake.sock'));
    tb = new Testbed({ dir, hosts: 3, components: [fake.component()], engineArgs: fake.engineArgs });
    await tb.start();
    hosts = tb.description.hosts;
    for (const h of hosts) {
      const seeded = await runCmd(SAMPAN, ['image', 'seed', '--host', `unix://${h.socket}`]);
      assert.equal(seeded.code, 0, seeded.stderr);
    }
    fake.setNetworks([GW, VX]);
    for (const [i, h] of hosts.entries()) for (const spec of [GW, VX]) fake.setBlocks(h.name, spec.id, [block(spec, i + 1)]);
  });

  after(async () => {
    await tb?.stop();
    await fake?.stop();
    const left = await runCmd('ip', ['netns', 'list']);
    await fs.rm(path.dirname(dir), { recursive: true, force: true });
    // the testbed's teardown leaves none of the hosts' namespaces (their bridges, VXLAN devices and routes went with them)
    assert.doesNotMatch(left.stdout, new RegExp(`${hosts[0]!.netns.replace(/-h1$/, '')}-h`));
  });

  test('the engine shows a cluster network as an overlay network of swarm scope, and refuses a container on it without an address', async () => {
    await until(async () => {
      const ls = (await docker('host1', ['network', 'ls', '--format', '{{.Name}} {{.Driver}} {{.Scope}}'])).stdout;
      return ls.includes('cgw overlay swarm') && ls.includes('cvx overlay swarm');
    }, 10_000);
    const out = await docker('host1', ['network', 'inspect', 'cvx']);
    assert.equal(out.code, 0, out.stderr);
    const inspect = JSON.parse(out.stdout) as Array<{ Id: string; IPAM: { Config: Array<{ Subnet: string }> }; Labels: Record<string, string> }>;
    assert.equal(inspect[0]!.Id, VX.id);
    assert.equal(inspect[0]!.IPAM.Config[0]!.Subnet, VX.subnet);
    const refused = await docker('host1', ['run', '--rm', '--network', 'cgw', 'busybox', 'true']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /cluster addresses come from the cluster manager/);
    const rm = await docker('host1', ['network', 'rm', 'cgw']);
    assert.notEqual(rm.code, 0);
    assert.match(rm.stderr, /cluster network/);
    const create = await docker('host1', ['network', 'create', '-d', 'overlay', 'mine']);
    assert.notEqual(create.code, 0);
    assert.match(create.stderr, /created through the cluster manager/);
  });

  test('host-gw: containers on different hosts ping and HTTP each other at their addresses, no published port', async () => {
    const srv = await run('host2', 'gw-srv', GW, addrIn(GW, 2, 10), ['sh', '-c', 'echo served-gw > /tmp/i; httpd -f -p 8080 -h /tmp']);
    const cli = await run('host1', 'gw-cli', GW, addrIn(GW, 1, 10));
    const ip = (await docker('host2', ['inspect', '-f', '{{.NetworkSettings.Networks.cgw.IPAddress}}', srv])).stdout.trim();
    assert.equal(ip, addrIn(GW, 2, 10));
    assert.equal((await docker('host2', ['port', srv])).stdout.trim(), '');
    assert.match(await routes('host1'), new RegExp(`${block(GW, 2).replace(/\./g, '\\.')} via ${host('host2').ip.replace(/\./g, '\\.')}`));
    // the bridge holds the block's gateway
    assert.match((await inNs('host1', ['-4', 'addr', 'show', `spc${GW.id.slice(0, 8)}`])).stdout, new RegExp(`inet ${addrIn(GW, 1, 1).replace(/\./g, '\\.')}/24`));
    assert.ok(await ping('host1', cli, addrIn(GW, 2, 10)));
    assert.ok(await ping('host2', srv, addrIn(GW, 1, 10)));
    assert.equal(await served('host1', cli, `http://${addrIn(GW, 2, 10)}:8080/i`), 'served-gw\n');
    // outbound NAT: the testbed's gateway has no route back to the cluster's addresses
    assert.ok(await ping('host1', cli, tb.description.network.gateway));
  });

  test('vxlan: containers on different hosts ping and HTTP each other through the VXLAN devices', async () => {
    const srv = await run('host3', 'vx-srv', VX, addrIn(VX, 3, 10), ['sh', '-c', 'echo served-vx > /tmp/i; httpd -f -p 8080 -h /tmp']);
    const cli = await run('host1', 'vx-cli', VX, addrIn(VX, 1, 10));
    const dev = `spvx${VX.vni}`;
    const link = (await inNs('host1', ['-d', 'link', 'show', dev])).stdout;
    assert.match(link, /vxlan id 4242 .*dstport 4789.*nolearning/s);
    assert.match(link, /mtu 1450/);
    assert.ok(fake.netstates.some((s) => s.network === VX.id && s.vtepMac));
    await until(async () => (await routes('host1')).includes(`${block(VX, 3)} via ${addrIn(VX, 3, 0)} dev ${dev}`), 10_000);
    assert.match((await runCmd('bridge', ['-n', host('host1').netns, 'fdb', 'show', 'dev', dev])).stdout, new RegExp(`dst ${host('host3').ip.replace(/\./g, '\\.')}`));
    assert.match((await inNs('host1', ['neigh', 'show', 'dev', dev])).stdout, new RegExp(`${addrIn(VX, 3, 0).replace(/\./g, '\\.')} lladdr .* PERMANENT`));
    assert.ok(await ping('host1', cli, addrIn(VX, 3, 10)));
    assert.equal(await served('host1', cli, `http://${addrIn(VX, 3, 10)}:8080/i`), 'served-vx\n');
  });

  test('two cluster networks are isolated, on one host and across hosts, and from a local network', async () => {
    const a = await run('host1', 'iso-a', GW, addrIn(GW, 1, 20), ['sh', '-c', 'echo a > /tmp/i; httpd -f -p 8080 -h /tmp']);
    const b = await run('host1', 'iso-b', VX, addrIn(VX, 1, 20), ['sh', '-c', 'echo b > /tmp/i; httpd -f -p 8080 -h /tmp']);
    const c = await run('host2', 'iso-c', VX, addrIn(VX, 2, 20), ['sh', '-c', 'echo c > /tmp/i; httpd -f -p 8080 -h /tmp']);
    const d = await run('host2', 'iso-d', GW, addrIn(GW, 2, 20));
    const local = (await docker('host1', ['run', '-d', 'busybox', 'sh', '-c', 'echo l > /tmp/i; httpd -f -p 8080 -h /tmp'])).stdout.trim();
    const localIp = (await docker('host1', ['inspect', '-f', '{{.NetworkSettings.Networks.bridge.IPAddress}}', local])).stdout.trim();
    // the same network still answers across hosts (the rules let it through) ...
    assert.ok(await ping('host2', d, addrIn(GW, 1, 20)));
    assert.ok(await ping('host2', c, addrIn(VX, 1, 20)));
    // ... another does not, either way, on one host and across hosts
    assert.equal(await ping('host1', a, addrIn(VX, 1, 20)), false);
    assert.equal(await ping('host1', b, addrIn(GW, 1, 20)), false);
    assert.equal(await ping('host1', a, addrIn(VX, 2, 20)), false);
    assert.equal(await ping('host2', c, addrIn(GW, 1, 20)), false);
    assert.equal(await ping('host2', d, addrIn(VX, 1, 20)), false);
    assert.equal(await get('host2', d, `http://${addrIn(VX, 2, 20)}:8080/i`), '');
    // nor a local network's containers, either way
    assert.equal(await ping('host1', local, addrIn(GW, 1, 20)), false);
    assert.equal(await ping('host1', local, addrIn(GW, 2, 20)), false);
    assert.equal(await get('host1', a, `http://${localIp}:8080/i`), '');
    assert.equal(await ping('host1', b, localIp), false);
  });

  test('a container whose block reaches the host after its create starts once it does; the bridge holds both blocks\' gateways', async () => {
    const late = `${GW.subnet.split('.').slice(0, 2).join('.')}.101.0/24`;
    const created = run('host1', 'late', GW, late.replace(/0\/24$/, '5'));
    await new Promise((r) => setTimeout(r, 1000));
    fake.setBlocks('host1', GW.id, [block(GW, 1), late]);
    const c = await created;
    const br = (await inNs('host1', ['-4', 'addr', 'show', `spc${GW.id.slice(0, 8)}`])).stdout;
    assert.match(br, new RegExp(`inet ${addrIn(GW, 1, 1).replace(/\./g, '\\.')}/24`));
    assert.match(br, new RegExp(`inet ${late.replace(/0\/24$/, '1').replace(/\./g, '\\.')}/24`));
    await until(async () => (await routes('host2')).includes(`${late} via ${host('host1').ip}`), 10_000);
    assert.ok(await ping('host2', 'gw-srv', late.replace(/0\/24$/, '5')));
    assert.ok(await ping('host1', c, addrIn(GW, 2, 10)));
  });

  test('an engine killed -9 and restarted keeps its containers\' addresses and gets its routes back from the peers', async () => {
    const c = await run('host1', 'keep', GW, addrIn(GW, 1, 30));
    const pid = host('host1').pid;
    const [cmdline, environ] = await Promise.all([fs.readFile(`/proc/${pid}/cmdline`, 'utf8'), fs.readFile(`/proc/${pid}/environ`, 'utf8')]);
    process.kill(pid, 'SIGKILL');
    // gone (ENOENT, or ESRCH when it is reaped while read) or a zombie
    await until(() => fs.readFile(`/proc/${pid}/stat`, 'utf8').then((st) => st.includes(') Z'), () => true), 10_000);
    // what the engine had set up goes while it is away: only the peers can bring the routes back
    await inNs('host1', ['route', 'flush', 'proto', '77']);
    assert.equal((await routes('host1')).trim(), '');
    const argv = cmdline.split('\0').filter(Boolean);
    const env = Object.fromEntries(environ.split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    const fd = openSync(path.join(dir, 'hosts', 'host1', 'engine.log'), 'a');
    const engine = spawn('nsenter', [`--net=/run/netns/${host('host1').netns}`, ...argv], { stdio: ['ignore', fd, fd], detached: true, env });
    closeSync(fd);
    try {
      await until(async () => fake.joined('host1') && (await docker('host1', ['version'])).code === 0, 60_000, 200);
      await until(async () => (await routes('host1')).includes(`${block(GW, 2)} via ${host('host2').ip}`) && (await routes('host1')).includes(`${block(VX, 2)} via`), 10_000);
      assert.equal((await docker('host1', ['inspect', '-f', '{{.State.Running}} {{.NetworkSettings.Networks.cgw.IPAddress}}', c])).stdout.trim(), `true ${addrIn(GW, 1, 30)}`);
      assert.ok(await ping('host1', c, addrIn(GW, 2, 10)));
      assert.ok(await ping('host2', 'gw-srv', addrIn(GW, 1, 30)));
    } finally {
      // the testbed stops the engine it started: this one is the test's
      const ids = (await docker('host1', ['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      const rm = ids.length ? await docker('host1', ['rm', '-f', ...ids]) : undefined;
      assert.equal(rm?.code ?? 0, 0, rm?.stderr);
      assert.equal((await docker('host1', ['ps', '-aq'])).stdout.trim(), '');
      const gone = new Promise((r) => engine.once('exit', r));
      engine.kill('SIGTERM');
      await gone;
    }
  });

  test('sampan engine cleanup removes the cluster bridges, VXLAN devices and routes no container uses', async () => {
    // host1's engine is stopped (the test above) and its containers are gone
    const links = async () => (await inNs('host1', ['-o', 'link', 'show'])).stdout;
    assert.match(await links(), /spc.*spvx|spvx.*spc/s);
    const hostDir = path.join(dir, 'hosts', 'host1');
    const r = await runCmd('nsenter', [`--net=/run/netns/${host('host1').netns}`, SAMPAN, 'engine', 'cleanup', '--root', path.join(hostDir, 'root'), '--exec-root', path.join(hostDir, 'run')]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(await links(), /: (spc|spvx)/);
    assert.equal((await routes('host1')).trim(), '');
    assert.doesNotMatch((await runCmd('ip', ['netns', 'exec', host('host1').netns, 'iptables-save'])).stdout, /sampan:spc/);
  });

  test('a network whose VXLAN device cannot be made is reported in a netstate, and the others keep working', async () => {
    // a VNI past VXLAN's 24 bits: the kernel refuses the device
    const bad: ClusterNetworkSpec = { ...VX, id: hexId(), name: 'cbad', subnet: '10.195.0.0/16', vni: 2 ** 24 };
    fake.setNetworks([GW, VX, bad]);
    fake.setBlocks('host3', bad.id, [block(bad, 3)]);
    const failed = await until(async () => fake.netstates.find((m) => m.network === bad.id && m.error)?.error, 10_000);
    assert.match(failed ?? '', /spvx16777216/);
    assert.ok(await ping('host3', 'vx-srv', addrIn(VX, 2, 20)));
    assert.match(await routes('host3'), new RegExp(block(GW, 2).replace(/\./g, '\\.')));
  });

  test('an internal cluster network reaches its own containers across hosts and nothing outside', async () => {
    const int: ClusterNetworkSpec = { ...GW, id: hexId(), name: 'cint', subnet: '10.196.0.0/16', internal: true };
    fake.setNetworks([GW, VX, int]);
    fake.setBlocks('host2', int.id, [block(int, 2)]);
    fake.setBlocks('host3', int.id, [block(int, 3)]);
    const a = await run('host2', 'int-a', int, addrIn(int, 2, 10));
    const b = await run('host3', 'int-b', int, addrIn(int, 3, 10));
    assert.ok(await ping('host2', a, addrIn(int, 3, 10)));
    assert.ok(await ping('host3', b, addrIn(int, 2, 10)));
    assert.equal(await ping('host2', a, tb.description.network.gateway), false);
    assert.equal(await ping('host2', a, addrIn(GW, 2, 10)), false);
  });

  test('a peer removed takes its routes away', async () => {
    assert.match(await routes('host3'), new RegExp(block(GW, 2).replace(/\./g, '\\.')));
    fake.removePeer('host2', GW.id);
    await until(async () => !(await routes('host3')).includes(block(GW, 2)), 10_000);
    assert.match(await routes('host3'), new RegExp(block(GW, 1).replace(/\./g, '\\.')));
    fake.removePeer('host2', VX.id);
    await until(async () => !(await routes('host3')).includes(block(VX, 2)), 10_000);
    const fdb = () => runCmd('bridge', ['-n', host('host3').netns, 'fdb', 'show', 'dev', `spvx${VX.vni}`]).then((r) => r.stdout);
    await until(async () => !(await fdb()).includes(`dst ${host('host2').ip} `), 10_000);
    assert.match(await fdb(), new RegExp(`dst ${host('host1').ip.replace(/\./g, '\\.')} `));
  });
});
