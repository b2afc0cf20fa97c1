/**
 * The testbed's network in the root namespace: a bridge `sptbK` holding 10.222.K.1/24 and, per emulated host,
 * a network namespace `sptbK-hI` joined to it by a veth pair (`sptbKhI` <-> eth0), at 10.222.K.(I+1).
 *
 * K is the testbed's slot (0..31): its bridge's name, its hosts' /24 and its hosts' container subnets
 * (100.(64+2K).I.0/24 for host I's default bridge, 100.(65+2K).I.0/24 for its user networks) all derive from it,
 * so two testbeds on one machine never collide. Creating the bridge claims the slot: `ip link add` fails for the
 * second of two testbeds that picked the same one.
 */
import { promises as fs } from 'node:fs';
import { run } from '../proc.js';

export const MAX_SLOTS = 32;
export const MAX_HOSTS = 250;

export interface HostNet {
  netns: string;
  veth: string;
  ip: string;
  /** The engine's default bridge subnet and user-network pool inside the host's namespace. */
  bridgeSubnet: string;
  addressPool: string;
}

export const bridgeName = (slot: number) => `sptb${slot}`;
export const hostsSubnet = (slot: number) => `10.222.${slot}.0/24`;
export const gateway = (slot: number) => `10.222.${slot}.1`;

export function hostNet(slot: number, i: number): HostNet {
  return {
    netns: `sptb${slot}-h${i}`,
    veth: `sptb${slot}h${i}`,
    ip: `10.222.${slot}.${i + 1}`,
    bridgeSubnet: `100.${64 + 2 * slot}.${i}.0/24`,
    addressPool: `base=100.${65 + 2 * slot}.${i}.0/24,size=28`,
  };
}

/** The iptables rule that lets the hosts' frames cross the bridge when br_netfilter sends them through FORWARD. */
const forwardRule = (slot: number) => ['FORWARD', '-i', bridgeName(slot), '-o', bridgeName(slot), '-m', 'comment', '--comment', `sampan-testbed:${bridgeName(slot)}`, '-j', 'ACCEPT'];

/** [first, last] address of an IPv4 CIDR, as numbers. */
export function cidrRange(cidr: string): [number, number] {
  const [addr, len] = cidr.split('/');
  const n = addr!.split('.').reduce((a, o) => a * 256 + Number(o), 0);
  const size = 2 ** (32 - Number(len ?? 32));
  const first = n - (n % size);
  return [first, first + size - 1];
}

const overlaps = (a: [number, number], b: [number, number]) => a[0] <= b[1] && b[0] <= a[1];

/** Every IPv4 prefix the root namespace has: its addresses' networks and its routes' destinations. */
async function prefixesInUse(): Promise<string[]> {
  const addrs = JSON.parse(await run('ip', ['-j', '-4', 'addr', 'show'])) as Array<{ addr_info?: Array<{ local: string; prefixlen: number }> }>;
  const routes = JSON.parse(await run('ip', ['-j', '-4', 'route', 'show', 'table', 'all'])) as Array<{ dst: string }>;
  return [
    ...addrs.flatMap((l) => (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`)),
    ...routes.map((r) => r.dst).filter((d) => /^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(d)),
  ];
}

/** Slot K is free when nothing on this machine uses its hosts' /24 or its containers' 100.(64+2K).0.0/15. */
async function slotFree(slot: number, inUse: string[]): Promise<boolean> {
  const mine = [cidrRange(hostsSubnet(slot)), cidrRange(`100.${64 + 2 * slot}.0.0/15`)];
  if (inUse.some((p) => mine.some((m) => overlaps(m, cidrRange(p))))) return false;
  return !(await fs.stat(`/run/netns/${hostNet(slot, 1).netns}`).then(() => true, () => false));
}

/** Claims a free slot by creating its bridge; returns the slot. */
export async function claimSlot(): Promise<number> {
  const inUse = await prefixesInUse();
  for (let slot = 0; slot < MAX_SLOTS; slot++) {
    if (!(await slotFree(slot, inUse))) continue;
    try {
      await run('ip', ['link', 'add', bridgeName(slot), 'type', 'bridge']);
      return slot;
    } catch {
      // taken by another testbed (or a leftover): the next slot
    }
  }
  throw new Error(`no free testbed slot: 10.222.0.0/24 to 10.222.${MAX_SLOTS - 1}.0/24 are all in use (a testbed left behind? see \`ip link show type bridge\`)`);
}

/** Addresses the claimed bridge, brings it up and opens FORWARD for it. */
export async function setUpBridge(slot: number): Promise<void> {
  const br = bridgeName(slot);
  await run('sysctl', ['-qw', `net.ipv6.conf.${br}.disable_ipv6=1`]).catch(() => undefined);
  await run('ip', ['addr', 'add', `${gateway(slot)}/24`, 'dev', br]);
  await run('ip', ['link', 'set', br, 'up']);
  await run('iptables', ['-w', '-I', ...forwardRule(slot)]);
}

export async function removeBridge(slot: number): Promise<void> {
  while (await run('iptables', ['-w', '-D', ...forwardRule(slot)]).then(() => true, () => false));
  await run('ip', ['link', 'del', bridgeName(slot)]).catch(() => undefined);
}

/** The host's namespace, its veth into the bridge, lo, its address and a default route via the bridge. */
export async function addHostNet(slot: number, h: HostNet): Promise<void> {
  await run('ip', ['netns', 'add', h.netns]);
  await run('ip', ['link', 'add', h.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.netns]);
  await run('ip', ['link', 'set', h.veth, 'master', bridgeName(slot), 'up']);
  const inNs = (...args: string[]) => run('ip', ['-n', h.netns, ...args]);
  await inNs('link', 'set', 'lo', 'up');
  await inNs('addr', 'add', `${h.ip}/24`, 'dev', 'eth0');
  await inNs('link', 'set', 'eth0', 'up');
  await inNs('route', 'add', 'default', 'via', gateway(slot));
  // the engine routes its containers out through eth0
  await run('ip', ['netns', 'exec', h.netns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
}

/** PIDs of the processes in the host's namespace. */
export async function pidsIn(h: HostNet): Promise<number[]> {
  const out = await run('ip', ['netns', 'pids', h.netns]).catch(() => '');
  return out.split('\n').filter(Boolean).map(Number);
}

/** Deletes the veth (both ends go) and then the namespace. */
export async function removeHostNet(h: HostNet): Promise<void> {
  await run('ip', ['link', 'del', h.veth]).catch(() => undefined);
  await run('ip', ['netns', 'del', h.netns]).catch(() => undefined);
}
