import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { TestEngine, freePort, sleep, until } from '../harness.js';

const run = promisify(execFile);

// a default bridge of this test's own (engines running side by side must not share one subnet and IPAM)
const BRIDGE = `sampant${process.pid % 100000}`;
const SUBNET_OCTET = 100 + (process.pid % 100);
process.env.SAMPAN_BRIDGE_NAME = BRIDGE;
process.env.SAMPAN_BRIDGE_SUBNET = `10.${SUBNET_OCTET}.0.0/24`;
process.env.SAMPAN_DEFAULT_ADDRESS_POOL = `base=10.${SUBNET_OCTET}.16.0/20,size=24`;

let e: TestEngine;
before(async () => {
  e = await TestEngine.start();
});
after(async () => {
  // a failed test may leave containers and networks: their bridges and rules are the host's, so remove them here
  if (e) {
    const ids = (await e.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
    if (ids.length) await e.docker(['rm', '-f', ...ids], { timeoutMs: 60_000 });
    await e.docker(['network', 'prune', '-f']);
  }
  await e?.cleanup();
  await run('ip', ['link', 'delete', BRIDGE]).catch(() => undefined);
  // the isolation rules of this test's default bridge (a default bridge's rules stay while engines may share it)
  const lines = (await run('iptables', ['-w', '-S', 'SAMPAN-ISOLATION']).catch(() => ({ stdout: '' }))).stdout.split('\n');
  for (const l of lines.filter((x) => x.startsWith('-A') && x.includes(`sampan:${BRIDGE}`))) {
    await run('iptables', ['-w', '-D', ...l.replace(/"/g, '').split(/\s+/).slice(1)]).catch(() => undefined);
  }
});

const ok = async (args: string[]) => {
  const r = await e.docker(args, { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
};
const ipOf = (name: string, netName?: string) =>
  ok(['inspect', '-f', netName ? `{{(index .NetworkSettings.Networks "${netName}").IPAddress}}` : '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', name]);
/** host-local's lease files (each names the container holding it), of the given containers or of all. */
const leases = async (ids?: string[]) => {
  const dir = `${e.dir}/root/cni/ipam`;
  const out: string[] = [];
  for (const n of await fs.readdir(dir).catch(() => [] as string[])) {
    for (const f of await fs.readdir(`${dir}/${n}`).catch(() => [] as string[])) {
      if (!/^\d+\.\d+\.\d+\.\d+$/.test(f)) continue;
      const holder = await fs.readFile(`${dir}/${n}/${f}`, 'utf8').catch(() => '');
      if (!ids || ids.some((id) => holder.includes(id))) out.push(`${n}/${f}`);
    }
  }
  return out;
};
/** The host ends of a container's veths, from the cached CNI results. */
const vethsOf = async (id: string) => {
  const dir = `${e.dir}/root/cni/cache`;
  const out: string[] = [];
  for (const f of await fs.readdir(dir)) {
    if (!f.includes(id)) continue;
    const r = JSON.parse(await fs.readFile(`${dir}/${f}`, 'utf8')) as { result: { interfaces?: Array<{ name: string; sandbox?: string }> } };
    for (const i of r.result.interfaces ?? []) if (!i.sandbox && i.name.startsWith('veth')) out.push(i.name);
  }
  return out;
};
const linkExists = (name: string) => run('ip', ['link', 'show', name]).then(() => true, () => false);
/** iptables lines that name a container (CNI's masquerade and portmap rules carry its id), and the chains they jump to. */
const rulesOf = async (id: string) => {
  const lines = (await run('iptables-save', [])).stdout.split('\n');
  const mine = lines.filter((l) => l.includes(id));
  const chains = new Set(mine.map((l) => /-j (CNI-[\w-]+)/.exec(l)?.[1]).filter(Boolean));
  return lines.filter((l) => l.includes(id) || [...chains].some((c) => l.startsWith(`:${c} `) || l.startsWith(`-A ${c} `))).length;
};
const httpGet = (port: number) =>
  new Promise<string>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/', timeout: 5000 }, (res) => {
      let b = '';
      res.on('data', (d: Buffer) => (b += d.toString()));
      res.on('end', () => resolve(b));
    }).on('error', reject);
  });
const HTTPD = ['sh', '-c', 'mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www'];

test('the default bridge: a container gets its own IP from the engine subnet, in inspect and /etc/hosts', async () => {
  await ok(['run', '-d', '--name', 'b1', 'busybox', 'sleep', '300']);
  const ip = await ipOf('b1');
  assert.match(ip, new RegExp(`^10\\.${SUBNET_OCTET}\\.0\\.\\d+$`));
  assert.equal(await ok(['inspect', '-f', '{{.NetworkSettings.IPAddress}} {{.NetworkSettings.Gateway}}', 'b1']), `${ip} 10.${SUBNET_OCTET}.0.1`);
  assert.match(await ok(['exec', 'b1', 'ip', '-4', 'addr', 'show', 'eth0']), new RegExp(`inet ${ip.replace(/\./g, '\\.')}/24`));
  assert.match(await ok(['exec', 'b1', 'cat', '/etc/hosts']), new RegExp(`${ip.replace(/\./g, '\\.')}\\s`));
  assert.match(await ok(['network', 'ls']), /bridge\s+bridge/);
  await ok(['rm', '-f', 'b1']);
});

test('a user network: containers reach each other by IP and name, not across networks; --ip is honoured', async () => {
  await ok(['network', 'create', '--subnet', '10.199.7.0/24', '--label', 'k=v', 'tn1']);
  await ok(['network', 'create', 'tn2']);
  const insp = JSON.parse(await ok(['network', 'inspect', 'tn1'])) as Array<{ IPAM: { Config: Array<{ Subnet: string; Gateway: string }> }; Labels: Record<string, string> }>;
  assert.equal(insp[0]!.IPAM.Config[0]!.Subnet, '10.199.7.0/24');
  assert.equal(insp[0]!.IPAM.Config[0]!.Gateway, '10.199.7.1');
  assert.deepEqual(insp[0]!.Labels, { k: 'v' });
  await ok(['run', '-d', '--name', 'web', '--network', 'tn1', '--ip', '10.199.7.77', 'busybox', ...HTTPD]);
  assert.equal(await ipOf('web', 'tn1'), '10.199.7.77');
  await sleep(300);
  assert.equal(await ok(['run', '--rm', '--network', 'tn1', 'busybox', 'wget', '-q', '-O', '-', 'http://web:8080/']), 'hello');
  assert.equal(await ok(['run', '--rm', '--network', 'tn1', 'busybox', 'wget', '-q', '-O', '-', 'http://10.199.7.77:8080/']), 'hello');
  // the network's embedded DNS answers for its containers (resolv.conf points at the gateway)
  const ns = await ok(['run', '--rm', '--network', 'tn1', 'busybox', 'sh', '-c', 'cat /etc/resolv.conf; nslookup web; nslookup WEB.tn1']);
  assert.match(ns, /nameserver 10\.199\.7\.1\b/);
  assert.equal(ns.match(/10\.199\.7\.77/g)?.length, 2, ns);
  // another network: neither the name nor the address
  assert.notEqual((await e.docker(['run', '--rm', '--network', 'tn2', 'busybox', 'wget', '-q', '-O', '-', 'http://web:8080/'], { timeoutMs: 60_000 })).code, 0);
  assert.notEqual((await e.docker(['run', '--rm', '--network', 'tn2', 'busybox', 'wget', '-q', '-O', '-', 'http://10.199.7.77:8080/'], { timeoutMs: 60_000 })).code, 0);
  assert.notEqual((await e.docker(['run', '--rm', 'busybox', 'wget', '-q', '-O', '-', 'http://10.199.7.77:8080/'], { timeoutMs: 60_000 })).code, 0);
  // nor the other way: from a user network to the default bridge
  await ok(['run', '-d', '--name', 'dflt', 'busybox', ...HTTPD]);
  const dip = await ipOf('dflt');
  await sleep(300);
  assert.equal(await ok(['run', '--rm', 'busybox', 'wget', '-q', '-O', '-', `http://${dip}:8080/`]), 'hello');
  assert.notEqual((await e.docker(['run', '--rm', '--network', 'tn1', 'busybox', 'wget', '-q', '-O', '-', `http://${dip}:8080/`], { timeoutMs: 60_000 })).code, 0);
  await ok(['rm', '-f', 'dflt']);
  // in use: rm refused
  const rm = await e.docker(['network', 'rm', 'tn1']);
  assert.notEqual(rm.code, 0);
  assert.match(rm.stderr, /active endpoints/);
  // the same address twice is refused
  assert.notEqual((await e.docker(['run', '--rm', '--network', 'tn1', '--ip', '10.199.7.77', 'busybox', 'true'])).code, 0);
  await ok(['rm', '-f', 'web']);
  await ok(['network', 'rm', 'tn1', 'tn2']);
});

test('--mac-address on the default and a user network, and from an old client\'s Config.MacAddress', async () => {
  assert.match(await ok(['run', '--rm', '--mac-address', '02:42:ac:11:00:99', 'busybox', 'cat', '/sys/class/net/eth0/address']), /^02:42:ac:11:00:99$/);
  await ok(['network', 'create', 'tnmac']);
  await ok(['run', '-d', '--name', 'withmac', '--network', 'tnmac', '--mac-address', '02:42:ac:11:00:98', 'busybox', 'sleep', '300']);
  assert.equal(await ok(['inspect', '-f', '{{(index .NetworkSettings.Networks "tnmac").MacAddress}}', 'withmac']), '02:42:ac:11:00:98');
  assert.equal(await ok(['exec', 'withmac', 'cat', '/sys/class/net/eth0/address']), '02:42:ac:11:00:98');
  const old = await e.api('POST', '/v1.41/containers/create?name=oldmac', { Image: 'busybox', Cmd: ['cat', '/sys/class/net/eth0/address'], MacAddress: '02:42:ac:11:00:97' });
  assert.equal(old.status, 201);
  assert.equal(await ok(['start', '-a', 'oldmac']), '02:42:ac:11:00:97');
  assert.equal((await e.api('POST', '/containers/create', { Image: 'busybox', MacAddress: 'not-a-mac' })).status, 400);
  await ok(['rm', '-f', 'withmac', 'oldmac']);
  await ok(['network', 'rm', 'tnmac']);
});

test('connect and disconnect a running container, with an alias; a created one keeps its network mode', async () => {
  await ok(['network', 'create', 'tn3']);
  // the first subnet of the engine's --default-address-pool
  assert.equal(await ok(['network', 'inspect', '-f', '{{(index .IPAM.Config 0).Subnet}}', 'tn3']), `10.${SUBNET_OCTET}.16.0/24`);
  await ok(['run', '-d', '--name', 'srv', 'busybox', ...HTTPD]);
  await ok(['network', 'connect', '--alias', 'api', 'tn3', 'srv']);
  const ip = await ipOf('srv', 'tn3');
  assert.ok(ip, 'no address on the connected network');
  assert.equal(await ok(['run', '--rm', '--network', 'tn3', 'busybox', 'wget', '-q', '-O', '-', 'http://api:8080/']), 'hello');
  await ok(['network', 'disconnect', 'tn3', 'srv']);
  assert.notEqual((await e.docker(['run', '--rm', '--network', 'tn3', 'busybox', 'wget', '-q', '-O', '-', `http://${ip}:8080/`], { timeoutMs: 60_000 })).code, 0);
  await ok(['rm', '-f', 'srv']);
  // Compose's way of setting aliases: disconnect a created container from its network, connect it again
  await ok(['create', '--name', 'cre', '--network', 'tn3', 'busybox', ...HTTPD]);
  await ok(['network', 'disconnect', 'tn3', 'cre']);
  assert.equal(await ok(['inspect', '-f', '{{.HostConfig.NetworkMode}} {{len .NetworkSettings.Networks}}', 'cre']), 'tn3 0');
  await ok(['network', 'connect', '--alias', 'again', 'tn3', 'cre']);
  await ok(['start', 'cre']);
  await sleep(300);
  assert.equal(await ok(['run', '--rm', '--network', 'tn3', 'busybox', 'wget', '-q', '-O', '-', 'http://again:8080/']), 'hello');
  await ok(['rm', '-f', 'cre']);
  await ok(['network', 'rm', 'tn3']);
});

test('a published port answers from the host; -P picks ports; a taken port is a clear error', async () => {
  const hp = await freePort();
  await ok(['run', '-d', '--name', 'pub', '-p', `127.0.0.1:${hp}:8080`, 'busybox', ...HTTPD]);
  let body = '';
  for (let i = 0; i < 30 && !body; i++) {
    body = await httpGet(hp).catch(() => '');
    if (!body) await sleep(200);
  }
  assert.equal(body.trim(), 'hello');
  assert.equal(await ok(['port', 'pub']), `8080/tcp -> 127.0.0.1:${hp}`);
  assert.match(await ok(['ps', '--format', '{{.Ports}}', '--filter', 'name=pub']), new RegExp(`127\\.0\\.0\\.1:${hp}->8080/tcp`));
  const clash = await e.docker(['run', '-d', '--name', 'clash', '-p', `127.0.0.1:${hp}:8080`, 'busybox', 'sleep', '5']);
  assert.notEqual(clash.code, 0);
  assert.match(clash.stderr, /already allocated|in use/);
  await ok(['rm', '-f', 'clash']);
  await ok(['run', '-d', '--name', 'pubP', '--expose', '8080', '-P', 'busybox', ...HTTPD]);
  const m = /8080\/tcp -> 0\.0\.0\.0:(\d+)/.exec(await ok(['port', 'pubP']));
  assert.ok(m, 'no -P port');
  await ok(['rm', '-f', 'pub', 'pubP']);
});

test('rm leaves no veth, lease or rule behind', async () => {
  await ok(['network', 'create', 'tn4']);
  await ok(['run', '-d', '--name', 'l1', '-p', `127.0.0.1:${await freePort()}:80`, 'busybox', 'sleep', '300']);
  await ok(['run', '-d', '--name', 'l2', '--network', 'tn4', 'busybox', 'sleep', '300']);
  const ids = [await ok(['inspect', '-f', '{{.Id}}', 'l1']), await ok(['inspect', '-f', '{{.Id}}', 'l2'])];
  assert.equal((await leases(ids)).length, 2);
  const veths = [...(await vethsOf(ids[0]!)), ...(await vethsOf(ids[1]!))];
  assert.equal(veths.length, 2);
  for (const v of veths) assert.ok(await linkExists(v), `no veth ${v}`);
  assert.ok((await rulesOf(ids[0]!)) > 0, 'no NAT/portmap rules found for l1');
  const subnet = await ok(['network', 'inspect', '-f', '{{(index .IPAM.Config 0).Subnet}}', 'tn4']);
  const masq = async () => (await run('iptables', ['-w', '-t', 'nat', '-S', 'POSTROUTING'])).stdout.split('\n').filter((l) => l.includes(`-s ${subnet}`) && l.includes('MASQUERADE')).length;
  assert.equal(await masq(), 1, 'one outbound NAT rule per network');
  await ok(['rm', '-f', 'l1', 'l2']);
  // the kernel removes a deleted namespace's veth in the background, within moments
  for (const v of veths) await until(async () => !(await linkExists(v)), 2000).catch(() => assert.fail(`veth ${v} left behind`));
  assert.deepEqual(await leases(ids), []);
  for (const id of ids) assert.equal(await rulesOf(id), 0, `iptables rules left for ${id}`);
  await assert.rejects(fs.stat(`/run/netns/sampan-${ids[0]!.slice(0, 12)}`));
  await ok(['network', 'rm', 'tn4']);
  assert.equal(await masq(), 0, 'NAT rule left after network rm');
});

test('IPs survive an engine restart (kill -9 and launch)', async () => {
  await ok(['network', 'create', 'tn5']);
  await ok(['run', '-d', '--name', 'r1', 'busybox', 'sleep', '300']);
  await ok(['run', '-d', '--name', 'r2', '--network', 'tn5', 'busybox', ...HTTPD]);
  const ip1 = await ipOf('r1');
  const ip2 = await ipOf('r2');
  const ids = [await ok(['inspect', '-f', '{{.Id}}', 'r1']), await ok(['inspect', '-f', '{{.Id}}', 'r2'])];
  await e.kill9();
  await e.launch();
  assert.equal(await ipOf('r1'), ip1);
  assert.equal(await ipOf('r2'), ip2);
  // the network's DNS responder is back before any new container starts
  assert.match(await ok(['exec', 'r2', 'nslookup', 'r2']), new RegExp(ip2.replace(/\./g, '\\.')));
  assert.equal(await ok(['run', '--rm', '--network', 'tn5', 'busybox', 'wget', '-q', '-O', '-', `http://${ip2}:8080/`]), 'hello');
  assert.match(await ok(['exec', 'r1', 'ip', '-4', 'addr', 'show', 'eth0']), new RegExp(ip1.replace(/\./g, '\\.')));
  await ok(['rm', '-f', 'r1', 'r2']);
  assert.deepEqual(await leases(ids), []);
  await ok(['network', 'rm', 'tn5']);
});
