/** iptables rules that keep each engine network's traffic on its bridge, and its outbound NAT (as dockerd's). */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ipv6Config, type NetworkRecord } from './model.js';

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

export async function isolate(n: NetworkRecord, add: boolean): Promise<void> {
  // the same rules for IPv6 traffic on an IPv6 network (not NATed: dockerd does not NAT IPv6 either by default)
  const families = ipv6Config(n) ? [false, true] : [false];
  if (add && families.includes(true)) await ensureIsolationChain(true);
  for (const v6 of families) {
    for (const { where, rule } of isolationRules(n)) {
      const present = await ipt(['-C', CHAIN, ...rule], v6);
      if (add && !present) await ipt([where === 'I' ? '-I' : '-A', CHAIN, ...rule], v6);
      if (!add) while (await ipt(['-D', CHAIN, ...rule], v6));
    }
  }
  if (n.Internal) return;
  // outbound NAT for the whole subnet, as dockerd does it
  const masq = ['POSTROUTING', '-s', n.IPAM.Config[0]!.Subnet, '!', '-o', n.BridgeName, '-m', 'comment', '--comment', `sampan:${n.BridgeName}`, '-j', 'MASQUERADE'];
  const present = await ipt(['-t', 'nat', '-C', ...masq]);
  if (add && !present) await ipt(['-t', 'nat', '-A', ...masq]);
  if (!add) while (await ipt(['-t', 'nat', '-D', ...masq]));
}
