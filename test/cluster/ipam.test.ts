/**
 * Cluster networks and IPAM through the manager on a 3-host testbed, with the real docker CLI: network
 * create/ls/inspect/rm, containers' addresses from their host's blocks (as etcd holds them), `--ip`, concurrent
 * creates on all hosts, addresses freed on rm, and `sampan node rm` freeing a removed host's blocks.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import type { NetworkResource } from '../../src/lib/docker-types.js';
import type { NodeView } from '../../src/cluster/index.js';
import { runCmd, until } from '../harness.js';
import { TestCluster } from './harness.js';

describe('cluster networks and IPAM (3-host testbed)', () => {
  let c: TestCluster;
  let etcd: Etcd3;
  const docker = (args: string[]) => c.docker(args);
  const ok = async (args: string[]) => {
    const r = await docker(args);
    assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.trim();
  };
  /** etcd's keys under the cluster's PREFIX, without it. */
  const keys = async (prefix: string): Promise<Record<string, string>> => {
    const all = await etcd.getAll().prefix(`/sampan/cluster/testbed/${prefix}`).strings();
    return Object.fromEntries(Object.entries(all).map(([k, v]) => [k.slice(`/sampan/cluster/testbed/${prefix}`.length), v]));
  };
  const nodeIds = async () => new Map((JSON.parse((await c.get('/sampan/v1/nodes')).body) as NodeView[]).map((n) => [n.name, n.id]));
  const inspectNet = async (ref: string) => (JSON.parse(await ok(['network', 'inspect', ref])) as NetworkResource[])[0]!;
  /** The address the manager gave a container, as the cluster network's inspect lists it. */
  const addrOf = async (net: string, id: string) => (await inspectNet(net)).Containers[id]?.IPv4Address.split('/')[0];
  const subnetOf = (n: NetworkResource) => n.IPAM.Config[0]!.Subnet!;
  /** An address or block in a /16 (or larger) network: its first two octets, then `rest`. */
  const within = (n: NetworkResource, rest: string) => `${subnetOf(n).split('.').slice(0, 2).join('.')}.${rest}`;

  /**
   * An engine without the cluster network driver (the engine side of cluster networking not merged in this
   * branch) is given a local network of the same name and subnet, so that it accepts the manager's address.
   */
  const engineSide = async (name: string, subnet: string) => {
    for (const h of c.tb.hosts) {
      const env = { DOCKER_HOST: `unix://${h.socket}` };
      const has = await until(async () => (await runCmd('docker', ['network', 'ls', '--format', '{{.Name}}'], { env })).stdout.split('\n').includes(name), 3000).catch(() => false);
      if (has) continue;
      // the subnet's last usable address: no block's gateway (each block's second address) is there
      const [base, prefix] = subnet.split('/') as [string, string];
      const last = base.split('.').reduce((a, o) => a * 256 + Number(o), 0) + 2 ** (32 - Number(prefix)) - 2;
      const gw = [last >>> 24, (last >>> 16) & 255, (last >>> 8) & 255, last & 255].join('.');
      const r = await runCmd('docker', ['network', 'create', '--subnet', subnet, '--gateway', gw, name], { env });
      assert.equal(r.code, 0, r.stderr);
    }
  };

  before(async () => {
    c = await TestCluster.start(3, 'spipam');
    etcd = new Etcd3({ hosts: c.tb.etcd.endpoints });
    await engineSide('cluster', subnetOf(await inspectNet('cluster')));
  });

  after(async () => {
    etcd?.close();
    await c?.stop();
  });

  test('network create/ls/inspect/rm: cluster networks with Scope swarm, subnets from the pool, bad input refused', async () => {
    const ls = await ok(['network', 'ls', '--format', '{{.Name}} {{.Driver}} {{.Scope}}']);
    assert.match(ls, /^cluster overlay swarm$/m, 'the default network, made at the first start');
    assert.match(ls, /^host1\/bridge bridge local$/m, 'each node\'s own networks, as before');
    const id = await ok(['network', 'create', '-d', 'sampan-cluster', '--label', 'team=a', 'web']);
    assert.match(id, /^[0-9a-f]{64}$/);
    await ok(['network', 'create', '-d', 'overlay', '--subnet', '10.206.0.0/16', '--internal', '-o', 'com.sampan.routing=vxlan', 'web2']);
    const web = await inspectNet('web');
    assert.equal(web.Id, id);
    assert.deepEqual([web.Scope, web.Driver, web.Labels.team, web.Options['com.sampan.routing']], ['swarm', 'overlay', 'a', 'host-gw']);
    assert.match(subnetOf(web), /^10\.(19[2-9]|20[0-7])\.0\.0\/16$/, 'a /16 of the pool');
    assert.notEqual(within(web, '0.0'), within(await inspectNet('cluster'), '0.0'), 'apart from the default network');
    const web2 = await inspectNet('web2');
    assert.deepEqual([web2.IPAM.Config[0]!.Subnet, web2.Internal, web2.Options['com.sampan.routing']], ['10.206.0.0/16', true, 'vxlan']);
    assert.notEqual(web2.Options['com.docker.network.driver.overlay.vxlanid_list'], web.Options['com.docker.network.driver.overlay.vxlanid_list']);

    const refused: Array<[string[], RegExp]> = [
      [['network', 'create', '-d', 'overlay', 'web'], /network with name web already exists/],
      [['network', 'create', 'local1'], /local networks are made on an engine/],
      [['network', 'create', '-d', 'overlay', '--subnet', '10.0.0.0/16', 'out'], /not within the cluster pool 10\.192\.0\.0\/12/],
      [['network', 'create', '-d', 'overlay', '--subnet', '10.206.128.0/24', 'over'], /overlaps network web2/],
    ];
    for (const [args, re] of refused) {
      const r = await docker(args);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, re);
    }
    assert.equal((await docker(['network', 'inspect', 'nosuch'])).code, 1);
    await ok(['network', 'rm', 'web2']);
    assert.doesNotMatch(await ok(['network', 'ls', '--format', '{{.Name}}']), /^web2$/m);
    assert.equal(Object.keys(await keys('networks/')).length, 2, 'cluster and web in etcd');
  });

  test('containers get distinct addresses from their own host\'s blocks; rm frees the address', async () => {
    const ids = await nodeIds();
    const made: Array<[string, string]> = [];
    for (const h of c.tb.hosts) made.push([h.name, await ok(['run', '-d', '-e', `constraint:node==${h.name}`, 'busybox', 'sleep', '600'])]);
    const net = await inspectNet('cluster');
    const blocks = await keys(`blocks/${net.Id}/`);
    const seen = new Set<string>();
    for (const [host, id] of made) {
      const ip = await addrOf('cluster', id);
      assert.ok(ip, `${host}'s container has an address`);
      seen.add(ip);
      const block = `${ip.split('.').slice(0, 3).join('.')}.0`;
      assert.equal((JSON.parse(blocks[block] ?? '{}') as { node?: string }).node, ids.get(host), `${ip} is in a block of ${host}`);
      // the engine was told it: docker inspect shows it
      const shown = await ok(['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', id]);
      assert.equal(shown, ip);
    }
    assert.equal(seen.size, 3);
    const [, first] = made[0]!;
    const ip = (await addrOf('cluster', first))!;
    await ok(['rm', '-f', first]);
    assert.equal((await inspectNet('cluster')).Containers[first], undefined);
    assert.equal((await keys(`ips/${net.Id}/`))[ip], undefined, 'its address key is gone from etcd');
    assert.equal((await keys('placements/'))[first], undefined);
  });

  test('--ip: outside the subnet is a 400 naming it, taken a 409, in another host\'s block placed on that host', async () => {
    const web = await inspectNet('web');
    await engineSide('web', subnetOf(web));
    const a = await ok(['run', '-d', '--network', 'web', '-e', 'constraint:node==host2', 'busybox', 'sleep', '600']);
    const aip = (await addrOf('web', a))!;
    assert.ok(aip.startsWith(within(web, '')), `${aip} in ${subnetOf(web)}`);
    const out = await docker(['run', '-d', '--network', 'web', '--ip', '10.50.0.9', 'busybox', 'sleep', '600']);
    assert.notEqual(out.code, 0);
    assert.ok(out.stderr.includes(subnetOf(web)), out.stderr);
    const taken = await docker(['run', '-d', '--network', 'web', '--ip', aip, 'busybox', 'sleep', '600']);
    assert.notEqual(taken.code, 0);
    assert.match(taken.stderr, /Address already in use/);
    // the next address of host2's block, asked for with a constraint pointing elsewhere: it goes where its block is
    const next = aip.replace(/\d+$/, (d) => String(Number(d) + 1));
    const b = await ok(['run', '-d', '--network', 'web', '--ip', next, 'busybox', 'sleep', '600']);
    assert.equal(await ok(['inspect', '-f', '{{.Node.Name}}', b]), 'host2');
    assert.equal(await addrOf('web', b), next);
    // in no block yet: the chosen host leases it
    const c3 = await ok(['run', '-d', '--network', 'web', '--ip', within(web, '99.9'), '-e', 'constraint:node==host3', 'busybox', 'sleep', '600']);
    assert.equal(await addrOf('web', c3), within(web, '99.9'));
    const net = await inspectNet('web');
    assert.equal((JSON.parse((await keys(`blocks/${net.Id}/`))[within(web, '99.0')] ?? '{}') as { node?: string }).node, (await nodeIds()).get('host3'));
    const busy = await docker(['network', 'rm', 'web']);
    assert.notEqual(busy.code, 0);
    assert.match(busy.stderr, /has active endpoints/);
    await ok(['rm', '-f', a, b, c3]);
    await ok(['network', 'rm', 'web']);
  });

  test('40 concurrent creates on all hosts get unique addresses', async () => {
    const runs = await Promise.all(Array.from({ length: 40 }, (_, i) => docker(['run', '-d', '--name', `par-${i}`, 'busybox', 'sleep', '600'])));
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    const net = await inspectNet('cluster');
    const ips = runs.map((r) => net.Containers[r.stdout.trim()]?.IPv4Address);
    assert.equal(ips.filter(Boolean).length, 40);
    assert.equal(new Set(ips).size, 40, 'no address twice');
    const hosts = new Set(await Promise.all(runs.map((r) => ok(['inspect', '-f', '{{.Node.Name}}', r.stdout.trim()]))));
    assert.equal(hosts.size, 3, 'spread over the 3 hosts');
    assert.equal(Object.keys(await keys(`ips/${net.Id}/`)).length, Object.keys(net.Containers).length, 'etcd holds one key per address');
  });

  test('node rm: refused while the node is up, then frees its placements, addresses and blocks', async () => {
    const host3 = c.tb.hosts[2]!;
    const id3 = (await nodeIds()).get('host3')!;
    const up = await c.sampan(['node', 'rm', 'host3']);
    assert.equal(up.code, 1);
    assert.match(up.stderr, /not down/);
    const net = await inspectNet('cluster');
    const held = () => keys(`blocks/${net.Id}/`).then((b) => Object.values(b).filter((v) => (JSON.parse(v) as { node: string }).node === id3).length);
    assert.ok((await held()) > 0, 'host3 holds a block');
    process.kill(host3.pid, 'SIGKILL');
    await until(async () => (JSON.parse((await c.get('/sampan/v1/nodes/host3')).body) as NodeView).state === 'down', 60_000, 200);
    assert.ok((await held()) > 0, 'a down node keeps its blocks');
    const rm = await c.sampan(['node', 'rm', 'host3']);
    assert.equal(rm.code, 0, rm.stderr);
    assert.equal(await held(), 0);
    const placed = Object.values(await keys('placements/')).filter((v) => (JSON.parse(v) as { node: string }).node === id3);
    assert.equal(placed.length, 0);
    assert.equal((await c.get('/sampan/v1/nodes/host3')).status, 404);
    assert.equal(Object.keys(await keys(`nodes/${id3}`)).length, 0);
    const left = await inspectNet('cluster');
    assert.equal(Object.keys(await keys(`ips/${net.Id}/`)).length, Object.keys(left.Containers).length, 'its addresses left etcd with it');
  });
});
