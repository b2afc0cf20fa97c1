/** iptables rules that keep each engine network's traffic on its bridge, and its outbound NAT (as dockerd's). */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ipv6Config, isCluster, type NetworkRecord } from './model.js';

const run = promisify(execFile);
/** The isolation rules' chain, jumped to from FORWARD. */
export const CHAIN = 'SAMPAN-ISOLATION';

function ipt(args: string[], v6 = false): Promise<boolean> {
  return run(v6 ? 'ip6tables' : 'iptables', ['-w', ...args]).then(() => true, () => false);
}

export async function ensureIsolationChain(v6 = false): Promise<void> {
  await ipt(['-N', CHAIN], v6);
  if (!(await ipt(['-C', 'FORWARD', '-j', CHAIN], v6))) {
    if (!(await ipt(['-I', 'FORWARD', '1', '-j', CHAIN], v6))) throw new Error(`${v6 ? 'ip6tables' : 'iptables'}: cannot add the isolation chain`);
  }
}

/** Traffic stays inside its bridge: nothing is forwarded from one engine network to another (or out, if internal). */
function isolationRules(n: NetworkRecord): Array<{ where: 'I' | 'A'; rule: string[] }> {
  // tagged by bridge: one set of rules per bridge, however many engines share it
  const tag = ['-m', 'comment', '--comment', `sampan:${n.BridgeName}`];
  // REJECT rather than DROP: a refused connection fails at once instead of after the TCP timeout
  const deny = ['-j', 'REJECT'];
  const out: Array<{ where: 'I' | 'A'; rule: string[] }> = [{ where: 'I', rule: ['-i', n.BridgeName, '-o', n.BridgeName, ...tag, '-j', 'RETURN'] }];
  out.push({ where: 'A', rule: n.Internal ? ['-i', n.BridgeName, ...tag, ...deny] : ['-i', n.BridgeName, '-o', 'sampan+', ...tag, ...deny] });
  if (n.Internal) out.push({ where: 'A', rule: ['-o', n.BridgeName, ...tag, ...deny] });
  return out;
}

/**
 * A cluster network's traffic crosses hosts with its own addresses, so its rules match its subnet besides its bridge
 * (`spc…`): it enters the bridge from its own subnet only (here or from another host), nothing else's containers
 * (another cluster network's bridge, a local network's) are forwarded to its subnet, wherever it is.
 */
function clusterRules(n: NetworkRecord): Array<{ where: 'I' | 'A'; rule: string[] }> {
  const tag = ['-m', 'comment', '--comment', `sampan:${n.BridgeName}`];
  const subnet = n.IPAM.Config[0]!.Subnet;
  const deny = [...tag, '-j', 'REJECT'];
  return [
    { where: 'I', rule: ['-i', n.BridgeName, '-d', subnet, ...tag, '-j', 'RETURN'] },
    { where: 'I', rule: ['-s', subnet, '-o', n.BridgeName, ...tag, '-j', 'RETURN'] },
    // the sending host refuses, and the receiving one too (another host's engine may not have refused)
    { where: 'A', rule: ['-i', 'spc+', '-d', subnet, ...deny] },
    { where: 'A', rule: ['-s', subnet, '-o', 'spc+', ...deny] },
    { where: 'A', rule: ['-i', 'sampan+', '-d', subnet, ...deny] },
    ...(n.Internal
      ? [{ where: 'A' as const, rule: ['-i', n.BridgeName, ...deny] }, { where: 'A' as const, rule: ['-o', n.BridgeName, ...deny] }]
      : [{ where: 'A' as const, rule: ['-i', n.BridgeName, '-o', 'sampan+', ...deny] }]),
  ];
}

/** A cluster network's outbound NAT: none towards its own subnet (other hosts' containers see the address), nor towards another cluster network's (whose hosts refuse it by its address). */
function clusterNat(n: NetworkRecord): Array<{ where: 'I' | 'A'; rule: string[] }> {
  const tag = ['-m', 'comment', '--comment', `sampan:${n.BridgeName}`];
  const subnet = n.IPAM.Config[0]!.Subnet;
  return [
    { where: 'I', rule: ['POSTROUTING', '-d', subnet, ...tag, '-j', 'RETURN'] },
    ...(n.Internal ? [] : [{ where: 'A' as const, rule: ['POSTROUTING', '-s', subnet, '!', '-o', n.BridgeName, ...tag, '-j', 'MASQUERADE'] }]),
  ];
}

export async function isolate(n: NetworkRecord, add: boolean): Promise<void> {
  if (isCluster(n)) {
    for (const { where, rule } of clusterRules(n)) await apply([], [CHAIN, ...rule], where, add);
    for (const { where, rule } of clusterNat(n)) await apply(['-t', 'nat'], rule, where, add);
    return;
  }
  // the same rules for IPv6 traffic on an IPv6 network (not NATed: dockerd does not NAT IPv6 either by default)
  const families = ipv6Config(n) ? [false, true] : [false];
  if (add && families.includes(true)) await ensureIsolationChain(true);
  for (const v6 of families) for (const { where, rule } of isolationRules(n)) await apply([], [CHAIN, ...rule], where, add, v6);
  if (n.Internal) return;
  // outbound NAT for the whole subnet, as dockerd does it
  await apply(['-t', 'nat'], ['POSTROUTING', '-s', n.IPAM.Config[0]!.Subnet, '!', '-o', n.BridgeName, '-m', 'comment', '--comment', `sampan:${n.BridgeName}`, '-j', 'MASQUERADE'], 'A', add);
}

/** Adds a rule once (inserted first or appended), or deletes every copy of it. */
async function apply(table: string[], rule: string[], where: 'I' | 'A', add: boolean, v6 = false): Promise<void> {
  const present = await ipt([...table, '-C', ...rule], v6);
  if (add && !present) await ipt([...table, where === 'I' ? '-I' : '-A', ...rule], v6);
  if (!add) while (await ipt([...table, '-D', ...rule], v6));
}
