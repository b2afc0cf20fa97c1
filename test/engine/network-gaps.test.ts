import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { TestEngine, runCmd } from '../harness.js';

const run = promisify(execFile);

// a default bridge, address pool and IPv6 prefix of this test's own (engines running side by side must not share them)
const BRIDGE = `sampang${process.pid % 100000}`;
const OCTET = 200 + (process.pid % 50);
process.env.SAMPAN_BRIDGE_NAME = BRIDGE;
process.env.SAMPAN_BRIDGE_SUBNET = `10.${OCTET}.0.0/24`;
process.env.SAMPAN_DEFAULT_ADDRESS_POOL = `base=10.${OCTET}.16.0/20,size=24`;
const V6 = (n: number) => `fd5a:${(process.pid % 0xffff).toString(16)}:${n}::`;

let e: TestEngine;
before(async () => {
  e = await TestEngine.start();
});
after(async () => {
  if (e) {
    const ids = (await e.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
    if (ids.length) await e.docker(['rm', '-f', ...ids], { timeoutMs: 60_000 });
    await e.docker(['network', 'prune', '-f']);
  }
  await e?.cleanup();
  await run('ip', ['link', 'delete', BRIDGE]).catch(() => undefined);
  for (const bin of ['iptables', 'ip6tables']) {
    const lines = (await run(bin, ['-w', '-S', 'SAMPAN-ISOLATION']).catch(() => ({ stdout: '' }))).stdout.split('\n');
    for (const l of lines.filter((x) => x.startsWith('-A') && x.includes(`sampan:${BRIDGE}`))) {
      await run(bin, ['-w', '-D', ...l.replace(/"/g, '').split(/\s+/).slice(1)]).catch(() => undefined);
    }
  }
});

const ok = async (args: string[]) => {
  const r = await e.docker(args, { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
};
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const inspect = async (what: 'container' | 'network', name: string): Promise<any> => JSON.parse(await ok([what, 'inspect', name]))[0];

test('network names with spaces: create, run on it, connect, inspect, rm (Docker allows them)', async () => {
  const name = `my net ${process.pid}`;
  const id = await ok(['network', 'create', name]);
  assert.equal((await inspect('network', name)).Id, id);
  assert.equal((await e.api('GET', `/v1.44/networks/${encodeURIComponent(name)}`)).json().Name, name);
  assert.match(await ok(['network', 'ls', '--format', '{{.Name}}']), new RegExp(`^${name}$`, 'm'));
  const out = await ok(['run', '--rm', '--network', name, 'busybox', 'sh', '-c', 'ip -4 -o addr show eth0']);
  assert.match(out, /inet 10\./);
  await ok(['create', '--name', 'spaced', 'busybox', 'true']);
  await ok(['network', 'connect', name, 'spaced']);
  assert.ok(name in (await inspect('container', 'spaced')).NetworkSettings.Networks);
  await ok(['rm', 'spaced']);
  // blank is the one name Docker refuses
  assert.equal((await e.api('POST', '/v1.44/networks/create', { Name: '   ' })).status, 400);
  await ok(['network', 'rm', name]);
});

test('connect: the MAC address given is used, DriverOpts and Links are kept and shown, the link resolves for that container', async () => {
  await ok(['network', 'create', 'gap-a']);
  await ok(['network', 'create', 'gap-b']);
  await ok(['run', '-d', '--name', 'target', '--network', 'gap-b', 'busybox', 'sleep', '600']);
  await ok(['run', '-d', '--name', 'asker', '--network', 'gap-a', 'busybox', 'sleep', '600']);
  const mac = '02:42:ac:11:77:01';
  const r = await e.api('POST', '/v1.44/networks/gap-b/connect', { Container: 'asker', EndpointConfig: { MacAddress: mac, Links: ['target:db'], DriverOpts: { 'com.example.opt': 'on' }, Aliases: ['asker-b'] } });
  assert.equal(r.status, 200, r.body.toString());
  const ep = (await inspect('container', 'asker')).NetworkSettings.Networks['gap-b'];
  assert.equal(ep.MacAddress, mac);
  assert.deepEqual(ep.Links, ['target:db']);
  assert.deepEqual(ep.DriverOpts, { 'com.example.opt': 'on' });
  assert.deepEqual(ep.Aliases, ['asker-b']);
  assert.equal(await ok(['exec', 'asker', 'cat', '/sys/class/net/eth1/address']), mac);
  // the link's alias is the asker's alone: it reaches the target by it, the target does not know it
  const targetIp = (await inspect('container', 'target')).NetworkSettings.Networks['gap-b'].IPAddress;
  assert.match(await ok(['exec', 'asker', 'ping', '-c1', '-W3', 'db']), new RegExp(`\\(${targetIp.replace(/\./g, '\\.')}\\)`));
  assert.notEqual((await e.docker(['exec', 'target', 'ping', '-c1', '-W3', 'db'])).code, 0);
  // all of it holds across a restart (it is the endpoint's configuration, not only its live state)
  await ok(['restart', '-t', '0', 'asker']);
  const again = (await inspect('container', 'asker')).NetworkSettings.Networks['gap-b'];
  assert.equal(again.MacAddress, mac);
  assert.deepEqual([again.Links, again.DriverOpts], [['target:db'], { 'com.example.opt': 'on' }]);
  assert.equal(await ok(['exec', 'asker', 'cat', '/sys/class/net/eth1/address']), mac);

  // connected while stopped: the MAC is used at the next start
  await ok(['create', '--name', 'later', '--network', 'gap-a', 'busybox', 'sleep', '600']);
  await ok(['network', 'connect', '--driver-opt', 'com.example.k=v', 'gap-b', 'later']);
  const r2 = await e.api('POST', '/v1.44/networks/gap-a/disconnect', { Container: 'later' });
  assert.equal(r2.status, 200);
  assert.equal((await e.api('POST', '/v1.44/networks/gap-a/connect', { Container: 'later', EndpointConfig: { MacAddress: '02:42:ac:11:77:02' } })).status, 200);
  assert.deepEqual((await inspect('container', 'later')).NetworkSettings.Networks['gap-b'].DriverOpts, { 'com.example.k': 'v' });
  await ok(['start', 'later']);
  const addrs = await ok(['exec', 'later', 'cat', '/sys/class/net/eth0/address', '/sys/class/net/eth1/address']);
  assert.ok(addrs.split('\n').includes('02:42:ac:11:77:02'), addrs);
  assert.equal((await e.api('POST', '/v1.44/networks/gap-a/connect', { Container: 'target', EndpointConfig: { MacAddress: 'not-a-mac' } })).status, 400);
  await ok(['rm', '-f', 'target', 'asker', 'later']);
});

test('links given at create (docker run --network NET --link) are recorded, shown and resolve', async () => {
  await ok(['network', 'create', 'gap-c']);
  await ok(['run', '-d', '--name', 'svc', '--network', 'gap-c', 'busybox', 'sleep', '600']);
  await ok(['run', '-d', '--name', 'client', '--network', 'gap-c', '--link', 'svc:backend', 'busybox', 'sleep', '600']);
  const ep = (await inspect('container', 'client')).NetworkSettings.Networks['gap-c'];
  assert.deepEqual(ep.Links, ['svc:backend']);
  const svcIp = (await inspect('container', 'svc')).NetworkSettings.Networks['gap-c'].IPAddress;
  assert.match(await ok(['exec', 'client', 'ping', '-c1', '-W3', 'backend']), new RegExp(`\\(${svcIp.replace(/\./g, '\\.')}\\)`));
  await ok(['rm', '-f', 'svc', 'client']);
});

test('IPv6 networks: --ipv6 with an IPv6 subnet, --aux-address, --ip6 at run and connect; containers reach each other over IPv6', async () => {
  const { stdout } = await runCmd('sysctl', ['-n', 'net.ipv6.conf.all.disable_ipv6']);
  assert.equal(stdout.trim(), '0', 'IPv6 is disabled on this host');
  const sub6 = `${V6(1)}/64`;
  const aux6 = `${V6(1)}2`;
  await ok(['network', 'create', '--ipv6', '--subnet', `10.${OCTET}.40.0/24`, '--subnet', sub6, '--aux-address', `r4=10.${OCTET}.40.2`, '--aux-address', `r6=${aux6}`, 'gap-v6']);
  const n = await inspect('network', 'gap-v6');
  assert.equal(n.EnableIPv6, true);
  assert.deepEqual(n.IPAM.Config, [
    { Subnet: `10.${OCTET}.40.0/24`, Gateway: `10.${OCTET}.40.1`, AuxiliaryAddresses: { r4: `10.${OCTET}.40.2` } },
    { Subnet: sub6, Gateway: `${V6(1)}1`, AuxiliaryAddresses: { r6: aux6 } },
  ]);

  await ok(['run', '-d', '--name', 'six-a', '--network', 'gap-v6', 'busybox', 'sleep', '600']);
  const a = (await inspect('container', 'six-a')).NetworkSettings.Networks['gap-v6'];
  assert.ok(a.GlobalIPv6Address.startsWith(V6(1)), a.GlobalIPv6Address);
  assert.notEqual(a.GlobalIPv6Address, aux6);
  assert.notEqual(a.IPAddress, `10.${OCTET}.40.2`);
  assert.equal(a.GlobalIPv6PrefixLen, 64);
  assert.equal(a.IPv6Gateway, `${V6(1)}1`);
  const ids = (await inspect('network', 'gap-v6')).Containers;
  assert.equal(Object.values<{ IPv6Address: string }>(ids)[0]!.IPv6Address, `${a.GlobalIPv6Address}/64`);
  assert.match(await ok(['exec', 'six-a', 'ip', '-6', 'addr', 'show', 'eth0']), new RegExp(`inet6 ${a.GlobalIPv6Address}/64 scope global`));
  assert.equal(await ok(['exec', 'six-a', 'cat', '/proc/sys/net/ipv6/conf/all/disable_ipv6']), '0');
  assert.match(await ok(['exec', 'six-a', 'cat', '/etc/hosts']), new RegExp(`^${a.GlobalIPv6Address}\\s`, 'm'));

  // --ip6 at run; reachable over IPv6 from the other container, by address and by name (AAAA)
  const b6 = `${V6(1)}77`;
  await ok(['run', '-d', '--name', 'six-b', '--network', 'gap-v6', '--ip6', b6, 'busybox', 'sleep', '600']);
  const b = (await inspect('container', 'six-b')).NetworkSettings.Networks['gap-v6'];
  assert.equal(b.GlobalIPv6Address, b6);
  assert.equal(b.IPAMConfig.IPv6Address, b6);
  await ok(['exec', 'six-b', 'ping6', '-c1', '-W5', a.GlobalIPv6Address]);
  assert.match(await ok(['exec', 'six-a', 'ping6', '-c1', '-W5', 'six-b']), new RegExp(`\\(${b6}\\)`));

  // --ip6 at connect, to a running container on an IPv4 network
  await ok(['network', 'create', 'gap-v4']);
  await ok(['run', '-d', '--name', 'six-c', '--network', 'gap-v4', 'busybox', 'sleep', '600']);
  const c6 = `${V6(1)}88`;
  await ok(['network', 'connect', '--ip6', c6, 'gap-v6', 'six-c']);
  assert.equal((await inspect('container', 'six-c')).NetworkSettings.Networks['gap-v6'].GlobalIPv6Address, c6);
  await ok(['exec', 'six-c', 'ping6', '-c1', '-W5', a.GlobalIPv6Address]);
  await ok(['exec', 'six-a', 'ping6', '-c1', '-W5', c6]);

  // an auxiliary address is never handed out, nor taken; an address outside the subnets is refused
  const taken = await e.docker(['run', '--rm', '--network', 'gap-v6', '--ip6', aux6, 'busybox', 'true']);
  assert.notEqual(taken.code, 0);
  assert.match(taken.stderr, /already/i);
  const outside = await e.docker(['run', '--rm', '--network', 'gap-v6', '--ip6', `${V6(9)}5`, 'busybox', 'true']);
  assert.notEqual(outside.code, 0);
  assert.match(outside.stderr, /does not belong to any of this network's subnets/);
  // --ipv6 without an IPv6 subnet: no default IPv6 pool, as dockerd 20.10
  const nopool = await e.docker(['network', 'create', '--ipv6', 'gap-nopool']);
  assert.notEqual(nopool.code, 0);
  assert.match(nopool.stderr, /IPv6 address pool/);

  await ok(['rm', '-f', 'six-a', 'six-b', 'six-c']);
  await ok(['network', 'rm', 'gap-v6', 'gap-v4']);
});

test('IPv6 through docker-py: create with an IPv6 IPAM pool, connect with an IPv6 address, inspect', async () => {
  const sub6 = `${V6(2)}/64`;
  const r = await runCmd('/usr/bin/python3', ['-c', `
import docker, json, os
c = docker.DockerClient(base_url=os.environ['DOCKER_HOST'], version='auto')
ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet='${sub6}', aux_addresses={'gw2': '${V6(2)}9'})])
n = c.networks.create('gap-py6', enable_ipv6=True, ipam=ipam)
ct = c.containers.run('busybox', ['sleep', '600'], detach=True, name='py6')
n.connect(ct, ipv6_address='${V6(2)}66', driver_opt={'k': 'v'})
ct.reload(); n.reload()
ep = ct.attrs['NetworkSettings']['Networks']['gap-py6']
print(json.dumps({'v6': ep['GlobalIPv6Address'], 'opts': ep['DriverOpts'], 'enabled': n.attrs['EnableIPv6'], 'aux': [x.get('AuxiliaryAddresses') for x in n.attrs['IPAM']['Config']], 'ping': ct.exec_run(['ping6', '-c1', '-W5', '${V6(2)}1']).exit_code}))
ct.remove(force=True)
n.remove()
`], { env: e.env, timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { v6: string; opts: unknown; enabled: boolean; aux: unknown[]; ping: number };
  assert.equal(out.v6, `${V6(2)}66`);
  assert.deepEqual(out.opts, { k: 'v' });
  assert.equal(out.enabled, true);
  assert.deepEqual(out.aux, [null, { gw2: `${V6(2)}9` }]);
  // the gateway (the bridge's address on the host) answers over IPv6 too
  assert.equal(out.ping, 0);
});

test('dockerode: a network with a space and IPv6, a container created with Links, DriverOpts and an IPv6 address on it', async () => {
  const { default: Docker } = await import('dockerode');
  const docker = new Docker({ socketPath: e.sock });
  const name = 'dockerode net';
  const net = await docker.createNetwork({ Name: name, EnableIPv6: true, IPAM: { Config: [{ Subnet: `${V6(3)}/64` }] } });
  const want6 = `${V6(3)}42`;
  const ct = await docker.createContainer({
    Image: 'busybox',
    Cmd: ['sleep', '600'],
    HostConfig: { NetworkMode: name },
    NetworkingConfig: { EndpointsConfig: { [name]: { IPAMConfig: { IPv6Address: want6 }, Links: ['peer:p'], DriverOpts: { a: 'b' } } } },
  });
  await ct.start();
  // dockerode's types lag the API (no DriverOpts)
  const ep = (await ct.inspect()).NetworkSettings.Networks[name] as unknown as { GlobalIPv6Address: string; Links: string[]; DriverOpts: Record<string, string> };
  assert.equal(ep.GlobalIPv6Address, want6);
  assert.deepEqual([ep.Links, ep.DriverOpts], [['peer:p'], { a: 'b' }]);
  const info = await net.inspect();
  assert.equal(info.Name, name);
  assert.equal(Object.values(info.Containers ?? {})[0]!.IPv6Address, `${want6}/64`);
  await ct.remove({ force: true });
  await net.remove();
});
