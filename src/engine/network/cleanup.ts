import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createLogger } from '../../lib/log.js';
import type { EngineConfig } from '../config.js';
import { EventBus } from '../events.js';
import { claimInstance } from '../instance.js';
import { NetworkService } from './service.js';
import { CHAIN, isolate } from './isolation.js';
import { removeClusterNetworking } from './cluster.js';
import { isCluster } from './model.js';

const run = promisify(execFile);
const ipt = (args: string[]) => run('iptables', ['-w', ...args]).then((r) => r.stdout, () => undefined);

export interface CleanupReport {
  /** Bridges removed, with their isolation and NAT rules. */
  removed: string[];
  /** Bridges kept: containers still have interfaces on them (they outlive the engine). */
  inUse: Array<{ bridge: string; interfaces: number }>;
  /** Whether the isolation chain (and FORWARD's jump to it) went, its last rule gone. */
  chainRemoved: boolean;
}

/**
 * What a stopped engine leaves on the host for its networks (loaded, not initialised): each network's Linux
 * bridge, its rules in SAMPAN-ISOLATION and its NAT rules, and a cluster network's routes and VXLAN device. A
 * bridge with a port is in use (a container that kept running after the engine stopped has its veth there): it
 * stays with its rules. The chain goes once no engine's rule is left in it.
 */
async function removeUnusedNetworking(networks: NetworkService): Promise<CleanupReport> {
  const report: CleanupReport = { removed: [], inUse: [], chainRemoved: false };
  for (const n of networks.list()) {
    const ports = await bridgePorts(n.BridgeName);
    if (ports?.length) {
      report.inUse.push({ bridge: n.BridgeName, interfaces: ports.length });
      continue;
    }
    await isolate(n, false);
    if (isCluster(n)) await removeClusterNetworking(n);
    if (ports) {
      await run('ip', ['link', 'delete', n.BridgeName]);
      report.removed.push(n.BridgeName);
    }
  }
  const rules = await ipt(['-S', CHAIN]);
  if (rules !== undefined && !rules.split('\n').some((l) => l.startsWith('-A'))) {
    while ((await ipt(['-D', 'FORWARD', '-j', CHAIN])) !== undefined);
    report.chainRemoved = (await ipt(['-X', CHAIN])) !== undefined;
  }
  return report;
}

/** The interfaces on a bridge (undefined: no such bridge), asked of the kernel: an engine's namespace may not be /sys's. */
async function bridgePorts(bridge: string): Promise<string[] | undefined> {
  if ((await run('ip', ['link', 'show', 'dev', bridge]).catch(() => undefined)) === undefined) return undefined;
  const out = await run('ip', ['-j', 'link', 'show', 'master', bridge]);
  return (JSON.parse(out.stdout || '[]') as Array<{ ifname: string }>).map((l) => l.ifname);
}

/** `sampan engine cleanup`: refused while an engine runs on this root or exec root (it holds their locks). */
export async function cleanupHost(config: EngineConfig): Promise<CleanupReport> {
  const lock = await claimInstance({ root: config.root, execRoot: config.execRoot, hosts: [] });
  try {
    const networks = new NetworkService({ ...config, log: createLogger('sampan-engine-cleanup', config.logLevel), events: new EventBus(), containers: () => [] });
    await networks.load();
    return await removeUnusedNetworking(networks);
  } finally {
    lock.release();
  }
}
